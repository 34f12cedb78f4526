//! `policyc matrix`: table, CSV and JSON on a small fixture, and the shape of the JSON on the
//! online-shop example (every ordered pair of workloads on every declared port).

use crate::util::{json, policyc};
use std::collections::BTreeSet;

const TREE: &str = "testdata/trace/shop";

#[test]
fn table_of_the_shop() {
    let run = policyc(&["matrix", TREE]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!("shop_table", run.stdout);
    // `human` is the table too.
    assert_eq!(
        policyc(&["matrix", TREE, "--format", "human"]).stdout,
        run.stdout
    );
}

#[test]
fn json_of_the_shop_on_chosen_ports() {
    let run = policyc(&[
        "matrix",
        TREE,
        "--ports",
        "8080/TCP,5432",
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("shop_json", run.stdout);
    let v = json(&run.stdout);
    // The order given, the protocol defaulting to TCP.
    assert_eq!(v["ports"], serde_json::json!(["8080/TCP", "5432/TCP"]));
    let keys: Vec<&String> = v
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 2);
}

#[test]
fn csv_of_the_shop() {
    let run = policyc(&["matrix", TREE, "--ports", "5432", "--format", "csv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("shop_csv", run.stdout);
    assert!(run.stdout.starts_with("from,to,port,allowed\n"));
}

#[test]
fn online_shop_json_has_every_pair_on_every_port() {
    let run = policyc(&["matrix", "examples/online-shop", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run.stdout);
    let ports: Vec<&str> = v["ports"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    let flows = v["flows"].as_array().cloned().unwrap_or_default();
    let workloads: BTreeSet<&str> = flows.iter().filter_map(|f| f["from"].as_str()).collect();
    assert!(workloads.len() >= 8, "{workloads:?}");
    assert!(!ports.is_empty());
    assert_eq!(flows.len(), workloads.len() * workloads.len() * ports.len());
    let mut seen = BTreeSet::new();
    for f in &flows {
        let key = (
            f["from"].as_str().unwrap_or_default(),
            f["to"].as_str().unwrap_or_default(),
            f["port"].as_str().unwrap_or_default(),
        );
        assert!(workloads.contains(key.1), "{key:?}");
        assert!(ports.contains(&key.2), "{key:?}");
        assert!(f["allowed"].is_boolean(), "{f}");
        assert!(seen.insert(key), "{key:?} twice");
        let fields: Vec<&String> = f
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(fields.len(), 4, "{f}");
    }
    // A workload always reaches itself.
    for w in &workloads {
        for p in &ports {
            assert!(flows.iter().any(|f| f["from"] == *w
                && f["to"] == *w
                && f["port"] == *p
                && f["allowed"] == true));
        }
    }
}

#[test]
fn colour_draws_ticks_and_crosses() {
    let run = policyc(&["matrix", TREE, "--color", "always"]);
    assert!(run.stdout.contains('✓') && run.stdout.contains('✗'));
    assert!(!policyc(&["matrix", TREE]).stdout.contains('✓'));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["matrix", TREE, "--ports", "80/QUIC"][..],
        &["matrix", TREE, "--ports", "http"],
        &["matrix", TREE, "--format", "xml"],
        &["matrix"],
    ] {
        let run = policyc(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!(run.stdout, "");
    }
    let broken = policyc(&["matrix", "testdata/diagnostics/PL105-duplicate-key.yaml"]);
    assert_eq!(broken.code, 2);
    assert!(broken.stderr.contains("PL105"), "{}", broken.stderr);
}
