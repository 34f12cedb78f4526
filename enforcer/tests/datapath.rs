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
