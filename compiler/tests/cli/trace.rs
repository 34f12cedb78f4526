//! `policyc trace`: one human and one JSON snapshot per kind of verdict on the shop fixture,
//! and the exit-status contract (0 allowed, 1 denied, 2 errors).

use crate::util::{json, policyc};

const TREE: &str = "testdata/trace/shop";

/// A named flow of the fixture, its arguments after `--from`, and the status it exits with.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    code: i32,
}

const CASES: &[Case] = &[
    Case {
        name: "allowed",
        args: &[
            "--from", "shop/api", "--to", "shop/db", "--port", "5432/TCP",
        ],
        code: 0,
    },
    Case {
        name: "default_deny",
        args: &[
            "--from", "shop/web", "--to", "shop/db", "--port", "5432/TCP",
        ],
        code: 1,
    },
    Case {
        name: "explicit_deny",
        args: &[
            "--from",
            "shop/api",
            "--to",
            "169.254.169.254",
            "--port",
            "443/TCP",
        ],
        code: 1,
    },
    Case {
        name: "l7_denied",
        args: &[
            "--from",
            "shop/web",
            "--to",
            "shop/api",
            "--port",
            "8080/TCP",
            "--http",
            "GET:/admin",
        ],
        code: 1,
    },
    Case {
        name: "l7_allowed",
        args: &[
            "--from",
            "shop/web",
            "--to",
            "shop/api",
            "--port",
            "8080/TCP",
            "--http",
            "GET:/api/v1/items",
        ],
        code: 0,
    },
    Case {
        name: "fqdn_allowed",
        args: &[
            "--from",
            "shop/web",
            "--to",
            "fqdn:api.example.com",
            "--port",
            "443/TCP",
        ],
        code: 0,
    },
    Case {
        name: "dns_allowed",
        args: &[
            "--from",
            "shop/web",
            "--to",
            "kube-system/kube-dns",
            "--port",
            "53/UDP",
            "--dns",
            "api.example.com",
        ],
        code: 0,
    },
    Case {
        name: "dns_refused",
        args: &[
            "--from",
            "shop/web",
            "--to",
            "kube-system/kube-dns",
            "--port",
            "53/UDP",
            "--dns",
            "evil.example.org",
        ],
        code: 1,
    },
];

fn trace(args: &[&str], format: &str) -> crate::util::Run {
    let mut all = vec!["trace", TREE];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", format]);
    policyc(&all)
}

#[test]
fn each_case_human_and_json() {
    for case in CASES {
        let human = trace(case.args, "human");
        let machine = trace(case.args, "json");
        insta::assert_snapshot!(format!("{}_human", case.name), human.stdout);
        insta::assert_snapshot!(format!("{}_json", case.name), machine.stdout);
        for run in [&human, &machine] {
            assert_eq!(run.code, case.code, "{}: {}", case.name, run.stderr);
            assert_eq!(run.stderr, "", "{}: nothing on stderr", case.name);
        }
        let v = json(&machine.stdout);
        let word = if case.code == 0 { "allowed" } else { "denied" };
        assert_eq!(v["verdict"], word, "{}", case.name);
        let last = human.stdout.lines().last().unwrap_or_default();
        let line = if case.code == 0 {
            "ALLOWED: "
        } else {
            "DENIED: "
        };
        assert!(last.starts_with(line), "{}: {last}", case.name);
    }
}

#[test]
fn explicit_deny_names_the_deny_and_the_allow_it_beats() {
    let v = json(
        &trace(
            &[
                "--from",
                "shop/api",
                "--to",
                "169.254.169.254",
                "--port",
                "443",
            ],
            "json",
        )
        .stdout,
    );
    let egress = &v["egress"];
    assert_eq!(egress["reason"], "denied");
    let actions: Vec<(&str, &str)> = egress["matched_rules"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("deny", "deny-instance-metadata"), ("allow", "api-egress")]
    );
    assert_eq!(v["ingress"], serde_json::Value::Null);
}

