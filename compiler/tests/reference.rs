//! The reference evaluator against small trees written as YAML, one rule of
//! `docs/semantics.md` at a time.

#![allow(clippy::unwrap_used)]

use compiler::flow::{Flow, HttpRequest, Peer, Verdict};
use compiler::inventory::Inventory;
use compiler::reference::{evaluate, rule_ref, Explanation, L7Outcome, L7Protocol, Reason};
use policy_lang::model::{Direction, PolicyKind, Protocol, Tree};
use policy_lang::Severity;

/// Namespaces `prod` (env=prod) and `dev` (env=dev), `kube-system`, and these workloads:
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

struct Fx {
    tree: Tree,
    inventory: Inventory,
}

fn fixture(policies: &str) -> Fx {
    let yaml = format!("{BASE}\n---\n{policies}");
    let checked = policy_lang::check_sources(vec![("t.yaml".into(), yaml)]);
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{:?}: {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "the tree has errors: {errors:#?}");
    let inventory = Inventory::from_tree(&checked.tree);
    Fx {
        tree: checked.tree,
        inventory,
    }
}

fn proto(p: &str) -> Protocol {
    match p {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        "ICMP" => Protocol::Icmp,
        "ICMPv6" => Protocol::IcmpV6,
        other => panic!("protocol {other}"),
    }
}

impl Fx {
    fn peer(&self, text: &str) -> Peer {
        Peer::parse(text, &self.inventory).unwrap()
    }

    fn flow(&self, from: &str, to: &str, protocol: &str, port: u16) -> Flow {
        Flow {
            from: self.peer(from),
            to: self.peer(to),
            protocol: proto(protocol),
            port,
            http: None,
            dns: None,
        }
    }

    fn eval(&self, flow: &Flow) -> Explanation {
        evaluate(&self.tree, &self.inventory, flow, true)
    }

    /// The verdict of a plain L4 flow (host ingress switch on).
    fn verdict(&self, from: &str, to: &str, protocol: &str, port: u16) -> Verdict {
        self.eval(&self.flow(from, to, protocol, port)).verdict
    }

    fn allowed(&self, from: &str, to: &str, protocol: &str, port: u16) -> bool {
        self.verdict(from, to, protocol, port) == Verdict::Allowed
    }
}

use Verdict::{Allowed, Denied};

// ------------------------------------------------------------------------------------ basics

#[test]
fn no_policy_allows_everything() {
    let fx = fixture("");
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    assert_eq!(e.verdict, Allowed);
    let eg = e.egress.unwrap();
    let ing = e.ingress.unwrap();
    assert_eq!((eg.reason, eg.enforced), (Reason::NoPolicy, false));
    assert_eq!((ing.reason, ing.enforced), (Reason::NoPolicy, false));
    assert!(e.l7.is_none());
    // Neither side is a workload: nothing is judged.
    let e = fx.eval(&fx.flow("1.2.3.4", "world", "UDP", 53));
    assert_eq!(e.verdict, Allowed);
    assert!(e.egress.is_none() && e.ingress.is_none());
}

#[test]
fn self_traffic_is_always_allowed() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"#,
    );
    let e = fx.eval(&fx.flow("prod/web", "prod/web", "TCP", 8080));
    assert_eq!(e.verdict, Allowed);
    let ing = e.ingress.unwrap();
    assert_eq!(ing.reason, Reason::Self_);
    assert!(ing.enforced);
    assert_eq!(ing.selecting_policies, ["NetworkPolicy prod/deny-all"]);
    assert_eq!(e.egress.unwrap().reason, Reason::Self_);
    // The workload's own IP stands for the workload.
    assert!(fx.allowed("prod/web", "10.0.0.1", "TCP", 1));
    assert!(!fx.allowed("prod/web", "prod/api", "TCP", 9090));
}

// ------------------------------------------------------------------------------ NetworkPolicy

#[test]
fn np_default_deny_ingress() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
"#,
    );
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    assert_eq!(e.verdict, Denied);
    let ing = e.ingress.unwrap();
    assert_eq!((ing.reason, ing.enforced), (Reason::DefaultDeny, true));
    assert_eq!(ing.selecting_policies, ["NetworkPolicy prod/web-deny"]);
    assert_eq!(e.egress.unwrap().reason, Reason::NoPolicy);
    // Egress of web is not enforced (no egress key), other pods are not selected.
    assert!(fx.allowed("prod/web", "prod/api", "TCP", 9090));
    assert!(fx.allowed("prod/client", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("world", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("1.2.3.4", "prod/web", "TCP", 8080));
}

#[test]
fn np_policy_types_default_follows_the_egress_key() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-both, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  egress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ingress-only, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: api}
  ingress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress-only, namespace: dev}
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  ingress:
    - {}
