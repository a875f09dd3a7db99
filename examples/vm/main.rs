//! A small multi-threaded Lisp VM on gilfree (see `lisp.rs` for the language and its object
//! model).
//!
//! 1. One module's globals live in a `GilFreeDict` that four threads share; each runs a script
//!    with its own interpreter state against them (counters, a shared log list, a grid keyed
//!    by instances of a script class with a script-level `:eq`/`:hash`).
//! 2. A frozen constant (a config tree) is read by every thread; writing to it fails.
//! 3. A script `:eq` that mutates the dict being searched gets gilfree's defined error,
//!    "dict mutated during lookup", as a script exception.
//!
//! Run: `cargo run --release --example vm`

mod lisp;

use std::sync::Arc;

use gilfree::GilFreeDict;
use lisp::{Value, Vm};

const PRELUDE: &str = r#"
; A constant: deep-frozen before it is bound (dicts of leaves; lists are kept out, see lisp.rs).
(const CONFIG (dict "rounds" 500 "weights" (dict "a" 1 "b" 2 "c" 3)))

; A class whose equality and hash are script code.
(defclass Point
  :eq (lambda (p q) (and (= (field p 0) (field q 0)) (= (field p 1) (field q 1))))
  :hash (lambda (p) (+ (* 1000 (field p 0)) (field p 1))))

(define counters (dict))
(define log (list))
(define grid (dict))

(define weight (lambda (k) (get (get CONFIG "weights") k 0)))
"#;

/// What thread `me` runs.
fn worker_script(me: usize) -> String {
    // The loop state lives in a thread-private global (`i-ME`): globals are the only mutable
    // variables of this small language.
    format!(
        r#"
(set! i-{me} 0)
(while (< i-{me} (get CONFIG "rounds"))
  (incr! counters "total" 1)
  (incr! counters (if (= (% i-{me} 2) 0) "a" "b") (weight (if (= (% i-{me} 2) 0) "a" "b")))
  ; fresh instances equal to other threads' keys: found through the script :eq
  (put! grid (make Point (% i-{me} 10) {me}) i-{me})
  (if (= (% i-{me} 100) 0) (append! log (list {me} i-{me})))
  (set! i-{me} (+ i-{me} 1)))
(len grid)
"#
    )
}

fn main() {
    let globals: Arc<GilFreeDict<Value, Value>> = Arc::new(GilFreeDict::new());
    let main_vm = Vm::new(Arc::clone(&globals));
    main_vm.run(PRELUDE).expect("prelude");

    println!("== four threads, one module's globals ==");
    let threads = 4;
    std::thread::scope(|s| {
        for me in 0..threads {
            let globals = Arc::clone(&globals);
            s.spawn(move || {
                let vm = Vm::new(globals);
                let seen = vm.run(&worker_script(me)).expect("worker script");
                println!("thread {me}: done, grid had {seen} points when it finished");
            });
        }
    });
    let show = |src: &str| {
        let v = main_vm
            .run(src)
            .unwrap_or_else(|e| Value::str(&format!("error: {e}")));
        println!("{src:<40} => {v}");
        v
    };
    let total = show(r#"(get counters "total")"#);
    assert_eq!(total.as_int(), Some(4 * 500), "no increment lost");
    show(r#"(get counters "a")"#);
    show(r#"(get counters "b")"#);
    let points = show("(len grid)");
    assert_eq!(points.as_int(), Some(40), "10 x-values x 4 threads");
    show("(get grid (make Point 3 2))");
    show("(len log)");

    println!("\n== a frozen constant ==");
    show(r#"(frozen? CONFIG)"#);
    show(r#"(get (get CONFIG "weights") "c")"#);
    show(r#"(try (put! (get CONFIG "weights") "d" 4) (lambda (e) (str "caught: " e)))"#);
    show(r#"(try (const BAD (dict "xs" (list 1 2))) (lambda (e) (str "caught: " e)))"#);

    println!("\n== a script __eq__ that mutates the dict being searched ==");
    main_vm
        .run(
            r#"
(define table (dict))
(defclass Evil
  :eq (lambda (a b) (begin (put! table stored "reassigned") false))
  :hash (lambda (x) 1))
(define stored (make Evil))
(put! table stored "value")
"#,
        )
        .expect("setup");
    let caught = show(r#"(try (get table (make Evil)) (lambda (e) (str "caught: " e)))"#);
    assert_eq!(
        caught.to_string(),
        "\"caught: dict mutated during lookup\"",
        "the defined error"
    );
    show("(get table stored)");
    show("(len table)");
    show(r#"(try (get table (list 1)) (lambda (e) (str "caught: " e)))"#);
}
