//! gilfree's `Dict` and `List` as rhai custom types (`examples/rhai.rs`): the script-level API,
//! errors as catchable script errors, and several threads sharing one dict and one frozen tree.

#[allow(dead_code)]
#[path = "../examples/rhai.rs"]
mod example;

use std::sync::Arc;

use example::{engine, Dict, List};
use rhai::{Dynamic, Scope, INT};

fn eval<T: Clone + Send + Sync + 'static>(src: &str) -> T {
    engine()
        .eval::<T>(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn error_of(src: &str) -> String {
    match engine().eval::<Dynamic>(src) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn dict_api() {
    let r: String = eval(
        r#"
        let d = dict();
        d["a"] = 1; d[2] = "two"; d['c'] = true; d[()] = 0;
        d["a"] = 10;                       // overwrite keeps the position
        let ks = "";
        for k in d { ks += `${k},`; }
        let vs = d.values();
        `${d.len}|${d.len()}|${"a" in d}|${"z" in d}|${d.get("z", -1)}|${d[2]}|${ks}|${vs[0]}|${d.remove("a")}|${d.len}`
    "#,
    );
    assert_eq!(r, "4|4|true|false|-1|two|a,2,c,,|10|10|3");
}

#[test]
fn list_api() {
    let r: String = eval(
        r#"
        let l = list();
        l.push(3); l.push(1); l.push(2); l.insert(0, 9);
        l[-1] = 5;
        l.sort();
        let s = 0;
        for x in l { s += x; }
        `${l}|${l.len}|${l[0]}|${l[-1]}|${5 in l}|${l.index_of(3)}|${s}|${l.pop()}|${l.len}`
    "#,
    );
    assert_eq!(r, "[1, 3, 5, 9]|4|1|9|true|1|18|9|3");
}

#[test]
fn errors_are_script_errors() {
    assert!(error_of(r#"let d = dict(); d["missing"]"#).contains("key not found"));
    assert!(error_of("let d = dict(); d[[1]] = 1").contains("unhashable type: array"));
    assert!(error_of("let d = dict(); d[dict()] = 1").contains("unhashable type: Dict"));
    assert!(error_of("let l = list(); l[0]").contains("list index out of range"));
    assert!(error_of("let l = list(); l.pop()").contains("pop from empty list"));
    assert!(
        error_of(r#"let l = list(); l.push(1); l.push("x"); l.sort()"#)
            .contains("only ints or strings")
    );
    let caught: String =
        eval(r#"let d = dict(); let r = ""; try { d[[1]] = 2; } catch (e) { r = "caught"; } r"#);
    assert_eq!(caught, "caught");
}

#[test]
fn freeze_is_deep_and_all_or_nothing() {
    let r: String = eval(
        r#"
        let inner = dict(); inner["x"] = 1;
        let cfg = dict(); cfg["inner"] = inner; cfg["name"] = "n";
        cfg.freeze();
        let errs = 0;
        try { cfg["name"] = "m"; } catch (e) { errs += 1; }
        try { inner["y"] = 2; } catch (e) { errs += 1; }
        `${cfg.is_frozen}|${inner.is_frozen}|${cfg["inner"]["x"]}|${errs}`
    "#,
    );
    assert_eq!(r, "true|true|1|2");
    assert!(
        error_of(r#"let d = dict(); d["x"] = 1; d.freeze(); d["x"] = 2"#)
            .contains("cannot modify frozen dict")
    );
    // A rhai array (not a gilfree container) in the tree: nothing is frozen, lists included.
    let r: String = eval(
        r#"
        let inner = dict();
        let xs = list();
        let d = dict(); d["inner"] = inner; d["xs"] = xs; d["arr"] = [1, 2];
        let msg = "";
        try { d.freeze(); } catch (e) { msg = `${e}`; }
        `${d.is_frozen}|${inner.is_frozen}|${xs.is_frozen}|${msg}`
    "#,
    );
    assert!(r.starts_with("false|false|false|"), "{r}");
    assert!(r.contains("cannot freeze root[\"arr\"]"), "{r}");
    // Without it, the whole tree freezes, the list too.
    let r: String = eval(
        r#"
        let xs = list(); xs.push(1);
        let d = dict(); d["xs"] = xs;
        d.freeze();
        `${d.is_frozen}|${xs.is_frozen}`
    "#,
    );
    assert_eq!(r, "true|true");
}

#[test]
fn threads_share_a_dict_and_a_frozen_tree() {
    let engine = Arc::new(engine());
    let config: Dict = engine
        .eval(r#"let c = dict(); c["n"] = 500; c["w"] = dict(); c["w"]["k"] = 3; c.freeze(); c"#)
        .unwrap();
    let shared = Dict::default();
    let log = List::default();
    std::thread::scope(|s| {
        for me in 0..4 as INT {
            let (engine, shared, config, log) =
                (engine.clone(), shared.clone(), config.clone(), log.clone());
            s.spawn(move || {
                let mut scope = Scope::new();
                scope.push("me", me);
                scope.push("g", shared);
                scope.push("config", config);
                scope.push("log", log);
                let src = r#"
                    for i in 0..config["n"] {
                        g.incr("hits", config["w"]["k"]);
                        g[`t${me}`] = i;
                        log.push(me);
                    }
                    let failed = false;
                    try { config["w"]["k"] = 0; } catch (e) { failed = true; }
                    failed
                "#;
                let failed: bool = engine.eval_with_scope(&mut scope, src).unwrap();
                assert!(failed, "a write to the frozen tree must fail");
            });
        }
    });
    let mut scope = Scope::new();
    scope.push("g", shared);
    scope.push("log", log);
    let r: String = engine
        .eval_with_scope(
            &mut scope,
            r#"`${g["hits"]}|${g.len}|${g["t3"]}|${log.len}`"#,
        )
        .unwrap();
    assert_eq!(r, "6000|5|499|2000");
}
