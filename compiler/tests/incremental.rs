//! `Compiled::update_policies`: a compile of tree A updated with tree B (one or more policies
//! modified, added or removed) judges every flow as a fresh compile of B does, and as the
//! reference evaluator reads B.

#![allow(clippy::unwrap_used)]

mod common;

use common::{interesting_peers, interesting_ports};
use compiler::bundle::{Bundle, Dir, L7Set, Options};
use compiler::flow::{Flow, HttpRequest, Peer};
use compiler::lookup::{Decision, Evaluator, SideDecision};
use compiler::lower::{compile, Compiled, PolicyKey, UpdateError, UpdateStats};
use policy_lang::model::{PolicyKind, Protocol};
use policy_lang::{Checked, Severity};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Loading trees.

fn assert_no_errors(checked: &Checked, what: &str) {
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{:?}: {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "{what} has errors: {errors:#?}");
}

fn check_text(yaml: &str) -> Checked {
    let checked = policy_lang::check_sources(vec![("t.yaml".into(), yaml.to_owned())]);
    assert_no_errors(&checked, "the tree");
    checked
}

fn check_dir(dir: &Path) -> Checked {
    let checked = policy_lang::check(&[dir.to_path_buf()]);
    assert_no_errors(&checked, &dir.display().to_string());
    checked
}

fn fresh(checked: &Checked) -> Compiled {
    compile(&checked.tree, &checked.sources, None, Options::default())
}

fn key(kind: PolicyKind, namespace: &str, name: &str) -> PolicyKey {
    (kind, namespace.to_owned(), name.to_owned())
}

const NP: PolicyKind = PolicyKind::NetworkPolicy;
const CNP: PolicyKind = PolicyKind::CiliumNetworkPolicy;
const CCNP: PolicyKind = PolicyKind::CiliumClusterwideNetworkPolicy;

// ---------------------------------------------------------------------------------------------
// Comparing bundles flow by flow.