"#,
    );
    // `egress` key present, no policyTypes: Ingress and Egress.
    let e = fx.eval(&fx.flow("prod/web", "prod/client", "TCP", 80));
    assert_eq!(e.verdict, Denied);
    assert_eq!(e.egress.as_ref().unwrap().reason, Reason::DefaultDeny);
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 8080));
    // Ingress only.
    assert!(!fx.allowed("prod/client", "prod/api", "TCP", 9090));
    assert!(fx.allowed("prod/api", "prod/client", "TCP", 80));
    // Explicit Egress only: the ingress rules are ignored and ingress is open.
    assert!(fx.allowed("prod/client", "dev/client", "TCP", 80));
    let e = fx.eval(&fx.flow("dev/client", "prod/client", "TCP", 80));
    assert_eq!(e.egress.unwrap().reason, Reason::DefaultDeny);
    let e = fx.eval(&fx.flow("prod/client", "dev/client", "TCP", 80));
    let ing = e.ingress.unwrap();
    assert_eq!((ing.reason, ing.enforced), (Reason::NoPolicy, false));
    assert!(ing.selecting_policies.is_empty());
}

#[test]
fn np_namespace_and_pod_selector_in_one_peer_or_two() {
    let one = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {env: dev}
          podSelector:
            matchLabels: {app: client}
"#,
    );
    assert!(one.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(!one.allowed("dev/api", "prod/web", "TCP", 8080));
    assert!(!one.allowed("prod/client", "prod/web", "TCP", 8080));

    let two = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {env: dev}
        - podSelector:
            matchLabels: {app: client}
"#,
    );
    assert!(two.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(two.allowed("dev/api", "prod/web", "TCP", 8080));
    assert!(two.allowed("dev/batch", "prod/web", "TCP", 8080));
    assert!(two.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(!two.allowed("prod/api", "prod/web", "TCP", 8080));
    assert!(!two.allowed("kube-system/coredns", "prod/web", "TCP", 8080));
    // Selector peers never match entities or addresses.
    let from_host = two.flow("host", "prod/web", "TCP", 8080);
    assert_eq!(
        evaluate(&two.tree, &two.inventory, &from_host, false).verdict,
        Denied
    );
    assert!(!two.allowed("10.9.9.9", "prod/web", "TCP", 8080));
    assert!(!two.allowed("world", "prod/web", "TCP", 8080));
}

#[test]
fn np_empty_and_absent_peers_and_selectors() {
    // `ingress: [{}]` and `from: []`: every peer, entities and addresses included.
    for rule in ["- {}", "- from: []", "- ports: []"] {
        let fx = fixture(&format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: open, namespace: prod}}
spec:
  podSelector:
    matchLabels: {{app: web}}
  ingress:
    {rule}
"#
        ));
        for peer in [
            "prod/client",
            "dev/client",
            "10.9.9.9",
            "world",
            "remote-node",
            "fqdn:example.com",
        ] {
            assert!(fx.allowed(peer, "prod/web", "TCP", 8080), "{rule} {peer}");
            assert!(fx.allowed(peer, "prod/web", "ICMP", 8), "{rule} {peer}");
        }
    }
    // No rules at all: nothing is allowed.
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: closed, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress: []
"#,
    );
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 8080));
    // `podSelector: {}`: every pod of the policy's namespace; `namespaceSelector: {}`: every
    // pod of every namespace; neither matches addresses.
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-ns, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-ns, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: api}
  ingress:
    - from:
        - namespaceSelector: {}
