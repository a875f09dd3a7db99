//! The Lisp VM of `examples/vm` as a test: its object model (script `:eq`/`:hash`) driving
//! gilfree's dicts and lists, from several threads, with re-entrant and failing callbacks.

#[allow(dead_code)]
#[path = "../examples/vm/lisp.rs"]
mod lisp;

use std::sync::Arc;

use gilfree::GilFreeDict;
use lisp::{ScriptError, Value, Vm};

fn vm() -> Vm {
    Vm::new(Arc::new(GilFreeDict::new()))
}

fn run(vm: &Vm, src: &str) -> String {
    match vm.run(src) {
        Ok(v) => v.to_string(),
        Err(ScriptError(e)) => format!("error: {e}"),
    }
}

const POINT: &str = r#"
(define eqs (dict))
(defclass Point
  :eq (lambda (p q) (begin (incr! eqs "n" 1)
                           (and (= (field p 0) (field q 0)) (= (field p 1) (field q 1)))))
  :hash (lambda (p) (+ (* 1000 (field p 0)) (field p 1))))
"#;

#[test]
fn threads_share_globals() {
    let globals: Arc<GilFreeDict<Value, Value>> = Arc::new(GilFreeDict::new());
    let setup = Vm::new(Arc::clone(&globals));
    setup
        .run(&format!(
            "{POINT} (define hits (dict)) (define log (list)) (define grid (dict))"
        ))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let globals = Arc::clone(&globals);
            s.spawn(move || {
                let vm = Vm::new(globals);
                let src = format!(
                    "(set! i{t} 0)
                     (while (< i{t} 300)
                       (incr! hits \"n\" 1)
                       (append! log i{t})
                       (put! grid (make Point (% i{t} 5) {t}) i{t})
                       (set! i{t} (+ i{t} 1)))"
                );
                vm.run(&src).unwrap();
            });
        }
    });
    assert_eq!(run(&setup, r#"(get hits "n")"#), "1200");
    assert_eq!(run(&setup, "(len log)"), "1200");
    assert_eq!(run(&setup, "(len grid)"), "20");
    assert_eq!(run(&setup, "(get grid (make Point 4 3))"), "299");
}

#[test]
fn script_eq_finds_equal_instances() {
    let vm = vm();
    vm.run(POINT).unwrap();
    vm.run("(define d (dict)) (put! d (make Point 1 2) \"a\")")
        .unwrap();
    assert_eq!(run(&vm, "(get d (make Point 1 2))"), "\"a\"");
    assert_eq!(run(&vm, "(get d (make Point 2 1) \"none\")"), "\"none\"");
    // The hash is called before the lock, eq once per candidate.
    assert_eq!(run(&vm, r#"(get eqs "n")"#), "1");
    let l = "(define l (list (make Point 0 0) (make Point 1 2) (make Point 1 2)))";
    vm.run(l).unwrap();
    assert_eq!(run(&vm, "(index l (make Point 1 2))"), "1");
    vm.run("(remove! l (make Point 1 2))").unwrap();
    assert_eq!(run(&vm, "(len l)"), "2");
}

#[test]
fn mutating_eq_gets_the_defined_error() {
    let vm = vm();
    vm.run(
        r#"
(define table (dict))
(defclass Evil
  :eq (lambda (a b) (begin (del! table stored) (put! table stored "reassigned") false))
  :hash (lambda (x) 1))
(define stored (make Evil))
(put! table stored "value")
"#,
    )
    .unwrap();
    // A read answers from the candidate it compared: not equal, so not found (and it never
    // fails, however the eq mutates the dict).
    assert_eq!(run(&vm, "(get table (make Evil) \"absent\")"), "\"absent\"");
    // A write validates after each eq: every attempt found a new entry with the same hash, so
    // it gives up with the defined error.
    assert_eq!(
        run(&vm, "(put! table (make Evil) 1)"),
        "error: dict mutated during lookup"
    );
    // Identity needs no eq; the dict stays consistent and usable.
    assert_eq!(run(&vm, "(get table stored)"), "\"reassigned\"");
    assert_eq!(run(&vm, "(len table)"), "1");
}

#[test]
fn eq_reading_the_same_dict_is_fine() {
    let vm = vm();
    vm.run(
        r#"
(define table (dict "k" 1))
(defclass Peek
  :eq (lambda (a b) (= (get table "k") 1))
  :hash (lambda (x) 7))
(put! table (make Peek) "v")
"#,
    )
    .unwrap();
    assert_eq!(run(&vm, "(get table (make Peek))"), "\"v\"");
}

#[test]
fn failing_hash_and_eq_are_script_errors() {
    let vm = vm();
    vm.run(
        r#"
(define d (dict))
(defclass Boom :eq (lambda (a b) (error "eq failed")) :hash (lambda (x) 3))
(defclass NoHash :hash (lambda (x) "not an int"))
(put! d (make Boom) 1)
"#,
    )
    .unwrap();
    assert_eq!(run(&vm, "(get d (make Boom))"), "error: eq failed");
    assert_eq!(
        run(&vm, "(put! d (make NoHash) 1)"),
        "error: __hash__ returned str"
    );
    assert_eq!(run(&vm, "(get d (list 1))"), "error: unhashable type: list");
    assert_eq!(run(&vm, "(len d)"), "1");
}

#[test]
fn constants_are_frozen() {
    let vm = vm();
    vm.run(r#"(const C (dict "a" (dict "b" 2)))"#).unwrap();
    assert_eq!(run(&vm, "(frozen? (get C \"a\"))"), "true");
    assert_eq!(
        run(&vm, r#"(put! (get C "a") "c" 3)"#),
        "error: cannot modify frozen dict"
    );
    // Lists inside a constant are frozen too.
    vm.run(r#"(const L (dict "xs" (list 1 2)))"#).unwrap();
    assert_eq!(run(&vm, r#"(frozen? (get L "xs"))"#), "true");
    // All or nothing: an instance inside makes the freeze fail and nothing is frozen.
    vm.run(POINT).unwrap();
    vm.run(r#"(define inner (dict "x" 1))"#).unwrap();
    vm.run(r#"(define xs (list 1))"#).unwrap();
    assert_eq!(
        run(
            &vm,
            r#"(const D (dict "ok" inner "xs" xs "p" (make Point 1 2)))"#
        ),
        "error: cannot freeze root[\"p\"]: instance cannot be frozen"
    );
    assert_eq!(run(&vm, "(frozen? inner)"), "false");
    assert_eq!(run(&vm, "(frozen? xs)"), "false");
}

#[test]
fn sort_with_a_mutating_comparator() {
    let vm = vm();
    vm.run("(define l (list 3 1 2))").unwrap();
    assert_eq!(
        run(
            &vm,
            "(sort! l (lambda (a b) (begin (append! l 0) (< a b))))"
        ),
        "error: list modified during sort"
    );
    vm.run("(define m (list 3 1 2)) (sort! m (lambda (a b) (< a b)))")
        .unwrap();
    assert_eq!(run(&vm, "m"), "(1 2 3)");
}