#[test]
fn other_reasons() {
    // (from, to, port, exit status, egress reason, ingress reason)
    let cases = [
        ("host", "shop/db", "5432", 0, None, Some("host_allowed")),
        ("world", "shop/web", "8080", 0, None, Some("allowed")),
        ("8.8.8.8", "shop/web", "9999", 1, None, Some("default_deny")),
        (
            "kube-system/kube-dns",
            "shop/web",
            "8080",
            1,
            Some("not_enforced"),
            Some("default_deny"),
        ),
    ];
    for (from, to, port, code, egress, ingress) in cases {
        let run = trace(&["--from", from, "--to", to, "--port", port], "json");
        assert_eq!(run.code, code, "{from} -> {to}: {}", run.stderr);
        let v = json(&run.stdout);
        assert_eq!(v["egress"]["reason"].as_str(), egress, "{from} -> {to}");
        assert_eq!(v["ingress"]["reason"].as_str(), ingress, "{from} -> {to}");
    }
}

#[test]
fn a_workload_reaching_itself_is_allowed() {
    let run = trace(
        &["--from", "shop/db", "--to", "shop/db", "--port", "9999"],
        "json",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run.stdout);
    assert_eq!(v["self_traffic"], true);
    assert_eq!(v["egress"], serde_json::Value::Null);
}

#[test]
fn an_address_takes_the_identity_of_its_longest_prefix() {
    for (ip, name) in [
        ("10.0.0.1", "cidr 10.0.0.0/8"),
        ("192.0.2.1", "cidr 0.0.0.0/0"),
        ("169.254.169.254", "cidr 169.254.169.254/32"),
    ] {
        let run = trace(&["--from", "shop/web", "--to", ip, "--port", "80"], "json");
        assert_eq!(run.code, 1, "{}", run.stderr);
        let v = json(&run.stdout);
        assert_eq!(v["to"]["kind"], "ip");
        assert_eq!(v["to"]["identities"][0]["name"], name, "{ip}");
    }
}

#[test]
fn errors_exit_2_with_a_message_on_stderr() {
    let cases: [&[&str]; 7] = [
        &["--from", "shop/nope", "--to", "shop/db", "--port", "80"],
        &["--from", "mars", "--to", "shop/db", "--port", "80"],
        &["--from", "shop/web", "--to", "shop/db", "--port", "80/XTP"],
        &["--from", "shop/web", "--to", "shop/db", "--port", "99999"],
        &[
            "--from", "shop/web", "--to", "shop/api", "--port", "80", "--http", "GET /x",
        ],
        &[
            "--from", "shop/web", "--to", "shop/api", "--port", "80", "--header", "X-A: 1",
        ],
        &["--from", "shop/web", "--port", "80"],
    ];
    for args in cases {
        let run = trace(args, "human");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn a_tree_with_errors_is_refused_with_its_findings() {
    let run = policyc(&[
        "trace",
        "testdata/diagnostics/PL105-duplicate-key.yaml",
        "--from",
        "world",
        "--to",
        "host",
        "--port",
        "80",
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("PL105"), "{}", run.stderr);
    assert!(run.stderr.contains("cannot be compiled"), "{}", run.stderr);
}

#[test]
fn colour_only_when_asked() {
    let args = [
        "trace", TREE, "--from", "shop/web", "--to", "shop/db", "--port", "5432",
    ];
    assert!(!policyc(&args).stdout.contains('\u{1b}'));
    let mut forced = args.to_vec();
    forced.extend(["--color", "always"]);
    assert!(policyc(&forced).stdout.contains("\u{1b}[31mDENIED"));
}

#[test]
fn help_has_examples_and_exit_statuses() {
    let run = policyc(&["trace", "--help"]);
    assert_eq!(run.code, 0);
    for needle in [
        "--from",
        "--to",
        "--port",
        "--http",
        "--header",
        "--host",
        "--dns",
        "--format",
        "fqdn:",
        "Examples:",
        "Exit status",
    ] {
        assert!(run.stdout.contains(needle), "--help lacks {needle}");
    }
}
