//! The datapath bench's policy in three forms: a bundle for the eBPF datapath, an
//! `iptables-restore` file (one rule per entry) and an nftables script (one rule, one set).

use compiler::bundle::{
    proto, Bundle, Dir, Endpoint, EndpointPolicy, Entry, EntryKey, EntryVerdict, IdentityInfo,
    IdentityKind, IpcacheEntry, Options, BUNDLE_VERSION,
};
use compiler::identity::Identity;
use compiler::ports::PortPrefix;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// The client pod (sender of the probed flows) and the server pod (their receiver).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
/// Host-side veths in the node namespace.
pub const CLIENT_IF: &str = "ha";
pub const SERVER_IF: &str = "hb";
/// The probed flows, allowed by the last entries; and a port no entry allows.
pub const UDP_PORT: u16 = 5001;
pub const TCP_PORT: u16 = 5002;
pub const DENIED_UDP_PORT: u16 = 5003;

/// Filler peers: one /32 each from 10.128.0.1 on, 10 entries per peer.
const PEER_BASE: u32 = u32::from_be_bytes([10, 128, 0, 0]);
const ENTRIES_PER_PEER: usize = 10;
const FILLER_PORT: u16 = 8000;
/// The pods' namespace.
pub const NAMESPACE: &str = "bench";

/// One allow entry of the server's ingress: traffic from `src` with `protocol` to `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub src: Ipv4Addr,
    pub protocol: u8,
    pub port: u16,
}

/// The server's `n` ingress allow entries (`n >= 2`), in the order iptables gets them:
/// `n - 2` entries for other peers (10 TCP and UDP ports per peer, none matching the probes),
/// then the UDP probe, then the TCP probe, last.
pub fn rules(n: usize) -> Vec<Rule> {
    let mut out: Vec<Rule> = (0..n.saturating_sub(2))
        .map(|i| Rule {
            src: filler_peer(i / ENTRIES_PER_PEER),
            protocol: if i % 2 == 0 { proto::TCP } else { proto::UDP },
            port: FILLER_PORT + (i % ENTRIES_PER_PEER) as u16,
        })
        .collect();
    out.push(Rule {
        src: CLIENT_IP,
        protocol: proto::UDP,
        port: UDP_PORT,
    });
    out.push(Rule {
        src: CLIENT_IP,
        protocol: proto::TCP,
        port: TCP_PORT,
    });
    out
}

fn filler_peer(k: usize) -> Ipv4Addr {
    Ipv4Addr::from(PEER_BASE + 1 + k as u32)
}

fn filler_peers(n: usize) -> usize {
    n.saturating_sub(2).div_ceil(ENTRIES_PER_PEER)
}

/// The bundle `policyc` would produce for this policy: the filler peers are workloads of
/// other nodes (identity and a /32 in the ipcache each), the client and server are this
/// node's endpoints, and the server's ingress is enforced with exactly [`rules`]`(n)` as
/// allow entries. The client's identity is numbered after every filler peer, so its entries
/// sort last in the bundle too (and are nowhere near the first).
pub fn bundle(n: usize) -> Bundle {
    let peers = filler_peers(n);
    let peer_id = |k: usize| Identity(Identity::FIRST_WORKLOAD + k as u32);
    let client_id = peer_id(peers);
    let server_id = peer_id(peers + 1);
    let id_of: BTreeMap<Ipv4Addr, Identity> = (0..peers)
        .map(|k| (filler_peer(k), peer_id(k)))
        .chain([(CLIENT_IP, client_id), (SERVER_IP, server_id)])
        .collect();

    let mut entries: Vec<Entry> = rules(n)
        .iter()
        .map(|r| Entry {
            key: EntryKey {
                direction: Dir::Ingress,
                peer: id_of[&r.src],
                protocol: r.protocol,
                port: PortPrefix::single(r.port),
            },
            verdict: EntryVerdict::Allow,
            rules: Vec::new(),
        })
        .collect();
    entries.sort_by_key(|e| e.key);

    let workload = |app: String, id: Identity| IdentityInfo {
        id,
        kind: IdentityKind::Workload {
            labels: BTreeMap::from([("app".to_owned(), app)]),
        },
    };
    let mut identities: Vec<IdentityInfo> = (0..peers)
        .map(|k| workload(format!("peer-{k}"), peer_id(k)))
        .collect();
    identities.push(workload("client".to_owned(), client_id));
    identities.push(workload("server".to_owned(), server_id));

    let endpoint = |name: &str, id: Identity, ip: Ipv4Addr, policy: u32| Endpoint {
        name: format!("{NAMESPACE}/{name}"),
        identity: id,
        ips: vec![IpAddr::V4(ip)],
        policy,
        named_ports: Vec::new(),
    };
    let mut ipcache: Vec<IpcacheEntry> = id_of
        .iter()
        .map(|(ip, id)| IpcacheEntry {
            prefix: ipnet::IpNet::from(IpAddr::V4(*ip)),
            identity: *id,
        })
        .collect();
    ipcache.sort();

    Bundle {
        version: BUNDLE_VERSION,
        options: Options::default(),
        identities,
        endpoints: vec![
            endpoint("client", client_id, CLIENT_IP, 0),
            endpoint("server", server_id, SERVER_IP, 1),
        ],
        policies: vec![
            EndpointPolicy::default(),
            EndpointPolicy {
                ingress_enforced: true,
                egress_enforced: false,
                entries,
            },
        ],
        ipcache,
        namespaces: vec![NAMESPACE.to_owned()],
        identity_namespaces: id_of.values().map(|id| (*id, 0)).collect(),
        fqdn_selectors: Vec::new(),
        l7: Vec::new(),
        rules: Vec::new(),
    }
}