"#,
    );
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("dev/client", "prod/api", "TCP", 9090));
    assert!(fx.allowed("kube-system/coredns", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("10.9.9.9", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("world", "prod/api", "TCP", 9090));
    // A namespaceSelector on the metadata.name label the API server adds.
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-name, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {kubernetes.io/metadata.name: kube-system}
"#,
    );
    assert!(fx.allowed("kube-system/coredns", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("dev/client", "prod/web", "TCP", 8080));
}

#[test]
fn np_ip_block_with_except() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-ten, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/8
            except: [10.1.0.0/16]
"#,
    );
    // IP peers.
    assert!(fx.allowed("prod/client", "10.5.5.5", "TCP", 443));
    assert!(!fx.allowed("prod/client", "10.1.5.5", "TCP", 443));
    assert!(!fx.allowed("prod/client", "192.168.0.1", "TCP", 443));
    // Workloads whose pod IPs all lie inside.
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("prod/client", "kube-system/coredns", "UDP", 53));
    assert!(!fx.allowed("prod/client", "dev/api", "TCP", 7070));
    // A workload without IPs is never inside an ipBlock.
    assert!(!fx.allowed("prod/client", "dev/batch", "TCP", 80));
    // `world` only by a /0.
    assert!(!fx.allowed("prod/client", "world", "TCP", 443));
    assert!(!fx.allowed("prod/client", "host", "TCP", 443));

    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-internet, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except: [10.0.0.0/8]
      ports:
        - port: 443
"#,
    );
    assert!(fx.allowed("prod/client", "world", "TCP", 443));
    assert!(fx.allowed("prod/client", "8.8.8.8", "TCP", 443));
    assert!(!fx.allowed("prod/client", "8.8.8.8", "TCP", 80));
    assert!(!fx.allowed("prod/client", "10.9.9.9", "TCP", 443));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 443));
    assert!(!fx.allowed("prod/client", "2001:db8::1", "TCP", 443));
}

#[test]
fn np_named_ports_on_ingress_and_egress() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-http, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - ports:
        - port: http
        - port: dns
          protocol: UDP
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-http, namespace: dev}
spec:
  podSelector:
    matchLabels: {app: client}
  policyTypes: [Egress]
  egress:
    - ports:
        - port: http
"#,
    );
    // Ingress: resolved on the destination (web: http = 8080/TCP, dns = 5353/UDP).
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 9090));
    assert!(!fx.allowed("prod/client", "prod/web", "UDP", 8080));
    assert!(fx.allowed("prod/client", "prod/web", "UDP", 5353));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 5353));
    // Egress: resolved on the peer.
    assert!(fx.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("dev/client", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("dev/client", "prod/api", "TCP", 8080));
    assert!(fx.allowed("dev/client", "dev/api", "TCP", 7070));
    // Never a non-workload peer, nor a workload without that port name.
    assert!(!fx.allowed("dev/client", "10.9.9.9", "TCP", 8080));
    assert!(!fx.allowed("dev/client", "world", "TCP", 8080));
    assert!(!fx.allowed("dev/client", "prod/client", "TCP", 8080));
}

#[test]
fn np_end_port_ranges_and_protocols() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - ports:
        - port: 8000
          endPort: 8100
        - protocol: UDP
        - protocol: SCTP
          port: 9
"#,
    );
    for (p, port, ok) in [
        ("TCP", 7999, false),
        ("TCP", 8000, true),
        ("TCP", 8080, true),
        ("TCP", 8100, true),
        ("TCP", 8101, false),
        ("UDP", 1, true),
        ("UDP", 65535, true),
        ("SCTP", 9, true),
        ("SCTP", 8000, false),
        ("ICMP", 8, false),
    ] {
        assert_eq!(
            fx.allowed("prod/client", "prod/web", p, port),
            ok,
            "{p} {port}"
        );
    }
}

// ------------------------------------------------------------------------------------- Cilium

#[test]
fn cilium_deny_wins_over_allow() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - {}
  ingressDeny:
    - fromEndpoints:
        - matchLabels: {app: client}
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-all, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
    - {}
"#,
    );
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    assert_eq!(e.verdict, Denied);
    let ing = e.ingress.unwrap();
    assert_eq!(ing.reason, Reason::DeniedBy);
    assert_eq!(ing.matched_denies.len(), 1);
    assert_eq!(ing.matched_denies[0].name, "web");
    assert_eq!(
        ing.matched_denies[0].policy_kind,
        PolicyKind::CiliumNetworkPolicy
    );
    assert_eq!(ing.matched_allows.len(), 2);
    assert_eq!(
        ing.selecting_policies,
        ["CiliumNetworkPolicy prod/web", "NetworkPolicy prod/web-all"]
    );
    // Other ports and other peers are allowed.
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8081));
    assert!(fx.allowed("prod/client", "prod/web", "UDP", 8080));
    let e = fx.eval(&fx.flow("prod/api", "prod/web", "TCP", 8080));
    assert_eq!(e.ingress.unwrap().reason, Reason::AllowedBy);
}

#[test]
fn cilium_enable_default_deny_false() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: additive, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  enableDefaultDeny:
    ingress: false
  ingress:
    - fromEndpoints:
        - matchLabels: {app: client}
  ingressDeny:
    - fromEntities: [world]