/// What a flow's decision means, independent of numbering (policy, L7 set and rule indexes):
/// the verdict, each side's reason and enforcement, and the L7 rules a redirect applies (by the
/// policy and rule they come from).
#[derive(Debug, PartialEq, Eq)]
struct Meaning {
    verdict: compiler::flow::Verdict,
    sides: Vec<(Dir, String, bool, BTreeSet<String>)>,
    l7: Vec<(bool, &'static str, Option<String>)>,
}

fn rule_name(bundle: &Bundle, rule: u32) -> String {
    let o = &bundle.rules[rule as usize];
    format!("{} #{}", o.policy(), o.rule_index)
}

fn meaning(bundle: &Bundle, d: &Decision) -> Meaning {
    let side = |s: &SideDecision| {
        let mut l7 = BTreeSet::new();
        for set in &s.l7 {
            match &bundle.l7[*set as usize] {
                L7Set::Http(rules) => l7.extend(rules.iter().map(|h| {
                    format!(
                        "http {:?} {:?} {:?} {:?} {}",
                        h.method,
                        h.path,
                        h.host,
                        h.headers,
                        rule_name(bundle, h.rule)
                    )
                })),
                L7Set::Dns(names) => l7.extend(names.iter().map(|n| {
                    format!(
                        "dns {:?} {:?} {}",
                        n.name,
                        n.pattern,
                        rule_name(bundle, n.rule)
                    )
                })),
            }
        }
        (s.direction, format!("{:?}", s.reason), s.enforced, l7)
    };
    Meaning {
        verdict: d.verdict,
        sides: d.egress.iter().chain(d.ingress.iter()).map(side).collect(),
        l7: d
            .l7
            .iter()
            .map(|l| {
                (
                    l.allowed,
                    l.protocol,
                    l.matched_rule.map(|r| rule_name(bundle, r)),
                )
            })
            .collect(),
    }
}

/// Flows over the interesting peers and ports of the bundles: TCP on every interesting port,
/// UDP on the ports of entries UDP can match, SCTP on a few, ICMP, HTTP requests to the L7
/// ports of the test trees, DNS queries.
fn all_flows(b: &Checked, compiled: &[&Compiled], extra_names: &[&Checked]) -> Vec<Flow> {
    let mut peers: Vec<Peer> = Vec::new();
    let mut ports: BTreeSet<u16> = BTreeSet::new();
    // UDP: the ports of entries that UDP can match, and a few more.
    let mut udp_ports: BTreeSet<u16> = [1, 53, 8080].into();
    for c in compiled {
        for p in &c.bundle.policies {
            for e in p.entries.iter().filter(|e| {
                e.key.protocol == compiler::bundle::proto::UDP
                    || e.key.protocol == compiler::bundle::proto::ANY
            }) {
                udp_ports.insert(e.key.port.first());
                udp_ports.insert(e.key.port.last());
            }
        }
        peers.extend(interesting_peers(b, c));
        for other in extra_names {
            peers.extend(interesting_peers(other, c));
        }
        ports.extend(interesting_ports(c));
    }
    peers.sort();
    peers.dedup();
    let workloads: Vec<&Peer> = peers
        .iter()
        .filter(|p| matches!(p, Peer::Workload(_)))
        .collect();
    let requests = [
        HttpRequest {
            method: "GET".into(),
            path: "/api/v1/products/1".into(),
            host: None,
            headers: vec![],
        },
        HttpRequest {
            method: "POST".into(),
            path: "/admin".into(),
            host: Some("example.com".into()),
            headers: vec![("X-Shop-Client".into(), "storefront".into())],
        },
    ];
    let mut flows = Vec::new();
    let mut push = |from: &Peer, to: &Peer, protocol, port, http, dns| {
        flows.push(Flow {
            from: from.clone(),
            to: to.clone(),
            protocol,
            port,
            http,
            dns,
        })
    };
    for a in &peers {
        for b in &workloads {
            for (from, to) in [(a, *b), (*b, a)] {
                for port in &ports {
                    push(from, to, Protocol::Tcp, *port, None, None);
                }
                for port in &udp_ports {
                    push(from, to, Protocol::Udp, *port, None, None);
                }
                for port in [1u16, 80, 9090] {
                    push(from, to, Protocol::Sctp, port, None, None);
                }
                for (protocol, t) in [
                    (Protocol::Icmp, 8u16),
                    (Protocol::Icmp, 0),
                    (Protocol::IcmpV6, 128),
                ] {
                    push(from, to, protocol, t, None, None);
                }
                for port in [8080u16, 7070] {
                    for r in &requests {
                        push(from, to, Protocol::Tcp, port, Some(r.clone()), None);
                    }
                }
                for name in ["api.psp.example.com", "x.unrelated.org"] {
                    push(from, to, Protocol::Udp, 53, None, Some(name.to_owned()));
                }
            }
        }
    }
    flows
}

/// Asserts that the updated bundle judges every flow as the fresh compile of B does (verdict,
/// sides, L7 rules) and as the reference evaluator reads B. Returns whether (1) or not (0) some
/// flow's verdict differs between `before` (A compiled) and B, to make sure a test changes
/// something.
fn assert_equivalent(
    a: &Checked,
    b: &Checked,
    before: &Compiled,
    updated: &Compiled,
    fresh_b: &Compiled,
) -> usize {
    let flows = all_flows(b, &[fresh_b, updated, before], &[a]);
    assert!(!flows.is_empty());
    let ev_updated = Evaluator::new(&updated.bundle);
    let ev_fresh = Evaluator::new(&fresh_b.bundle);
    let ev_before = Evaluator::new(&before.bundle);
    let mut changed = 0;
    for flow in &flows {
        let u = ev_updated.evaluate(flow);
        let f = ev_fresh.evaluate(flow);
        let (mu, mf) = (meaning(&updated.bundle, &u), meaning(&fresh_b.bundle, &f));
        if mu != mf {
            panic!(
                "updated and fresh bundles disagree on {} -> {} {:?}/{} http={:?} dns={:?}\n\
                 updated: {mu:#?}\nfresh: {mf:#?}\nupdated decision: {u:#?}\nfresh decision: {f:#?}",
                flow.from.display(&fresh_b.inventory),
                flow.to.display(&fresh_b.inventory),
                flow.protocol,
                flow.port,
                flow.http,
                flow.dns,
            );
        }
        let reference =
            compiler::reference::evaluate(&b.tree, &fresh_b.inventory, flow, true).verdict;
        assert_eq!(
            reference,
            u.verdict,
            "reference and updated bundle disagree on {} -> {} {:?}/{} http={:?} dns={:?}",
            flow.from.display(&fresh_b.inventory),
            flow.to.display(&fresh_b.inventory),
            flow.protocol,
            flow.port,
            flow.http,
            flow.dns,
        );
        // Counting stops at the first difference: one is enough to show the change matters.
        if changed == 0 && ev_before.evaluate(flow).verdict != u.verdict {
            changed += 1;
        }
    }
    changed
}

/// Compiles A, updates it with B and `changed`, compiles B fresh, and compares. Returns the
/// update's statistics and how many flows changed verdict from A to B.
fn check_update(a: &Checked, b: &Checked, changed: &[PolicyKey]) -> (UpdateStats, usize) {
    let before = fresh(a);
    let mut updated = fresh(a);
    let stats = updated
        .update_policies(&b.tree, &b.sources, changed)
        .expect("update");
    let fresh_b = fresh(b);
    let differing = assert_equivalent(a, b, &before, &updated, &fresh_b);
    // Every entry of a table in use refers to live rules only.
    for ep in &updated.bundle.endpoints {
        for e in &updated.bundle.policies[ep.policy as usize].entries {
            for r in &e.rules {
                assert!(
                    updated.rule_alive(*r as usize),
                    "entry {e:?} refers to dead rule {r}"
                );
            }
        }
    }
    assert_eq!(updated.bundle.rules.len(), updated.rules.len());
    (stats, differing)
}

/// Like [`check_update`], and the change must make a difference to some flow.
fn check_changing_update(a: &Checked, b: &Checked, changed: &[PolicyKey]) -> UpdateStats {
    let (stats, differing) = check_update(a, b, changed);
    assert!(differing > 0, "the change makes no difference: {stats:?}");
    stats
}

// ---------------------------------------------------------------------------------------------
// Small trees.

/// Namespaces `prod` (env=prod), `dev` (env=dev) and `kube-system`; workloads:
///
/// | workload            | labels              | IPs       | ports                          |
/// |---------------------|---------------------|-----------|--------------------------------|
/// | prod/web            | app=web             | 10.0.0.1  | http 8080/TCP, dns 5353/UDP    |
/// | prod/api            | app=api             | 10.0.0.2  | http 9090/TCP                  |
/// | prod/client         | app=client          | 10.0.0.3  |                                |
/// | dev/client          | app=client          | 10.1.0.3  |                                |
/// | dev/api             | app=api             | 10.1.0.2  | http 7070/TCP                  |
/// | dev/batch           | app=batch (Deploy.) | none      |                                |
/// | kube-system/coredns | k8s-app=kube-dns    | 10.2.0.10 | dns 53/UDP                     |
const BASE: &str = include_str!("../../testdata/compiler/base-inventory.yaml");

const WEB_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-ingress
  namespace: prod
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: api}
      ports:
        - {port: http, protocol: TCP}
