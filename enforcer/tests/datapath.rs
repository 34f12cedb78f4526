//! The endpoint programs in this kernel: verifier, lookups against the bundle evaluator,
//! conntrack, generation swaps, fragments, events.

mod common;

use common::*;
use enforcer::datapath::{self, reason};

#[test]
fn verifier_accepts_both_programs_and_nothing_passes_before_a_generation() {
    let mut node = Node::load("verifier");
    assert_eq!(node.dp.live_generation().expect("live"), 0);
    let p = packet(
        ip("10.1.0.10"),
        ip("10.1.0.20"),
        L4::Tcp {
            sport: 1000,
            dport: 8080,
            flags: SYN,
        },
        0,
    );
    assert_eq!(node.egress(&p).0, TC_ACT_SHOT);
    assert_eq!(node.ingress(&p).0, TC_ACT_SHOT);
    let events = node.dp.drain_events().expect("events");
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e.reason == reason::DROP_NO_GENERATION && e.verdict == datapath::EV_DROP));
}

use compiler::bundle::Bundle;
use compiler::flow::{Flow, Peer, Verdict};
use compiler::lookup::{Evaluator, SideDecision, SideReason};
use compiler::lower::Compiled;
use enforcer::datapath::programs;
use policy_lang::model::{Entity, Protocol};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};

/// One flow as the evaluator sees it and as a packet carries it.
#[derive(Clone, Debug)]
struct TestFlow {
    flow: Flow,
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
}

impl TestFlow {
    fn packet(&self) -> Vec<u8> {
        packet(self.src, self.dst, self.l4, 16)
    }

    fn describe(&self) -> String {
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

fn interesting_ports(bundle: &Bundle) -> Vec<u16> {
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
fn next_sport(avoid: &[u16]) -> u16 {
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
fn flows(compiled: &Compiled) -> Vec<TestFlow> {
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

fn side_ok(side: &SideDecision) -> bool {
    side.verdict() == Verdict::Allowed
}

/// Checks one program's answer against the evaluator's side decision.
fn check_side(
    what: &str,
    f: &TestFlow,
    side: Option<&SideDecision>,
    self_traffic: bool,
    got: (u32, u32),
    errors: &mut Vec<String>,
) {
    let (verdict, mark) = got;
    let want_pass = self_traffic || side.is_some_and(side_ok);
    if (verdict == TC_ACT_OK) != want_pass {
        errors.push(format!(
            "{what} of {}: datapath {verdict}, evaluator {:?}",
            f.describe(),
            side.map(|s| s.reason)
        ));
        return;
    }
    let redirected = side.is_some_and(|s| s.reason == SideReason::Redirected);
    let marked = mark & datapath::MARK_MASK == datapath::MARK_REDIRECT;
    if redirected != marked {
        errors.push(format!(
            "{what} of {}: mark {mark:#x}, evaluator {:?}",
            f.describe(),
            side.map(|s| s.reason)
        ));
    } else if let Some(s) = side.filter(|_| redirected) {
        if !s.l7.contains(&(mark >> 16)) {
            errors.push(format!(
                "{what} of {}: L7 set {} in the mark, evaluator {:?}",
                f.describe(),
                mark >> 16,
                s.l7
            ));
        }
    }
}

#[test]
fn verdicts_equal_the_bundle_evaluator() {
    let compiled = shop();
    let bundle = &compiled.bundle;
    let mut node = Node::load("differential");
    let swap = node.write(bundle);
    assert_eq!(swap.generation, 1);
    let evaluator = Evaluator::new(bundle);
    let flows = flows(&compiled);
    let mut errors = Vec::new();
    let mut reasons: BTreeSet<String> = BTreeSet::new();
    for f in &flows {
        let d = evaluator.evaluate(&f.flow);
        let p = f.packet();
        let mut pass = true;
        if matches!(f.flow.from, Peer::Workload(_)) {
            let got = node.run(programs::FROM_EP, &p);
            check_side(
                "egress",
                f,
                d.egress.as_ref(),
                d.self_traffic,
                got,
                &mut errors,
            );
            pass &= got.0 == TC_ACT_OK;
        }
        if matches!(f.flow.to, Peer::Workload(_)) {
            let got = node.run(programs::TO_EP, &p);
            check_side(
                "ingress",
                f,
                d.ingress.as_ref(),
                d.self_traffic,
                got,
                &mut errors,
            );
            pass &= got.0 == TC_ACT_OK;
        }
        if pass != (d.verdict == Verdict::Allowed) {
            errors.push(format!(
                "flow {}: datapath {}, evaluator {:?}",
                f.describe(),
                if pass { "passes" } else { "drops" },
                d.verdict
            ));
        }
        for s in d.egress.iter().chain(d.ingress.iter()) {
            reasons.insert(format!("{:?}", s.reason));
        }
        if d.self_traffic {
            reasons.insert("self".into());
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} flows disagree:\n{}",
        errors.len(),
        flows.len(),
        errors[..errors.len().min(30)].join("\n")
    );
    // The tree exercises every way a side decides.
    for r in [
        "Denied",
        "Allowed",
        "Redirected",
        "DefaultDeny",
        "NotEnforced",
        "HostAllowed",
        "self",
    ] {
        assert!(reasons.contains(r), "no flow decided by {r}: {reasons:?}");
    }
    eprintln!("{} flows agree", flows.len());
}
