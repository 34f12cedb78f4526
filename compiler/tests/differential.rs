//! The reference evaluator (typed policies, read directly) and the bundle evaluator (the
//! datapath's lookups on the compiled bundle) agree on every flow: over the example trees and
//! the conformance corpus here, and over generated trees in `proptest_differential.rs`.

mod common;

use common::{compare_all_flows, load_dir};
use std::path::Path;

#[test]
fn online_shop_evaluators_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/online-shop");
    let (checked, compiled) = load_dir(&root);
    let n = compare_all_flows(&checked, &compiled);
    assert!(n > 1000, "compared {n} flows");
}

#[test]
fn conformance_corpus_evaluators_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/netpol-analyzer/tests");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut total = 0;
    for dir in dirs {
        let (checked, compiled) = load_dir(&dir);
        total += compare_all_flows(&checked, &compiled);
    }
    assert!(total > 10_000, "compared {total} flows");
}