"#,
    );
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    let ing = e.ingress.unwrap();
    assert_eq!(
        (ing.verdict, ing.reason, ing.enforced),
        (Allowed, Reason::AllowedBy, false)
    );
    let e = fx.eval(&fx.flow("prod/api", "prod/web", "TCP", 8080));
    let ing = e.ingress.unwrap();
    assert_eq!(
        (ing.verdict, ing.reason, ing.enforced),
        (Allowed, Reason::NoPolicy, false)
    );
    assert_eq!(
        ing.selecting_policies,
        ["CiliumNetworkPolicy prod/additive"]
    );
    // Deny rules still apply.
    assert!(!fx.allowed("8.8.8.8", "prod/web", "TCP", 8080));
    // Egress is untouched.
    assert!(fx.allowed("prod/web", "8.8.8.8", "TCP", 443));
}

#[test]
fn cilium_deny_section_alone_enforces() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-only, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  egressDeny:
    - toEntities: [world]
"#,
    );
    let e = fx.eval(&fx.flow("prod/web", "prod/api", "TCP", 9090));
    assert_eq!(e.egress.unwrap().reason, Reason::DefaultDeny);
}

#[test]
fn cilium_entities() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: world, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  egress:
    - toEntities: [world]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cluster, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: api}
  egress:
    - toEntities: [cluster]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: all, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toEntities: [all]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: host, namespace: dev}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toEntities: [host, kube-apiserver]
"#,
    );
    let table = [
        (
            "prod/web",
            // A DNS name's addresses are Internet addresses: `world` holds them.
            vec![
                "world",
                "8.8.8.8",
                "10.9.9.9",
                "2001:db8::1",
                "fqdn:example.com",
            ],
            vec!["prod/api", "host", "remote-node", "kube-apiserver"],
        ),
        (
            "prod/api",
            vec![
                "prod/web",
                "dev/batch",
                "host",
                "remote-node",
                "health",
                "init",
                "kube-apiserver",
                "ingress",
                "unmanaged",
            ],
            vec!["world", "8.8.8.8", "fqdn:example.com"],
        ),
        (
            "prod/client",
            vec![
                "prod/web",
                "host",
                "world",
                "8.8.8.8",
                "remote-node",
                "fqdn:example.com",
            ],
            vec![],
        ),
        (
            "dev/client",
            vec!["host", "kube-apiserver"],
            vec!["remote-node", "world", "prod/web", "8.8.8.8"],
        ),
    ];
    for (from, yes, no) in table {
        for to in yes {
            assert!(fx.allowed(from, to, "TCP", 443), "{from} -> {to}");
        }
        for to in no {
            assert!(!fx.allowed(from, to, "TCP", 443), "{from} -> {to}");
        }
    }
}

#[test]
fn cilium_cidr_set_with_except() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidrs, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toCIDRSet:
        - cidr: 192.168.0.0/16
          except: [192.168.1.0/24]
    - toCIDR: [10.0.0.0/8]
      toPorts:
        - ports:
            - port: "443"
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: everything, namespace: dev}
spec:
  endpointSelector: {}
  egress:
    - toCIDR: [0.0.0.0/0]
"#,
    );
    assert!(fx.allowed("prod/client", "192.168.2.1", "TCP", 80));
    assert!(fx.allowed("prod/client", "192.168.2.1", "ICMP", 8));
    assert!(!fx.allowed("prod/client", "192.168.1.1", "TCP", 80));
    assert!(fx.allowed("prod/client", "10.9.9.9", "TCP", 443));
    assert!(fx.allowed("prod/client", "10.9.9.9", "UDP", 443));
    assert!(!fx.allowed("prod/client", "10.9.9.9", "TCP", 80));
    // CIDR peers never select pods, and a non-/0 CIDR is not `world`.
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 443));
    assert!(!fx.allowed("prod/client", "world", "TCP", 443));
    // A /0 also matches the `world` entity, but no pods and no IPv6.
    assert!(fx.allowed("dev/client", "world", "TCP", 443));
    assert!(fx.allowed("dev/client", "1.1.1.1", "TCP", 443));
    assert!(!fx.allowed("dev/client", "2001:db8::1", "TCP", 443));
    assert!(!fx.allowed("dev/client", "prod/web", "TCP", 8080));
}