/// The chain iptables-based enforcers generate for the server's ingress, for
/// `iptables-restore`: the node's FORWARD path jumps to it for packets leaving towards the
/// server; one ACCEPT per entry in [`rules`] order (the probes last), then DROP. With
/// `conntrack`, an `ESTABLISHED,RELATED` accept comes first, as Calico and kube-router put it.
pub fn iptables_restore(rules: &[Rule], conntrack: bool) -> String {
    let mut s = String::with_capacity(rules.len() * 100 + 200);
    s.push_str("*filter\n:PLCB-INGRESS - [0:0]\n");
    let _ = writeln!(s, "-A FORWARD -o {SERVER_IF} -j PLCB-INGRESS");
    if conntrack {
        s.push_str("-A PLCB-INGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    }
    for r in rules {
        let p = proto::name(r.protocol).to_ascii_lowercase();
        let _ = writeln!(
            s,
            "-A PLCB-INGRESS -s {}/32 -d {SERVER_IP}/32 -p {p} -m {p} --dport {} -j ACCEPT",
            r.src, r.port
        );
    }
    s.push_str("-A PLCB-INGRESS -j DROP\nCOMMIT\n");
    s
}

/// The same policy for `nft -f`: one rule looking the packet's (source, destination,
/// protocol, port) up in a concatenated interval set of every entry, then a drop. The
/// elements go in chunks so that no single command line is huge.
pub fn nft_script(rules: &[Rule]) -> String {
    let mut s = String::with_capacity(rules.len() * 48 + 400);
    s.push_str("table ip plcbench {\n");
    s.push_str(
        "  set allow { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval; }\n",
    );
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    let _ = writeln!(
        s,
        "    oifname \"{SERVER_IF}\" ip saddr . ip daddr . meta l4proto . th dport @allow accept"
    );
    let _ = writeln!(s, "    oifname \"{SERVER_IF}\" drop\n  }}\n}}");
    for chunk in rules.chunks(5000) {
        s.push_str("add element ip plcbench allow {");
        for (i, r) in chunk.iter().enumerate() {
            let p = proto::name(r.protocol).to_ascii_lowercase();
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(s, "{sep}{} . {SERVER_IP} . {p} . {}", r.src, r.port);
        }
        s.push_str(" }\n");
    }
    s
}

/// The same policy as a tree for `policyd run --source`: namespace `bench`, Pod objects
/// `client` and `server` (addresses come from the CNI registration), and one NetworkPolicy
/// selecting the server for ingress: a rule allowing the client's UDP 5001 and TCP 5002, and
/// one rule per filler peer (an `ipBlock` /32 with its ports). It compiles to exactly the
/// [`rules`]`(n)` entries for the server (a unit test checks it with the compiler).
pub fn tree_yaml(n: usize) -> String {
    let rules = rules(n);
    let mut s = String::with_capacity(n * 60 + 1000);
    let _ = write!(
        s,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    );
    for app in ["client", "server"] {
        let _ = write!(
            s,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {app}\n  namespace: {NAMESPACE}\n  labels:\n    app: {app}\nspec:\n  containers:\n  - name: {app}\n    image: busybox\n"
        );
    }
    let _ = write!(
        s,
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: server-ingress\n  namespace: {NAMESPACE}\nspec:\n  podSelector:\n    matchLabels:\n      app: server\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          app: client\n    ports:\n    - {{protocol: UDP, port: {UDP_PORT}}}\n    - {{protocol: TCP, port: {TCP_PORT}}}\n"
    );
    let fillers = &rules[..rules.len() - 2];
    for peer in fillers.chunk_by(|a, b| a.src == b.src) {
        let _ = write!(
            s,
            "  - from:\n    - ipBlock:\n        cidr: {}/32\n    ports:\n",
            peer[0].src
        );
        for r in peer {
            let _ = writeln!(
                s,
                "    - {{protocol: {}, port: {}}}",
                proto::name(r.protocol),
                r.port
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::flow::{Flow, Peer, Verdict};
    use compiler::lookup::Evaluator;
    use policy_lang::model::Protocol;

    fn verdict(b: &Bundle, from: Ipv4Addr, protocol: Protocol, port: u16) -> Verdict {
        Evaluator::new(b)
            .evaluate(&Flow {
                from: Peer::Ip(IpAddr::V4(from)),
                to: Peer::Workload(1),
                protocol,
                port,
                http: None,
                dns: None,
            })
            .verdict
    }

    #[test]
    fn the_bundle_has_n_entries_and_allows_exactly_the_probes_of_the_client() {
        for n in [2, 10, 1000] {
            let b = bundle(n);
            assert_eq!(b.policies[1].entries.len(), n);
            assert_eq!(b.entry_count(), n);
            assert_eq!(
                verdict(&b, CLIENT_IP, Protocol::Udp, UDP_PORT),
                Verdict::Allowed
            );
            assert_eq!(
                verdict(&b, CLIENT_IP, Protocol::Tcp, TCP_PORT),
                Verdict::Allowed
            );
            assert_eq!(
                verdict(&b, CLIENT_IP, Protocol::Udp, DENIED_UDP_PORT),
                Verdict::Denied
            );
            assert_eq!(
                verdict(&b, CLIENT_IP, Protocol::Tcp, UDP_PORT),
                Verdict::Denied
            );
            // The probes' entries are real allows, and not the first entries.
            let client = b.endpoints[0].identity;
            let first = b.policies[1]
                .entries
                .iter()
                .position(|e| e.key.peer == client);
            assert_eq!(first, Some(n - 2));
        }
        let b = bundle(1000);
        assert_eq!(
            verdict(&b, filler_peer(3), Protocol::Tcp, FILLER_PORT),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&b, filler_peer(3), Protocol::Udp, UDP_PORT),
            Verdict::Denied
        );
    }

    #[test]
    fn the_tree_compiles_to_the_same_n_entries_for_the_server() {
        for n in [2, 10, 1000] {
            let yaml = tree_yaml(n);
            let checked = policy_lang::check_sources(vec![("tree.yaml".into(), yaml.clone())]);
            let errors: Vec<_> = checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == policy_lang::Severity::Error)
                .collect();
            assert!(errors.is_empty(), "{errors:#?}\n{yaml}");
            let compiled =
                compiler::lower::compile(&checked.tree, &checked.sources, None, Options::default());
            let b = &compiled.bundle;
            let server = b.endpoint("bench/server").expect("server endpoint");
            let policy = &b.policies[server.policy as usize];
            assert!(policy.ingress_enforced && !policy.egress_enforced);
            assert_eq!(policy.entries.len(), n, "n = {n}");
            assert!(policy
                .entries
                .iter()
                .all(|e| e.verdict == EntryVerdict::Allow));
        }
    }

    #[test]
    fn the_datapath_takes_the_bundle() {
        let b = bundle(1000);
        let t = enforcer::generation::tables(&enforcer::GenerationSpec::new(&b)).expect("tables");
        assert_eq!(t.policy.len(), 1000);
        assert_eq!(t.ipcache.len(), filler_peers(1000) + 2);
    }

    #[test]
    fn iptables_and_nft_hold_one_rule_or_element_per_entry_probes_last() {
        let r = rules(10);
        let ipt = iptables_restore(&r, false);
        let accepts: Vec<&str> = ipt.lines().filter(|l| l.ends_with("-j ACCEPT")).collect();
        assert_eq!(accepts.len(), 10);
        assert_eq!(
            accepts[9],
            "-A PLCB-INGRESS -s 10.244.0.1/32 -d 10.244.0.2/32 -p tcp -m tcp --dport 5002 -j ACCEPT"
        );
        assert!(accepts[8].contains("-p udp -m udp --dport 5001"));
        assert!(iptables_restore(&r, true).contains("--ctstate RELATED,ESTABLISHED"));
        let nft = nft_script(&r);
        assert_eq!(nft.matches(" . 10.244.0.2 . ").count(), 10);
        assert!(nft.contains("10.244.0.1 . 10.244.0.2 . udp . 5001"));
    }
}
