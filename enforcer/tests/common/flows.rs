//! The flows the datapath tests probe: every workload against every workload, entity and a few
//! addresses around the tree's CIDRs, over the ports the bundle names.

use super::*;
use compiler::bundle::Bundle;
use compiler::flow::{Flow, Peer};
use compiler::lower::Compiled;
use policy_lang::model::{Entity, Protocol};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};

/// One flow as the evaluator sees it and as a packet carries it.
#[derive(Clone, Debug)]
pub struct TestFlow {
    pub flow: Flow,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
}

impl TestFlow {
    pub fn packet(&self) -> Vec<u8> {
        packet(self.src, self.dst, self.l4, 16)
    }

    pub fn describe(&self) -> String {
        format!("{} -> {} {:?}", self.src, self.dst, self.l4)
    }
}

/// A peer with its addresses.
struct Probe {
    peer: Peer,
    addrs: Vec<IpAddr>,
}

fn probes(compiled: &Compiled) -> Vec<Probe> {
    let mut out: Vec<Probe> = compiled
        .bundle
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.ips.is_empty())
        .map(|(i, e)| Probe {
            peer: Peer::Workload(i),
            addrs: e.ips.clone(),
        })
        .collect();
    out.push(Probe {
        peer: Peer::Entity(Entity::Host),
        addrs: vec![ip(HOST_IP)],
    });
    out.push(Probe {
        peer: Peer::Entity(Entity::RemoteNode),
        addrs: vec![ip(REMOTE_NODE_IP)],
    });
    out.push(Probe {
        peer: Peer::Entity(Entity::World),
        addrs: vec![ip(WORLD_IP)],
    });
    for a in [
        "8.8.8.8",
        "192.0.2.10",
        "192.0.2.200",
        "198.51.100.10",
        "198.51.100.200",
        "10.5.0.1",
        "10.1.0.99",
        "2001:db8::1",
        "fd00:1::99",
    ] {
        out.push(Probe {
            peer: Peer::Ip(ip(a)),
            addrs: vec![ip(a)],
        });
    }
    out
}

pub fn interesting_ports(bundle: &Bundle) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = [1, 22, 53, 80, 443, 514, 5432, 8080, 9000, 9001, 65535].into();
    for p in &bundle.policies {
        for e in &p.entries {
            ports.insert(e.key.port.first());
            ports.insert(e.key.port.last());
            ports.insert(e.key.port.first().saturating_sub(1));
            ports.insert(e.key.port.last().saturating_add(1));
        }
    }
    ports.into_iter().collect()
}

/// Source ports (and echo ids) never reused within a test binary and never equal to a
/// destination port, so no flow meets another's conntrack entry.
pub fn next_sport(avoid: &[u16]) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(30000);
    loop {
        let p = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(p < 65000, "out of test source ports");
        if !avoid.contains(&p) {
            return p;
        }
    }
}

/// Every (from, to, protocol, port) over the probes where one end is a workload, in each
/// family both ends have.
pub fn flows(compiled: &Compiled) -> Vec<TestFlow> {
    let probes = probes(compiled);
    let ports = interesting_ports(&compiled.bundle);
    let mut out = Vec::new();
    for a in &probes {
        for b in &probes {
            if !matches!(a.peer, Peer::Workload(_)) && !matches!(b.peer, Peer::Workload(_)) {
                continue;
            }
            for v6 in [false, true] {
                let (Some(src), Some(dst)) = (
                    a.addrs.iter().find(|x| x.is_ipv6() == v6),
                    b.addrs.iter().find(|x| x.is_ipv6() == v6),
                ) else {
                    continue;
                };
                let mut add = |protocol, port, l4| {
                    out.push(TestFlow {
                        flow: Flow {
                            from: a.peer.clone(),
                            to: b.peer.clone(),
                            protocol,
                            port,
                            http: None,
                            dns: None,
                        },
                        src: *src,
                        dst: *dst,
                        l4,
                    })
                };
                for &port in &ports {
                    let sport = next_sport(&ports);
                    add(
                        Protocol::Tcp,
                        port,
                        L4::Tcp {
                            sport,
                            dport: port,
                            flags: SYN,
                        },
                    );
                    add(Protocol::Udp, port, L4::Udp { sport, dport: port });
                    add(Protocol::Sctp, port, L4::Sctp { sport, dport: port });
                }
                let (icmp, kinds) = if v6 {
                    (Protocol::IcmpV6, [128u8, 129, 1])
                } else {
                    (Protocol::Icmp, [8u8, 0, 3])
                };
                for kind in kinds {
                    let id = next_sport(&ports);
                    add(icmp, u16::from(kind), L4::Icmp { kind, id });
                }
            }
        }
    }
    out
}