#[test]
fn cilium_to_fqdns_patterns() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdns, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toFQDNs:
        - matchName: api.example.com
        - matchPattern: "*.cdn.example.com"
        - matchPattern: "**.svc.example.org"
        - matchPattern: "img-*.example.net"
      toPorts:
        - ports:
            - port: "443"
              protocol: TCP
"#,
    );
    for (name, ok) in [
        ("api.example.com", true),
        ("API.Example.com.", true),
        ("www.example.com", false),
        ("x.cdn.example.com", true),
        ("a.b.cdn.example.com", false),
        ("cdn.example.com", false),
        ("a.svc.example.org", true),
        ("a.b.svc.example.org", true),
        ("svc.example.org", false),
        ("img-1.example.net", true),
        ("img.example.net", false),
    ] {
        let to = format!("fqdn:{name}");
        assert_eq!(fx.allowed("prod/client", &to, "TCP", 443), ok, "{name}");
    }
    assert!(!fx.allowed("prod/client", "fqdn:api.example.com", "TCP", 80));
    // A name is not an address, nor `world`.
    assert!(!fx.allowed("prod/client", "world", "TCP", 443));
    assert!(!fx.allowed("prod/client", "93.184.216.34", "TCP", 443));
}

#[test]
fn cilium_icmp_types() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ping, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEntities: [world]
      icmps:
        - fields:
            - type: 8
            - family: IPv6
              type: EchoRequest
"#,
    );
    assert!(fx.allowed("8.8.8.8", "prod/web", "ICMP", 8));
    assert!(!fx.allowed("8.8.8.8", "prod/web", "ICMP", 0));
    assert!(!fx.allowed("8.8.8.8", "prod/web", "ICMPv6", 8));
    assert!(fx.allowed("2001:db8::1", "prod/web", "ICMPv6", 128));
    assert!(!fx.allowed("8.8.8.8", "prod/web", "TCP", 8));
    assert!(!fx.allowed("prod/client", "prod/web", "ICMP", 8));
}

#[test]
fn cilium_ports_any_protocol_zero_port_and_named_port() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ports, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - toPorts:
        - ports:
            - port: "53"
            - port: "0"
              protocol: SCTP
            - port: "http"
            - port: "9000"
              endPort: 9010
              protocol: UDP
"#,
    );
    // No L3 field with toPorts: every peer.
    for from in ["prod/client", "8.8.8.8", "world", "host", "remote-node"] {
        assert!(fx.allowed(from, "prod/web", "TCP", 53), "{from}");
    }
    assert!(fx.allowed("prod/client", "prod/web", "UDP", 53));
    assert!(fx.allowed("prod/client", "prod/web", "SCTP", 53));
    assert!(fx.allowed("prod/client", "prod/web", "SCTP", 1234));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 1234));
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("prod/client", "prod/web", "UDP", 8080));
    assert!(fx.allowed("prod/client", "prod/web", "UDP", 9005));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 9005));
    assert!(!fx.allowed("prod/client", "prod/web", "ICMP", 8));
}

#[test]
fn cilium_empty_rule_matches_nothing() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: lockdown, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - {}
"#,
    );
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    assert_eq!(e.verdict, Denied);
    assert_eq!(e.ingress.unwrap().reason, Reason::DefaultDeny);
}

#[test]
fn cilium_from_endpoints_limited_to_own_namespace() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: same-ns, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: client}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: from-dev, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: api}
  ingress:
    - fromEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: dev
            app: client
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: by-ns-label, namespace: dev}
spec:
  endpointSelector:
    matchLabels: {app: api}
  ingress:
    - fromEndpoints:
        - matchLabels:
            io.cilium.k8s.namespace.labels.env: prod
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ns-all, namespace: kube-system}
spec:
  endpointSelector: {}
  ingress:
    - fromEndpoints:
        - {}
"#,
    );
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("dev/client", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("prod/client", "prod/api", "TCP", 9090));
    assert!(fx.allowed("prod/client", "dev/api", "TCP", 7070));
    assert!(fx.allowed("prod/web", "dev/api", "TCP", 7070));
    assert!(!fx.allowed("dev/client", "dev/api", "TCP", 7070));
    // `{}` in a namespaced policy: every workload of its namespace only.
    assert!(!fx.allowed("prod/client", "kube-system/coredns", "UDP", 53));
    // The CNP selects only endpoints of its own namespace.
    let e = fx.eval(&fx.flow("prod/client", "dev/client", "TCP", 80));
    assert_eq!(e.ingress.unwrap().reason, Reason::NoPolicy);

    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: clients-to-web}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: client}
