//! The synthetic generations of the swap and flood parts: two local endpoints (client A,
//! server B) whose UDP flow A -> B is allowed on both sides, plus filler policy entries of
//! B's ingress from peers that never send, turned into map contents by the enforcer's own
//! `generation::tables`.

use compiler::bundle::{
    proto, Bundle, Dir, Endpoint, EndpointPolicy, Entry, EntryKey, EntryVerdict, IpcacheEntry,
    Options, BUNDLE_VERSION,
};
use compiler::identity::Identity;
use compiler::ports::PortPrefix;
use enforcer::{GenerationSpec, Tables};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Client pod A (sends the flood) and server pod B (receives it).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 1);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 0, 2);
/// The flood's destination port.
pub const UDP_PORT: u16 = 5001;
/// The node's own address, as policyd adds it to the ipcache (identity `host`).
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 255, 1);
/// Filler peers: identities after A's and B's, 100 ports each.
const PORTS_PER_PEER: usize = 100;
const FILLER_PORT: u16 = 10_000;
const NAMESPACE: &str = "bench";

/// Where the endpoints are: the host-side interface index of A and of B (0: not local, for
/// the tables-only swap timing, where no packet ever runs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ifindexes {
    pub client: u32,
    pub server: u32,
}

/// A bundle of exactly `entries` policy entries (at least 3): A's egress allows UDP to B on
/// [`UDP_PORT`], B's ingress allows it from A, one "unrelated" entry (B's ingress from a peer
/// that never sends, TCP port `variant`) tells two otherwise equal generations apart, and
/// the rest are filler entries of B's ingress. The ipcache holds A and B.
pub fn bundle(entries: usize, variant: u16) -> Result<Bundle, String> {
    if entries < 3 {
        return Err(format!(
            "a generation needs at least 3 entries, not {entries}"
        ));
    }
    let client = Identity(Identity::FIRST_WORKLOAD);
    let server = Identity(Identity::FIRST_WORKLOAD + 1);
    let unrelated = Identity(Identity::FIRST_WORKLOAD + 2);
    let filler_peer =
        |k: usize| Identity(Identity::FIRST_WORKLOAD + 3 + (k / PORTS_PER_PEER) as u32);
    let key = |direction, peer, protocol, port| EntryKey {
        direction,
        peer,
        protocol,
        port: PortPrefix::single(port),
    };
    let allow = |key| Entry {
        key,
        verdict: EntryVerdict::Allow,
        rules: Vec::new(),
    };
    let mut server_entries: Vec<Entry> = (0..entries - 3)
        .map(|k| {
            allow(key(
                Dir::Ingress,
                filler_peer(k),
                proto::TCP,
                FILLER_PORT + (k % PORTS_PER_PEER) as u16,
            ))
        })
        .collect();
    server_entries.push(allow(key(Dir::Ingress, client, proto::UDP, UDP_PORT)));
    server_entries.push(allow(key(Dir::Ingress, unrelated, proto::TCP, variant)));
    server_entries.sort_by_key(|e| e.key);
    let client_entries = vec![allow(key(Dir::Egress, server, proto::UDP, UDP_PORT))];

    let endpoint = |name: &str, identity, ip, policy| Endpoint {
        name: format!("{NAMESPACE}/{name}"),
        identity,
        ips: vec![IpAddr::V4(ip)],
        policy,
        named_ports: Vec::new(),
    };
    let ipcache_entry = |ip: Ipv4Addr, identity| IpcacheEntry {
        prefix: ipnet::IpNet::from(IpAddr::V4(ip)),
        identity,
    };
    let mut ipcache = vec![
        ipcache_entry(CLIENT_IP, client),
        ipcache_entry(SERVER_IP, server),
    ];
    ipcache.sort();
    Ok(Bundle {
        version: BUNDLE_VERSION,
        options: Options::default(),
        identities: Vec::new(),
        endpoints: vec![
            endpoint("client", client, CLIENT_IP, 0),
            endpoint("server", server, SERVER_IP, 1),
        ],
        policies: vec![
            EndpointPolicy {
                ingress_enforced: false,
                egress_enforced: true,
                entries: client_entries,
            },
            EndpointPolicy {
                ingress_enforced: true,
                egress_enforced: false,
                entries: server_entries,
            },
        ],
        ipcache,
        namespaces: vec![NAMESPACE.to_owned()],
        identity_namespaces: vec![(client, 0), (server, 0)],
        fqdn_selectors: Vec::new(),
        l7: Vec::new(),
        rules: Vec::new(),
    })
}

/// [`bundle`]`(entries, variant)` as map contents, with the host's address in the ipcache:
/// three ipcache entries and two endpoint entries, whatever `entries` is.
pub fn tables(entries: usize, variant: u16, at: Ifindexes) -> Result<Tables, String> {
    let bundle = bundle(entries, variant)?;
    let ipcache_entry = |ip: Ipv4Addr, identity| IpcacheEntry {
        prefix: ipnet::IpNet::from(IpAddr::V4(ip)),
        identity,
    };
    let mut spec = GenerationSpec::new(&bundle);
    spec.extra_ipcache = vec![ipcache_entry(HOST_IP, Identity::HOST)];
    spec.ifindex = BTreeMap::from([
        (IpAddr::V4(CLIENT_IP), at.client),
        (IpAddr::V4(SERVER_IP), at.server),
    ]);
    enforcer::generation::tables(&spec).map_err(|e| format!("generation tables: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::flow::{Flow, Peer, Verdict};
    use compiler::lookup::Evaluator;

    #[test]
    fn a_generation_has_exactly_the_entries_asked_for_and_few_others() {
        for n in [3, 10, 1000] {
            let t = tables(n, 1, Ifindexes::default()).expect("tables");
            assert_eq!(t.policy.len(), n);
            assert_eq!(t.ipcache.len(), 3);
            assert_eq!(t.endpoints.len(), 2);
        }
        assert!(tables(2, 1, Ifindexes::default()).is_err());
    }

    #[test]
    fn the_two_variants_differ_in_one_entry_and_both_allow_the_flood() {
        let a = tables(1000, 1, Ifindexes::default()).expect("tables");
        let b = tables(1000, 2, Ifindexes::default()).expect("tables");
        let differ = a.policy.iter().filter(|e| !b.policy.contains(e)).count();
        assert_eq!(differ, 1);
        assert_eq!(a.endpoints, b.endpoints);
        assert_eq!(a.ipcache, b.ipcache);
    }

    #[test]
    fn the_flood_is_allowed_and_other_ports_are_not() {
        let b = bundle(1000, 1).expect("bundle");
        let flow = |port| Flow {
            from: Peer::Workload(0),
            to: Peer::Workload(1),
            protocol: policy_lang::model::Protocol::Udp,
            port,
            http: None,
            dns: None,
        };
        let e = Evaluator::new(&b);
        assert_eq!(e.evaluate(&flow(UDP_PORT)).verdict, Verdict::Allowed);
        assert_eq!(e.evaluate(&flow(UDP_PORT + 1)).verdict, Verdict::Denied);
    }
}
