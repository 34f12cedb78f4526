//! The example trees of the README: the realistic one checks clean, the broken one shows every
//! mistake it documents, once each.

use crate::util::{json, policyc};

#[test]
fn online_shop_checks_clean() {
    let run = policyc(&[
        "check",
        "--format",
        "json",
        "--deny-warnings",
        "examples/online-shop",
    ]);
    let v = json(&run.stdout);
    assert_eq!(v["diagnostics"], serde_json::json!([]), "{}", run.stdout);
    assert!(v["summary"]["policies"].as_u64().unwrap_or(0) >= 10);
    assert!(v["summary"]["workloads"].as_u64().unwrap_or(0) >= 8);
    assert_eq!(run.code, 0);
}

#[test]
fn broken_example_reports_each_documented_mistake() {
    let run = policyc(&["check", "--format", "json", "examples/broken"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let v = json(&run.stdout);
    let mut found: Vec<(String, String)> = v["diagnostics"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let file = d["file"].as_str().unwrap_or_default();
            let name = file.rsplit('/').next().unwrap_or_default().to_owned();
            (name, d["code"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    found.sort();
    let expected = [
        ("01-yaml-syntax.yaml", "PL002"),
        ("02-unknown-field.yaml", "PL101"),
        ("03-wrong-type.yaml", "PL102"),
        ("04-missing-pod-selector.yaml", "PL103"),
        ("05-invalid-name.yaml", "PL110"),
        ("06-bad-label-value.yaml", "PL202"),
        ("07-in-without-values.yaml", "PL204"),
        ("08-cidr-prefix-33.yaml", "PL301"),
        ("09-cidr-host-bits.yaml", "PL302"),
        ("10-except-outside-cidr.yaml", "PL303"),
        ("11-port-out-of-range.yaml", "PL401"),
        ("12-end-port-below-port.yaml", "PL403"),
        ("13-end-port-named-port.yaml", "PL403"),
        ("14-protocol-http.yaml", "PL404"),
        ("15-policy-type-inbound.yaml", "PL405"),
        ("16-unknown-entity.yaml", "PL501"),
        ("17-bad-fqdn-pattern.yaml", "PL502"),
        ("18-http-path-regex.yaml", "PL504"),
        ("19-http-on-udp.yaml", "PL506"),
        ("20-icmp-type-typo.yaml", "PL507"),
        ("21-ccnp-two-subjects.yaml", "PL508"),
        ("22-duplicate-name-second.yaml", "PL112"),
        ("23-selects-nothing.yaml", "PL601"),
        ("24-shadowed-by-deny.yaml", "PL602"),
        ("25-egress-to-world.yaml", "PL603"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    assert_eq!(found, expected);
}