"#,
    );
    assert!(fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("dev/client", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("prod/api", "prod/web", "TCP", 8080));
    let e = fx.eval(&fx.flow("prod/api", "prod/web", "TCP", 8080));
    assert_eq!(
        e.ingress.unwrap().selecting_policies,
        ["CiliumClusterwideNetworkPolicy clients-to-web"]
    );
}

#[test]
fn cilium_subject_uses_cilium_labels() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: dev-lockdown}
spec:
  endpointSelector:
    matchLabels:
      k8s:io.cilium.k8s.namespace.labels.env: dev
  ingress:
    - fromEndpoints:
        - matchLabels:
            io.kubernetes.pod.namespace: dev
"#,
    );
    assert!(!fx.allowed("prod/client", "dev/api", "TCP", 7070));
    assert!(fx.allowed("dev/client", "dev/api", "TCP", 7070));
    assert!(fx.allowed("prod/client", "prod/api", "TCP", 9090));
}

#[test]
fn cilium_to_services() {
    let fx = fixture(
        r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: prod}
spec:
  selector: {app: api}
  ports:
    - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata: {name: external-db, namespace: prod}
spec:
  ports:
    - {port: 5432}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: external-db-1
  namespace: prod
  labels:
    kubernetes.io/service-name: external-db
addressType: IPv4
endpoints:
  - addresses: [172.16.0.5]
ports:
  - {port: 5432}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-services, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toServices:
        - k8sService: {serviceName: api}
        - k8sService: {serviceName: external-db, namespace: prod}
"#,
    );
    assert!(fx.allowed("prod/client", "prod/api", "TCP", 9090));
    assert!(!fx.allowed("prod/client", "dev/api", "TCP", 7070));
    assert!(!fx.allowed("prod/client", "prod/web", "TCP", 8080));
    assert!(fx.allowed("prod/client", "172.16.0.5", "TCP", 5432));
    assert!(!fx.allowed("prod/client", "172.16.0.6", "TCP", 5432));
}

// ----------------------------------------------------------------------------------------- L7

const HTTP_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-api, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: client}
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: "/api/v1/items(/[0-9]+)?"
              - method: "POST|PUT"
                path: /api/v1/items
                headers:
                  - "X-Client: storefront"
                  - X-Trace
              - host: "admin\\.example\\.com"
"#;

fn request(method: &str, path: &str, host: Option<&str>, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path: path.into(),
        host: host.map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn http_rules_allow_or_answer_403() {
    let fx = fixture(HTTP_POLICY);
    let mut flow = fx.flow("prod/client", "prod/web", "TCP", 8080);

    // No request: the L4 verdict stands, and the explanation says L7 rules apply.
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Allowed);
    let l7 = e.l7.unwrap();
    assert_eq!(l7.verdict, Allowed);
    assert_eq!(l7.checks.len(), 1);
    assert_eq!(l7.checks[0].protocol, L7Protocol::Http);
    assert_eq!(l7.checks[0].direction, Direction::Ingress);
    assert_eq!(l7.checks[0].outcome, L7Outcome::NotChecked);
    assert_eq!(l7.checks[0].candidates.len(), 3);

    let cases = [
        (request("GET", "/api/v1/items", None, &[]), true),
        (request("GET", "/api/v1/items/42", None, &[]), true),
        (request("GET", "/api/v1/items/x", None, &[]), false),
        (request("GET", "/api/v1/itemsXX", None, &[]), false),
        (request("get", "/api/v1/items", None, &[]), false),
        (request("DELETE", "/api/v1/items", None, &[]), false),
        (
            request(
                "POSTX",
                "/api/v1/items",
                None,
                &[("X-Client", "storefront"), ("X-Trace", "1")],
            ),
            false,
        ),
        (
            request(
                "POST",
                "/api/v1/items",
                None,
                &[("x-client", "storefront"), ("X-Trace", "1")],
            ),
            true,
        ),
        (
            request("PUT", "/api/v1/items", None, &[("X-Client", "storefront")]),
            false,
        ),
        (
            request(
                "PUT",
                "/api/v1/items",
                None,
                &[("X-Client", "other"), ("X-Trace", "")],
            ),
            false,
        ),
        (
            request("DELETE", "/anything", Some("admin.example.com"), &[]),
            true,
        ),
        (
            request("DELETE", "/anything", Some("adminXexample.com"), &[]),
            false,
        ),
    ];
    for (req, ok) in cases {
        flow.http = Some(req.clone());
        let e = fx.eval(&flow);
        let l7 = e.l7.clone().unwrap();
        if ok {
            assert_eq!(e.verdict, Allowed, "{req:?}");
            assert!(matches!(l7.checks[0].outcome, L7Outcome::Allowed { .. }));
        } else {
            assert_eq!(e.verdict, Denied, "{req:?}");
            assert_eq!(l7.reason, "denied at L7 (HTTP 403)");
            assert_eq!(l7.checks[0].outcome, L7Outcome::Denied);
            // L4 allowed the connection.
            assert_eq!(e.ingress.unwrap().verdict, Allowed);
        }
    }

    // Another port, or another peer: L4 decides alone.
    let mut other = fx.flow("prod/api", "prod/web", "TCP", 8080);
    other.http = Some(request("DELETE", "/", None, &[]));
    let e = fx.eval(&other);
    assert_eq!(e.verdict, Denied);
    assert_eq!(e.ingress.unwrap().reason, Reason::DefaultDeny);
}