"#;

const API_L7: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: api-l7
  namespace: dev
spec:
  endpointSelector:
    matchLabels: {app: api}
  ingress:
    - fromEntities: [cluster]
      toPorts:
        - ports:
            - {port: "7070", protocol: TCP}
          rules:
            http:
              - {method: GET, path: "/api/.*"}
"#;

const CLIENT_EGRESS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: client-egress
  namespace: prod
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toCIDRSet:
        - cidr: 10.0.0.0/8
          except: [10.1.0.0/16]
      toPorts:
        - ports:
            - {port: "8080", protocol: TCP}
            - {port: "9090", protocol: TCP}
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
            k8s-app: kube-dns
      toPorts:
        - ports:
            - {port: "53", protocol: UDP}
          rules:
            dns:
              - matchPattern: "*"
    - toFQDNs:
        - matchName: example.com
      toPorts:
        - ports:
            - {port: "443", protocol: TCP}
"#;

const DEV_DEFAULT_DENY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: dev
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#;

const DEV_EGRESS_NAMED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: egress-named
  namespace: dev
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
    - to:
        - namespaceSelector:
            matchLabels: {env: prod}
      ports:
        - {port: http, protocol: TCP}
"#;

const SMALL_POLICIES: [&str; 5] = [
    WEB_INGRESS,
    API_L7,
    CLIENT_EGRESS,
    DEV_DEFAULT_DENY,
    DEV_EGRESS_NAMED,
];

