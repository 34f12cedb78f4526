//! Malformed packets: truncated at every length, IP options, bad IHL, bad lengths, fragments,
//! IPv6 extension chains, random corruption. None may pass where policy denies its flow.

mod common;

use common::flows::{flows, TestFlow};
use common::*;
use compiler::bundle::Options;
use compiler::flow::Peer;
use compiler::lookup::Evaluator;
use enforcer::datapath::programs;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::net::IpAddr;

/// The body above IP of a flow's packet (L4 header and 16 payload bytes).
fn body(f: &TestFlow) -> Vec<u8> {
    packet(f.src, f.dst, f.l4, 16)[ETH_HLEN + if f.src.is_ipv6() { 40 } else { 20 }..].to_vec()
}

fn eth_ip4(f: &TestFlow, options: &[u8], body: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (f.src, f.dst) else {
        panic!("IPv4 flow")
    };
    let mut p = packet(f.src, f.dst, L4::Raw { proto: 0 }, 0)[..ETH_HLEN].to_vec();
    p.extend(ipv4_header(
        s.octets(),
        d.octets(),
        f.l4.proto(false),
        options,
        body.len(),
    ));
    p.extend_from_slice(body);
    p
}

fn set_u16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Variants of a denied IPv4 packet that keep its flow or break its headers.
fn ipv4_variants(f: &TestFlow) -> Vec<(String, Vec<u8>)> {
    let base = f.packet();
    let body = body(f);
    let ip = ETH_HLEN;
    let l4 = f.l4.header().len();
    let mut out = Vec::new();
    for len in MIN_FRAME..base.len() {
        out.push((format!("cut at {len}"), base[..len].to_vec()));
        if len >= ip + 20 {
            let mut p = base[..len].to_vec();
            set_u16(&mut p, ip + 2, (len - ip) as u16);
            out.push((format!("cut at {len}, total length fixed"), p));
        }
    }
    for words in 1..=10usize {
        // NOPs, and once a real option (record route) to be sure options are skipped whole.
        let mut opts = vec![1u8; words * 4];
        if words == 3 {
            opts = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        out.push((format!("{words} option words"), eth_ip4(f, &opts, &body)));
    }
    for ihl in [0u8, 1, 4, 15] {
        let mut p = base.clone();
        p[ip] = 0x40 | ihl;
        out.push((format!("IHL {ihl}"), p));
    }
    for version in [0u8, 5, 6, 15] {
        let mut p = base.clone();
        p[ip] = (version << 4) | 5;
        out.push((format!("version {version}"), p));
    }
    let tot = base.len() - ip;
    for t in [0, 19, 20, 20 + l4.saturating_sub(1), tot + 1, 0xffff] {
        let mut p = base.clone();
        set_u16(&mut p, ip + 2, t as u16);
        out.push((format!("total length {t}"), p));
    }
    let mut padded = base.clone();
    padded.extend([0xaau8; 30]);
    out.push(("trailing bytes".into(), padded));
    // Fragments: first alone, first then the rest, the rest alone, overlap.
    let proto = f.l4.proto(false);
    let first = ipv4_fragment(f.src, f.dst, proto, 0x5001, 0, true, &body);
    out.push(("first fragment".into(), first.clone()));
    out.push((
        "fragment after its first".into(),
        ipv4_fragment(f.src, f.dst, proto, 0x5001, 5, false, &[0u8; 16]),
    ));
    out.push((
        "fragment without a first".into(),
        ipv4_fragment(f.src, f.dst, proto, 0x5002, 5, false, &[0u8; 16]),
    ));
    out.push((
        "fragment at offset 8".into(),
        ipv4_fragment(f.src, f.dst, proto, 0x5003, 1, false, &body),
    ));
    out.push((
        "IPv4 under the IPv6 ethertype".into(),
        with_ethertype(base.clone(), 0x86dd),
    ));
    if proto == 6 {
        for doff in 0u8..5 {
            let mut p = base.clone();
            p[ip + 20 + 12] = doff << 4;
            out.push((format!("TCP data offset {doff}"), p));
        }
    }
    out
}

/// An IPv6 extension header: its type and bytes.
type ExtHeader = (u8, Vec<u8>);

/// Variants of a denied IPv6 packet.
fn ipv6_variants(f: &TestFlow) -> Vec<(String, Vec<u8>)> {
    let base = f.packet();
    let body = body(f);
    let ip = ETH_HLEN;
    let proto = f.l4.proto(true);
    let mut out = Vec::new();
    for len in MIN_FRAME..base.len() {
        out.push((format!("cut at {len}"), base[..len].to_vec()));
        if len >= ip + 40 {
            let mut p = base[..len].to_vec();
            set_u16(&mut p, ip + 4, (len - ip - 40) as u16);
            out.push((format!("cut at {len}, payload length fixed"), p));
        }
    }
    let payload = base.len() - ip - 40;
    for t in [0, payload.saturating_sub(1), payload + 1, 0xffff] {
        let mut p = base.clone();
        set_u16(&mut p, ip + 4, t as u16);
        out.push((format!("payload length {t}"), p));
    }
    for version in [0u8, 4, 15] {
        let mut p = base.clone();
        p[ip] = version << 4;
        out.push((format!("version {version}"), p));
    }
    let routing = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
    let auth = vec![0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let chains: Vec<(&str, Vec<ExtHeader>)> = vec![
        ("hop-by-hop", vec![(0, ipv6_opts())]),
        (
            "hop-by-hop, routing, destination",
            vec![(0, ipv6_opts()), (43, routing.clone()), (60, ipv6_opts())],
        ),
        ("authentication header", vec![(51, auth.clone())]),
        ("atomic fragment", vec![(44, ipv6_frag(0, false, 1))]),
        (
            "first fragment",
            vec![(60, ipv6_opts()), (44, ipv6_frag(0, true, 2))],
        ),
        ("five headers", vec![(0, ipv6_opts()); 5]),
        ("seven headers", vec![(60, ipv6_opts()); 7]),
    ];
    for (name, chain) in chains {
        out.push((
            name.to_owned(),
            ipv6_with_ext(f.src, f.dst, &chain, proto, &body),
        ));
        let p = ipv6_with_ext(f.src, f.dst, &chain, proto, &body);
        // The same chain cut inside its last header.
        let ext_len: usize = chain.iter().map(|(_, b)| b.len()).sum();
        out.push((
            format!("{name}, cut"),
            p[..ETH_HLEN + 40 + ext_len - 3].to_vec(),
        ));
    }
    let mut long = ipv6_opts();
    long[1] = 200; // claims 1608 bytes
    out.push((
        "options longer than the packet".into(),
        ipv6_with_ext(f.src, f.dst, &[(0, long)], proto, &body),
    ));
    out.push((
        "fragment without a first".into(),
        ipv6_with_ext(
            f.src,
            f.dst,
            &[(44, ipv6_frag(9, false, 3))],
            proto,
            &[0u8; 16],
        ),
    ));
    out.push((
        "IPv6 under the IPv4 ethertype".into(),
        with_ethertype(base.clone(), 0x0800),
    ));
    out
}

#[test]
fn malformed_packets_of_denied_flows_never_pass() {
    let compiled = shop();
    let bundle = &compiled.bundle;
    let mut node = Node::load("malformed");
    node.write(bundle);
    let evaluator = Evaluator::new(bundle);
    // Denied sides, a few per (family, protocol, program).
    let mut picked: std::collections::BTreeMap<(bool, u8, &str), usize> = Default::default();
    let mut checked = 0;
    let mut failures = Vec::new();
    for f in flows(&compiled) {
        let d = evaluator.evaluate(&f.flow);
        let sides = [
            (
                programs::FROM_EP,
                d.egress.as_ref(),
                matches!(f.flow.from, Peer::Workload(_)),
            ),
            (
                programs::TO_EP,
                d.ingress.as_ref(),
                matches!(f.flow.to, Peer::Workload(_)),
            ),
        ];
        for (prog, side, is_ep) in sides {
            let denied =
                is_ep && side.is_some_and(|s| s.verdict() == compiler::flow::Verdict::Denied);
            if !denied {
                continue;
            }
            let n = picked
                .entry((f.src.is_ipv6(), f.l4.proto(f.src.is_ipv6()), prog))
                .or_default();
            if *n >= 4 {
                continue;
            }
            *n += 1;
            let variants = if f.src.is_ipv6() {
                ipv6_variants(&f)
            } else {
                ipv4_variants(&f)
            };
            for (what, p) in variants {
                if !test_run_takes(&p) {
                    continue;
                }
                let (verdict, _) = node.run(prog, &p);
                checked += 1;
                if verdict != TC_ACT_SHOT {
                    failures.push(format!(
                        "{prog} passed {} ({what}): {verdict}",
                        f.describe()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every family, protocol and program had denied flows to mutate.
    assert_eq!(picked.len(), 16, "{picked:?}");
    assert!(checked > 5000, "{checked} variants");
    let stats = node.dp.stats().expect("stats");
    for r in [
        enforcer::datapath::reason::DROP_L3_TRUNCATED,
        enforcer::datapath::reason::DROP_L3_VERSION,
        enforcer::datapath::reason::DROP_L3_BAD_IHL,
        enforcer::datapath::reason::DROP_L3_BAD_LENGTH,
        enforcer::datapath::reason::DROP_L4_TRUNCATED,
        enforcer::datapath::reason::DROP_L4_BAD_HEADER,
        enforcer::datapath::reason::DROP_FRAG_UNKNOWN,
        enforcer::datapath::reason::DROP_FRAG_OVERLAP,
        enforcer::datapath::reason::DROP_IPV6_EXT,
    ] {
        assert!(
            stats.contains_key(&r),
            "no variant was dropped for `{}`",
            enforcer::datapath::reason::name(r)
        );
    }
}

/// The addresses of a frame by its ethertype, read at fixed offsets.
fn frame_addrs(p: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    match (p.get(12..14)?, p.len()) {
        ([0x08, 0x00], n) if n >= 34 => Some((p[26..30].to_vec(), p[30..34].to_vec())),
        ([0x86, 0xdd], n) if n >= 54 => Some((p[22..38].to_vec(), p[38..54].to_vec())),
        _ => None,
    }
}

/// Whether an IPv6 frame carries router or neighbour discovery (outside any fragment), by a
/// walk of its extension headers written apart from the C one. It checks fewer bounds than
/// the datapath, so it may call ND what the datapath drops, never the other way.
fn is_nd(p: &[u8]) -> bool {
    if p.get(12..14) != Some(&[0x86, 0xdd][..]) {
        return false;
    }
    let Some(&first) = p.get(20) else {
        return false;
    };
    let mut next = first;
    let mut at = 54usize;
    for _ in 0..6 {
        match next {
            0 | 43 | 60 | 51 => {
                let (Some(&n), Some(&l)) = (p.get(at), p.get(at + 1)) else {
                    return false;
                };
                at += if next == 51 {
                    (usize::from(l) + 2) * 4
                } else {
                    (usize::from(l) + 1) * 8
                };
                next = n;
            }
            44 => {
                let (Some(&n), Some(fo)) = (p.get(at), p.get(at + 2..at + 4)) else {
                    return false;
                };
                // Offset or more-fragments set: a fragment, never ND.
                if u16::from_be_bytes([fo[0], fo[1]]) & 0xfff9 != 0 {
                    return false;
                }
                at += 8;
                next = n;
            }
            58 => return matches!(p.get(at), Some(133..=137)),
            _ => return false,
        }
    }
    false
}

#[test]
fn random_corruption_passes_only_what_no_policy_stops() {
    // The host switch off too: nothing at all may pass by policy.
    let compiled = compile_tree(
        include_str!("fixtures/deny-all.yaml"),
        Options {
            allow_host_ingress: false,
        },
    );
    let mut node = Node::load("corruption");
    node.write(&compiled.bundle);
    let x: Vec<Vec<u8>> = ["10.3.0.1", "fd00:3::1"]
        .iter()
        .map(|a| {
            enforcer::datapath::addr_bytes(ip(a)).1[..if a.contains(':') { 16 } else { 4 }].to_vec()
        })
        .collect();
    let y: Vec<Vec<u8>> = ["10.3.0.2", "fd00:3::2"]
        .iter()
        .map(|a| {
            enforcer::datapath::addr_bytes(ip(a)).1[..if a.contains(':') { 16 } else { 4 }].to_vec()
        })
        .collect();
    let same_endpoint = |s: &[u8], d: &[u8]| {
        (x.iter().any(|a| a == s) && x.iter().any(|a| a == d))
            || (y.iter().any(|a| a == s) && y.iter().any(|a| a == d))
    };
    let (x4, y4, x6, y6) = (
        ip("10.3.0.1"),
        ip("10.3.0.2"),
        ip("fd00:3::1"),
        ip("fd00:3::2"),
    );
    let l4s = [
        L4::Tcp {
            sport: 1000,
            dport: 80,
            flags: SYN,
        },
        L4::Udp {
            sport: 1000,
            dport: 53,
        },
        L4::Sctp {
            sport: 1000,
            dport: 80,
        },
        L4::Icmp { kind: 8, id: 1 },
        L4::Raw { proto: 47 },
    ];
    let mut bases: Vec<Vec<u8>> = Vec::new();
    for l4 in l4s {
        bases.push(packet(x4, y4, l4, 8));
        bases.push(packet(x6, y6, l4, 8));
        let mut b = l4.header();
        b.extend([0u8; 8]);
        let f = TestFlow {
            flow: compiler::flow::Flow {
                from: Peer::Workload(0),
                to: Peer::Workload(1),
                protocol: policy_lang::model::Protocol::Tcp,
                port: 0,
                http: None,
                dns: None,
            },
            src: x4,
            dst: y4,
            l4,
        };
        bases.push(eth_ip4(&f, &[1, 1, 1, 1, 7, 7, 4, 0], &b));
        bases.push(ipv4_fragment(x4, y4, l4.proto(false), 9, 0, true, &b));
        bases.push(ipv6_with_ext(
            x6,
            y6,
            &[(0, ipv6_opts()), (44, ipv6_frag(0, true, 5))],
            l4.proto(true),
            &b,
        ));
    }
    bases.push(arp());
    let strategy = (
        0..bases.len(),
        prop::collection::vec((0usize..96, any::<u8>()), 0..6),
        prop::option::of(0usize..96),
        0usize..24,
    );
    let mut runner = TestRunner::new(Config {
        cases: 8000,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(base, writes, cut, extra)| {
        let mut p = bases[base].clone();
        for (at, byte) in writes {
            if let Some(b) = p.get_mut(at) {
                *b = byte;
            }
        }
        if let Some(c) = cut {
            p.truncate(c.max(MIN_FRAME));
        }
        p.extend(std::iter::repeat_n(0x55u8, extra));
        if !test_run_takes(&p) {
            return Ok(());
        }
        for prog in [programs::FROM_EP, programs::TO_EP] {
            let (verdict, _) = node.run(prog, &p);
            prop_assert!(
                verdict == TC_ACT_OK || verdict == TC_ACT_SHOT,
                "verdict {verdict}"
            );
            if verdict == TC_ACT_OK {
                let arp = p.get(12..14) == Some(&[0x08, 0x06]);
                let own = frame_addrs(&p).is_some_and(|(s, d)| same_endpoint(&s, &d));
                prop_assert!(
                    arp || own || is_nd(&p),
                    "{prog} passed {:02x?} under a deny-all policy",
                    p
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let stats = node.dp.stats().expect("stats");
    for r in [
        enforcer::datapath::reason::PASS_POLICY,
        enforcer::datapath::reason::PASS_NOT_ENFORCED,
        enforcer::datapath::reason::PASS_HOST,
        enforcer::datapath::reason::PASS_CT_ESTABLISHED,
        enforcer::datapath::reason::PASS_CT_REPLY,
    ] {
        assert!(!stats.contains_key(&r), "{stats:?}");
    }
    // The corruption reached every stage: policy, the endpoint lookup, the parser.
    for r in [
        enforcer::datapath::reason::DROP_DEFAULT_DENY,
        enforcer::datapath::reason::DROP_UNKNOWN_EP,
        enforcer::datapath::reason::DROP_L3_VERSION,
        enforcer::datapath::reason::DROP_L4_TRUNCATED,
        enforcer::datapath::reason::DROP_UNKNOWN_L3,
        enforcer::datapath::reason::PASS_ARP,
    ] {
        assert!(
            stats.contains_key(&r),
            "never `{}`: {stats:?}",
            enforcer::datapath::reason::name(r)
        );
    }
}