#[test]
fn plain_l4_allow_of_the_same_port_wins_over_http_rules() {
    let fx = fixture(&format!(
        r#"{HTTP_POLICY}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: clients-8080, namespace: prod}}
spec:
  podSelector:
    matchLabels: {{app: web}}
  ingress:
    - from:
        - podSelector:
            matchLabels: {{app: client}}
      ports:
        - port: 8080
"#
    ));
    let mut flow = fx.flow("prod/client", "prod/web", "TCP", 8080);
    flow.http = Some(request("DELETE", "/", None, &[]));
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Allowed);
    assert!(e.l7.is_none());
    assert_eq!(e.ingress.unwrap().matched_allows.len(), 2);

    // Within one rule: a second `toPorts` entry without HTTP rules covers the port.
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mixed, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
    - fromEndpoints:
        - matchLabels: {app: client}
      toPorts:
        - ports:
            - {port: "8080", protocol: TCP}
          rules:
            http:
              - method: GET
        - ports:
            - {port: "8000", endPort: 8100, protocol: TCP}
    - toPorts:
        - ports:
            - {port: "9000", protocol: TCP}
          rules:
            http:
              - method: GET
"#,
    );
    let mut flow = fx.flow("prod/client", "prod/web", "TCP", 8080);
    flow.http = Some(request("DELETE", "/", None, &[]));
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Allowed);
    assert!(e.l7.is_none());
    flow.port = 9000;
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Denied);
    assert_eq!(e.l7.unwrap().reason, "denied at L7 (HTTP 403)");
}

#[test]
fn http_rules_on_egress_too() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: out, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toFQDNs:
        - matchName: api.example.com
      toPorts:
        - ports:
            - port: "80"
              protocol: TCP
          rules:
            http:
              - path: "/public/.*"
"#,
    );
    let mut flow = fx.flow("prod/client", "fqdn:api.example.com", "TCP", 80);
    flow.http = Some(request("GET", "/public/a/b", None, &[]));
    assert_eq!(fx.eval(&flow).verdict, Allowed);
    flow.http = Some(request("GET", "/private", None, &[]));
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Denied);
    let l7 = e.l7.unwrap();
    assert_eq!(l7.reason, "denied at L7 (HTTP 403)");
    assert_eq!(l7.checks[0].direction, Direction::Egress);
}

#[test]
fn dns_rules_limit_the_names_answered() {
    let fx = fixture(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: prod}
spec:
  endpointSelector:
    matchLabels: {app: client}
  egress:
    - toEndpoints:
        - matchLabels:
            k8s:io.kubernetes.pod.namespace: kube-system
            k8s:k8s-app: kube-dns
      toPorts:
        - ports:
            - port: "53"
              protocol: ANY
          rules:
            dns:
              - matchPattern: "*.example.com"
              - matchName: example.org
    - toFQDNs:
        - matchPattern: "*.example.com"
"#,
    );
    let mut flow = fx.flow("prod/client", "kube-system/coredns", "UDP", 53);
    for (name, ok) in [
        ("www.example.com", true),
        ("WWW.EXAMPLE.COM.", true),
        ("example.org", true),
        ("www.example.org", false),
        ("evil.test", false),
    ] {
        flow.dns = Some(name.into());
        let e = fx.eval(&flow);
        let l7 = e.l7.unwrap();
        assert_eq!(l7.checks[0].protocol, L7Protocol::Dns);
        if ok {
            assert_eq!(e.verdict, Allowed, "{name}");
        } else {
            assert_eq!(e.verdict, Denied, "{name}");
            assert_eq!(l7.reason, "denied at L7 (DNS REFUSED)");
        }
    }
    // No query: L4 stands.
    flow.dns = None;
    let e = fx.eval(&flow);
    assert_eq!(e.verdict, Allowed);
    assert_eq!(e.l7.unwrap().checks[0].outcome, L7Outcome::NotChecked);
    // TCP 53 too (ANY); other ports are not allowed.
    assert!(fx.allowed("prod/client", "kube-system/coredns", "TCP", 53));
    assert!(!fx.allowed("prod/client", "kube-system/coredns", "UDP", 5353));
    // The names answered are reachable by toFQDNs.
    assert!(fx.allowed("prod/client", "fqdn:www.example.com", "TCP", 443));
    assert!(!fx.allowed("prod/client", "fqdn:example.org", "TCP", 443));
}