fn small_tree(policies: &[&str]) -> Checked {
    let mut yaml = BASE.to_owned();
    for p in policies {
        yaml.push_str("\n---\n");
        yaml.push_str(p);
    }
    check_text(&yaml)
}

/// The small policies with policy `i` replaced.
fn small_with(i: usize, text: &str) -> Checked {
    let mut policies = SMALL_POLICIES.to_vec();
    policies[i] = text;
    small_tree(&policies)
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` is not unique");
    text.replacen(from, to, 1)
}

#[test]
fn small_port_added() {
    let a = small_tree(&SMALL_POLICIES);
    let web = replace_once(
        WEB_INGRESS,
        "        - {port: http, protocol: TCP}\n",
        "        - {port: http, protocol: TCP}\n        - {port: dns, protocol: UDP}\n",
    );
    let b = small_with(0, &web);
    let stats = check_changing_update(&a, &b, &[key(NP, "prod", "web-ingress")]);
    // The policyTypes rule lowers as before and is kept; the ingress rule is replaced.
    assert_eq!(
        (stats.kept_rules, stats.removed_rules, stats.added_rules),
        (1, 1, 1),
        "{stats:?}"
    );
}

#[test]
fn small_subject_and_peer_selectors_changed() {
    let a = small_tree(&SMALL_POLICIES);
    let subject = replace_once(
        WEB_INGRESS,
        "matchLabels: {app: web}",
        "matchLabels: {app: client}",
    );
    check_changing_update(
        &a,
        &small_with(0, &subject),
        &[key(NP, "prod", "web-ingress")],
    );
    let peer = replace_once(
        WEB_INGRESS,
        "        - podSelector:\n            matchLabels: {app: api}\n",
        "        - namespaceSelector: {}\n",
    );
    check_changing_update(&a, &small_with(0, &peer), &[key(NP, "prod", "web-ingress")]);
    let named = replace_once(DEV_EGRESS_NAMED, "{env: prod}", "{env: dev}");
    check_changing_update(
        &a,
        &small_with(4, &named),
        &[key(NP, "dev", "egress-named")],
    );
}

#[test]
fn small_l7_rules_changed() {
    let a = small_tree(&SMALL_POLICIES);
    let l7 = replace_once(
        API_L7,
        "              - {method: GET, path: \"/api/.*\"}\n",
        "              - {method: POST}\n",
    );
    check_changing_update(&a, &small_with(1, &l7), &[key(CNP, "dev", "api-l7")]);
}

#[test]
fn small_deny_added() {
    let a = small_tree(&SMALL_POLICIES);
    let deny = format!(
        "{CLIENT_EGRESS}  egressDeny:\n    - toEndpoints:\n        - matchLabels:\n            k8s:io.kubernetes.pod.namespace: kube-system\n            k8s-app: kube-dns\n      toPorts:\n        - ports:\n            - {{port: \"53\", protocol: UDP}}\n"
    );
    check_changing_update(
        &a,
        &small_with(2, &deny),
        &[key(CNP, "prod", "client-egress")],
    );
}

#[test]
fn small_new_cidr_prefix_inside_existing_ones() {
    let a = small_tree(&SMALL_POLICIES);
    // A new policy allowing a /24 inside client-egress's 10.0.0.0/8 (and a /28 inside its
    // except): addresses there get new identities, which client-egress must still allow.
    let mut policies = SMALL_POLICIES.to_vec();
    let extra = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: api-egress
  namespace: prod
spec:
  endpointSelector:
    matchLabels: {app: api}
  egress:
    - toCIDR: [10.0.0.0/24, 10.1.0.0/28, 192.0.2.0/24]
"#;
    policies.push(extra);
    let b = small_tree(&policies);
    let stats = check_changing_update(&a, &b, &[key(CNP, "prod", "api-egress")]);
    assert_eq!(stats.removed_rules, 0);
    assert!(stats.new_local_identities >= 3, "{stats:?}");
    assert!(stats.recomputed_rules >= 1, "{stats:?}");
}

#[test]
fn small_new_cidr_prefix_in_modified_policy() {
    let a = small_tree(&SMALL_POLICIES);
    let egress = replace_once(
        CLIENT_EGRESS,
        "          except: [10.1.0.0/16]\n",
        "          except: [10.1.0.0/16, 10.0.0.128/25]\n        - cidr: 172.16.0.0/12\n",
    );
    let stats = check_changing_update(
        &a,
        &small_with(2, &egress),
        &[key(CNP, "prod", "client-egress")],
    );
    assert!(stats.new_local_identities >= 2, "{stats:?}");
}

#[test]
fn small_new_fqdn_selector() {
    let a = small_tree(&SMALL_POLICIES);
    let egress = replace_once(
        CLIENT_EGRESS,
        "        - matchName: example.com\n",
        "        - matchName: example.com\n        - matchPattern: \"*.unrelated.org\"\n",
    );
    let stats = check_changing_update(
        &a,
        &small_with(2, &egress),
        &[key(CNP, "prod", "client-egress")],
    );
    assert_eq!(stats.new_local_identities, 1);
}

#[test]
fn small_policy_removed_and_added() {
    let a = small_tree(&SMALL_POLICIES);
    let mut policies = SMALL_POLICIES.to_vec();
    policies.remove(3);
    let b = small_tree(&policies);
    let stats = check_changing_update(&a, &b, &[key(NP, "dev", "default-deny")]);
    assert_eq!(stats.added_rules, 0);
    // And back.
    check_changing_update(&b, &a, &[key(NP, "dev", "default-deny")]);
}

#[test]
fn small_clusterwide_policy_added_then_changed() {
    let a = small_tree(&SMALL_POLICIES);
    let ccnp = r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: no-batch
spec:
  endpointSelector:
    matchLabels: {app: client}
  egressDeny:
    - toEndpoints:
        - matchLabels: {app: api}
"#;
    let mut policies = SMALL_POLICIES.to_vec();
    policies.push(ccnp);
    let b = small_tree(&policies);
    // The namespace of a clusterwide policy is ignored.
    check_changing_update(&a, &b, &[key(CCNP, "whatever", "no-batch")]);
    let ccnp2 = replace_once(ccnp, "matchLabels: {app: api}", "matchLabels: {app: web}");
    policies.pop();
    policies.push(&ccnp2);
    let c = small_tree(&policies);
    check_changing_update(&b, &c, &[key(CCNP, "", "no-batch")]);
}

#[test]
fn small_several_changes_at_once_and_chained() {
    let a = small_tree(&SMALL_POLICIES);
    let web = replace_once(WEB_INGRESS, "{port: http, protocol: TCP}", "{port: 9090}");
    let mut policies = SMALL_POLICIES.to_vec();
    policies[0] = &web;
    policies.remove(3);
    let b = small_tree(&policies);
    let keys_ab = [
        key(NP, "prod", "web-ingress"),
        key(NP, "dev", "default-deny"),
        key(CNP, "prod", "nonexistent"),
    ];
    check_changing_update(&a, &b, &keys_ab);

    // A -> B -> C by two updates equals C compiled fresh.
    let egress = replace_once(
        CLIENT_EGRESS,
        "except: [10.1.0.0/16]",
        "except: [10.0.0.0/16]",
    );
    policies[2] = &egress;
    let c = small_tree(&policies);
    let before = fresh(&a);
    let mut updated = fresh(&a);
    updated
        .update_policies(&b.tree, &b.sources, &keys_ab)
        .unwrap();
    updated
        .update_policies(&c.tree, &c.sources, &[key(CNP, "prod", "client-egress")])
        .unwrap();
    let fresh_c = fresh(&c);
    assert!(assert_equivalent(&a, &c, &before, &updated, &fresh_c) > 0);
}

#[test]
fn no_change_keeps_every_verdict() {
    let a = small_tree(&SMALL_POLICIES);
    let before = fresh(&a);
    let mut updated = fresh(&a);
    let stats = updated.update_policies(&a.tree, &a.sources, &[]).unwrap();
    assert_eq!(stats, UpdateStats::default());
    assert_eq!(updated.bundle, before.bundle);
    // Naming policies that did not change recompiles them to the same verdicts.
    let all: Vec<PolicyKey> = a
        .tree
        .policies
        .iter()
        .map(|p| {
            (
                p.kind(),
                p.meta().namespace.value.clone(),
                p.meta().name.value.clone(),
            )
        })
        .collect();
    let stats = updated.update_policies(&a.tree, &a.sources, &all).unwrap();
    assert_eq!(
        (stats.removed_rules, stats.added_rules),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.kept_rules, before.rules.len());
    assert_eq!(stats.new_policies, 0);
    assert_eq!(updated.bundle, before.bundle);
}

#[test]
fn inventory_change_is_refused() {
    let a = small_tree(&SMALL_POLICIES);
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: extra
  namespace: prod
  labels: {app: web}
spec:
  containers:
    - {name: web, image: web:1}
"#;
    let mut policies = SMALL_POLICIES.to_vec();
    policies.push(pod);
    let b = small_tree(&policies);
    let mut updated = fresh(&a);
    let err = updated
        .update_policies(&b.tree, &b.sources, &[key(NP, "prod", "web-ingress")])
        .unwrap_err();
    assert!(matches!(err, UpdateError::InventoryChanged { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The online-shop example, edited on disk.

fn online_shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/online-shop")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the online shop with `edit` applied, checked.
fn edited_shop(name: &str, edit: impl FnOnce(&Path)) -> Checked {
    let dir = std::env::temp_dir().join(format!("incremental-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&online_shop(), &dir);
    edit(&dir);
    let checked = check_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    checked
}

fn edit_file(dir: &Path, file: &str, f: impl FnOnce(String) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(text)).unwrap();
}

/// Replaces the first `from` after `anchor`.
fn replace_after(text: &str, anchor: &str, from: &str, to: &str) -> String {
    let start = text.find(anchor).expect("anchor") + anchor.len();
    let at = start + text[start..].find(from).expect("text after anchor");
    format!("{}{to}{}", &text[..at], &text[at + from.len()..])
}

/// Removes the YAML document that contains `needle`.
fn remove_document(text: &str, needle: &str) -> String {
    let docs: Vec<&str> = text.split("\n---\n").collect();
    let kept: Vec<&str> = docs
        .iter()
        .copied()
        .filter(|d| !d.contains(needle))
        .collect();
    assert_eq!(
        kept.len() + 1,
        docs.len(),
        "`{needle}` is not in one document"
    );
    kept.join("\n---\n")
}

#[test]
fn online_shop_port_added() {
    let a = check_dir(&online_shop());
    let b = edited_shop("port", |d| {
        edit_file(d, "shop-frontend/network-policies.yaml", |t| {
            replace_after(
                &t,
                "name: allow-web-ingress",
                "        - port: http\n          protocol: TCP\n",
                "        - port: http\n          protocol: TCP\n        - port: 8443\n          protocol: TCP\n",
            )
        })
    });
    check_changing_update(&a, &b, &[key(NP, "shop-frontend", "allow-web-ingress")]);
}

#[test]
fn online_shop_selectors_changed() {
    let a = check_dir(&online_shop());
    let b = edited_shop("peer", |d| {
        edit_file(d, "payments/network-policies.yaml", |t| {
            replace_after(
                &t,
                "name: fraud-scorer-ingress",
                "app: payment-gateway",
                "app: ledger-db",
            )
        })
    });
    check_changing_update(&a, &b, &[key(NP, "payments", "fraud-scorer-ingress")]);
    let c = edited_shop("subject", |d| {
        edit_file(d, "shop-backend/network-policies.yaml", |t| {
            replace_after(
                &t,
                "name: allow-storefront-to-cart",
                "app: cart",
                "app: catalog",
            )
        })
    });
    check_changing_update(
        &a,
        &c,
        &[key(NP, "shop-backend", "allow-storefront-to-cart")],
    );
}

#[test]
fn online_shop_deny_added() {
    let a = check_dir(&online_shop());
    let b = edited_shop("deny", |d| {
        edit_file(d, "payments/cilium-policies.yaml", |t| {
            replace_once(
                &t,
                "        - 169.254.169.254/32",
                "        - 169.254.169.254/32\n  ingressDeny:\n    - fromEndpoints:\n        - matchLabels:\n            app: payment-gateway",
            )
        })
    });
    check_changing_update(&a, &b, &[key(CNP, "payments", "deny-instance-metadata")]);
}

#[test]
fn online_shop_new_cidr_prefixes() {
    let a = check_dir(&online_shop());
    // A deny of a /25 inside gateway-egress's 198.51.100.0/24.
    let b = edited_shop("cidr-deny", |d| {
        edit_file(d, "payments/cilium-policies.yaml", |t| {
            replace_once(
                &t,
                "        - 169.254.169.254/32",
                "        - 169.254.169.254/32\n        - 198.51.100.128/25",
            )
        })
    });
    check_changing_update(&a, &b, &[key(CNP, "payments", "deny-instance-metadata")]);
    // An allow elsewhere of a /27 inside it: gateway-egress must still allow those addresses.
    let c = edited_shop("cidr-allow", |d| {
        std::fs::write(
            d.join("shop-frontend/extra.yaml"),
            r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: storefront-partner
  namespace: shop-frontend
spec:
  endpointSelector:
    matchLabels:
      app: storefront
  egress:
    - toCIDR:
        - 198.51.100.192/27
        - 203.0.113.0/24
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
"#,
        )
        .unwrap();
    });
    let stats = check_changing_update(&a, &c, &[key(CNP, "shop-frontend", "storefront-partner")]);
    assert!(stats.recomputed_rules >= 1, "{stats:?}");
}

#[test]
fn online_shop_new_fqdn() {
    let a = check_dir(&online_shop());
    let b = edited_shop("fqdn", |d| {
        edit_file(d, "payments/cilium-policies.yaml", |t| {
            replace_once(
                &t,
                "        - matchName: api.psp.example.com\n",
                "        - matchName: api.psp.example.com\n        - matchName: example.com\n",
            )
        })
    });
    check_changing_update(&a, &b, &[key(CNP, "payments", "gateway-to-psp")]);
}

#[test]
fn online_shop_policy_removed_and_added() {
    let a = check_dir(&online_shop());
    let b = edited_shop("removed", |d| {
        edit_file(d, "payments/network-policies.yaml", |t| {
            remove_document(&t, "name: gateway-egress")
        })
    });
    check_changing_update(&a, &b, &[key(NP, "payments", "gateway-egress")]);
    check_changing_update(&b, &a, &[key(NP, "payments", "gateway-egress")]);
    let c = edited_shop("added", |d| {
        std::fs::write(
            d.join("shop-frontend/extra.yaml"),
            r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: storefront-partner
  namespace: shop-frontend
spec:
  podSelector:
    matchLabels:
      app: storefront
  policyTypes:
    - Egress
  egress:
    - to:
        - ipBlock:
            cidr: 203.0.113.0/24
      ports:
        - port: 443
          protocol: TCP
"#,
        )
        .unwrap();
    });
    check_changing_update(&a, &c, &[key(NP, "shop-frontend", "storefront-partner")]);
}

#[test]
fn online_shop_clusterwide_changed() {
    let a = check_dir(&online_shop());
    let b = edited_shop("ccnp", |d| {
        edit_file(d, "cluster/allow-prometheus-scrape.yaml", |t| {
            replace_once(&t, "port: \"9090\"", "port: \"9091\"")
        })
    });
    check_changing_update(&a, &b, &[key(CCNP, "", "allow-prometheus-scrape")]);
}

#[test]
fn online_shop_moved_policy_keeps_rules_with_new_origins() {
    let a = check_dir(&online_shop());
    let b = edited_shop("moved", |d| {
        edit_file(d, "payments/network-policies.yaml", |t| {
            format!("# two more lines\n# before every policy\n{t}")
        })
    });
    let changed = [
        key(NP, "payments", "default-deny"),
        key(NP, "payments", "allow-cart-to-gateway"),
        key(NP, "payments", "gateway-egress"),
        key(NP, "payments", "ledger-db-ingress"),
        key(NP, "payments", "fraud-scorer-ingress"),
    ];
    let (stats, differing) = check_update(&a, &b, &changed);
    assert_eq!(differing, 0);
    assert_eq!(
        (stats.removed_rules, stats.added_rules),
        (0, 0),
        "{stats:?}"
    );
    assert!(stats.kept_rules >= 5, "{stats:?}");
    assert_eq!(stats.new_policies, 0);
    // The kept rules carry the new positions.
    let mut updated = fresh(&a);
    updated
        .update_policies(&b.tree, &b.sources, &changed)
        .unwrap();
    let fresh_b = fresh(&b);
    let lines = |c: &Compiled| -> BTreeSet<(String, usize, u32)> {
        c.bundle
            .rules
            .iter()
            .filter(|o| o.namespace == "payments" && o.kind == "NetworkPolicy")
            .map(|o| (o.name.clone(), o.rule_index, o.line))
            .collect()
    };
    assert_eq!(lines(&updated), lines(&fresh_b));
    assert_ne!(lines(&updated), lines(&fresh(&a)));
}

#[test]
fn online_shop_no_change() {
    let a = check_dir(&online_shop());
    let before = fresh(&a);
    let mut updated = fresh(&a);
    updated.update_policies(&a.tree, &a.sources, &[]).unwrap();
    assert_eq!(updated.bundle, before.bundle);
    updated
        .update_policies(
            &a.tree,
            &a.sources,
            &[
                key(NP, "payments", "gateway-egress"),
                key(CNP, "shop-backend", "catalog-read-api"),
            ],
        )
        .unwrap();
    assert_eq!(assert_equivalent(&a, &a, &before, &updated, &before), 0);
}