// ------------------------------------------------------------------------------- host ingress

#[test]
fn host_ingress_switch() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-host, namespace: dev}
spec:
  endpointSelector:
    matchLabels: {app: api}
  ingressDeny:
    - fromEntities: [host]
"#,
    );
    let flow = fx.flow("host", "prod/web", "TCP", 8080);
    let on = evaluate(&fx.tree, &fx.inventory, &flow, true);
    assert_eq!(on.verdict, Allowed);
    assert!(on.egress.is_none());
    let ing = on.ingress.unwrap();
    assert_eq!((ing.reason, ing.enforced), (Reason::HostAllowed, true));
    let off = evaluate(&fx.tree, &fx.inventory, &flow, false);
    assert_eq!(off.verdict, Denied);
    assert_eq!(off.ingress.unwrap().reason, Reason::DefaultDeny);
    // Only from `host`, only ingress.
    assert!(!fx.allowed("remote-node", "prod/web", "TCP", 8080));
    assert!(!fx.allowed("prod/web", "host", "TCP", 10250));
    // A deny rule still wins over the switch.
    let e = fx.eval(&fx.flow("host", "dev/api", "TCP", 7070));
    assert_eq!(e.verdict, Denied);
    assert_eq!(e.ingress.unwrap().reason, Reason::DeniedBy);
}

// -------------------------------------------------------------------------------- rule refs

#[test]
fn rule_refs_count_in_document_order() {
    let fx = fixture(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-first, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: web}
  egress:
    - to:
        - podSelector:
            matchLabels: {app: api}
    - to:
        - podSelector:
            matchLabels: {app: client}
  ingress:
    - from:
        - podSelector:
            matchLabels: {app: client}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: specs, namespace: prod}
specs:
  - endpointSelector:
      matchLabels: {app: api}
    egressDeny:
      - toEntities: [world]
    ingress:
      - fromEndpoints:
          - matchLabels: {app: web}
  - endpointSelector:
      matchLabels: {app: api}
    ingress:
      - fromEndpoints:
          - matchLabels: {app: client}
"#,
    );
    let e = fx.eval(&fx.flow("prod/client", "prod/web", "TCP", 8080));
    let r = &e.ingress.unwrap().matched_allows[0];
    assert_eq!((r.name.as_str(), r.rule_index), ("egress-first", 2));
    let e = fx.eval(&fx.flow("prod/web", "prod/client", "TCP", 80));
    let r = &e.egress.unwrap().matched_allows[0];
    assert_eq!(r.rule_index, 1);
    let e = fx.eval(&fx.flow("prod/web", "prod/api", "TCP", 9090));
    assert_eq!(e.egress.unwrap().matched_allows[0].rule_index, 0);
    let r = &e.ingress.unwrap().matched_allows[0];
    assert_eq!((r.name.as_str(), r.rule_index), ("specs", 1));
    let e = fx.eval(&fx.flow("prod/client", "prod/api", "TCP", 9090));
    assert_eq!(e.ingress.unwrap().matched_allows[0].rule_index, 2);
    let e = fx.eval(&fx.flow("prod/api", "8.8.8.8", "TCP", 443));
    let r = &e.egress.unwrap().matched_denies[0];
    assert_eq!(r.rule_index, 0);
    // rule_ref by model position: the ingress rule is first in the model, third in the file.
    let np = fx
        .tree
        .policies
        .iter()
        .find(|p| p.meta().name.value == "egress-first")
        .unwrap();
    assert_eq!(rule_ref(np, 0).unwrap().rule_index, 2);
    assert_eq!(rule_ref(np, 1).unwrap().rule_index, 0);
    assert!(rule_ref(np, 3).is_none());
}
