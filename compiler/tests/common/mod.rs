//! Shared by the differential tests: loading trees and comparing both evaluators.

#![allow(dead_code)]

use compiler::bundle::Options;
use compiler::flow::{Flow, Peer, Verdict};
use compiler::lookup::Evaluator;
use compiler::lower::{compile, Compiled};
use policy_lang::model::{Entity, FqdnMatch, Policy, Protocol};
use policy_lang::Checked;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

pub fn load_dir(dir: &Path) -> (Checked, Compiled) {
    let checked = policy_lang::check(&[dir.to_path_buf()]);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_lang::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{}: {errors:?}", dir.display());
    let compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    (checked, compiled)
}

pub fn load_text(yaml: &str) -> (Checked, Compiled) {
    let checked = policy_lang::check_sources(vec![("t.yaml".into(), yaml.to_owned())]);
    let compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    (checked, compiled)
}

/// Peers worth probing: every workload, every entity, addresses inside and around every
/// CIDR of the tree, and names the tree's DNS selectors match or miss.
pub fn interesting_peers(checked: &Checked, compiled: &Compiled) -> Vec<Peer> {
    let mut peers: Vec<Peer> = (0..compiled.inventory.workloads.len())
        .map(Peer::Workload)
        .collect();
    for e in [
        Entity::World,
        Entity::Host,
        Entity::RemoteNode,
        Entity::KubeApiserver,
        Entity::Health,
        Entity::Init,
        Entity::Unmanaged,
        Entity::Ingress,
    ] {
        peers.push(Peer::Entity(e));
    }
    let mut ips: BTreeSet<IpAddr> = BTreeSet::new();
    for entry in &compiled.bundle.ipcache {
        let net = entry.prefix;
        ips.insert(net.network());
        ips.insert(net.broadcast());
        if let (IpAddr::V4(a), IpAddr::V4(_)) = (net.network(), net.broadcast()) {
            let n = u32::from(a);
            ips.insert(IpAddr::V4(n.wrapping_sub(1).into()));
            ips.insert(IpAddr::V4(n.wrapping_add(1).into()));
        }
    }
    ips.insert("8.8.8.8".parse().expect("ip"));
    ips.insert("2001:db8::1".parse().expect("ip"));
    for ip in ips {
        match compiled.inventory.by_ip(ip) {
            Some(w) => peers.push(Peer::Workload(w.index)),
            None => peers.push(Peer::Ip(ip)),
        }
    }
    let mut names: BTreeSet<String> = ["example.com".to_owned(), "unrelated.org".to_owned()].into();
    for p in &checked.tree.policies {
        if let Policy::Cilium(cp) = p {
            for r in cp.rules.iter().flat_map(|r| r.rules.iter()) {
                for f in r.fqdns.iter().flatten() {
                    match &f.value {
                        FqdnMatch::Name(n) => {
                            names.insert(n.clone());
                        }
                        FqdnMatch::Pattern(p) => {
                            names.insert(p.replace("**.", "a.b.").replace('*', "x"));
                        }
                    }
                }
            }
        }
    }
    peers.extend(names.into_iter().map(Peer::Fqdn));
    peers.sort();
    peers.dedup();
    peers
}

/// Ports worth probing: every port number the tree mentions, its neighbours, and a few more.
pub fn interesting_ports(compiled: &Compiled) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = [1, 53, 80, 443, 8080, 65535].into();
    for p in &compiled.bundle.policies {
        for e in &p.entries {
            ports.insert(e.key.port.first());
            ports.insert(e.key.port.last());
            ports.insert(e.key.port.first().saturating_sub(1));
            ports.insert(e.key.port.last().saturating_add(1));
        }
    }
    for w in &compiled.inventory.workloads {
        for p in &w.ports {
            ports.insert(p.port);
        }
    }
    ports.into_iter().collect()
}

/// Compares both evaluators on every (from, to, protocol, port) over the interesting sets;
/// returns how many flows were compared. Panics on the first disagreement with both answers.
pub fn compare_all_flows(checked: &Checked, compiled: &Compiled) -> usize {
    let peers = interesting_peers(checked, compiled);
    let ports = interesting_ports(compiled);
    let evaluator = Evaluator::new(&compiled.bundle);
    let mut n = 0;
    let workloads: Vec<&Peer> = peers
        .iter()
        .filter(|p| matches!(p, Peer::Workload(_)))
        .collect();
    let flows = |from: &Peer, to: &Peer| {
        let mut v = Vec::new();
        for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            for port in &ports {
                v.push(Flow {
                    from: from.clone(),
                    to: to.clone(),
                    protocol,
                    port: *port,
                    http: None,
                    dns: None,
                });
            }
        }
        for (protocol, t) in [
            (Protocol::Icmp, 8u16),
            (Protocol::Icmp, 0),
            (Protocol::IcmpV6, 128),
        ] {
            v.push(Flow {
                from: from.clone(),
                to: to.clone(),
                protocol,
                port: t,
                http: None,
                dns: None,
            });
        }
        v
    };
    for a in &peers {
        for b in &workloads {
            for (from, to) in [(a, *b), (*b, a)] {
                if !matches!(from, Peer::Workload(_)) && !matches!(to, Peer::Workload(_)) {
                    continue;
                }
                for flow in flows(from, to) {
                    let reference = compiler::reference::evaluate(
                        &checked.tree,
                        &compiled.inventory,
                        &flow,
                        true,
                    );
                    let bundle = evaluator.evaluate(&flow);
                    if reference.verdict != bundle.verdict {
                        panic!(
                            "evaluators disagree on {} -> {} {:?}/{}: reference {:?}, bundle {:?}\nreference: {reference:#?}\nbundle: {bundle:#?}",
                            flow.from.display(&compiled.inventory),
                            flow.to.display(&compiled.inventory),
                            flow.protocol,
                            flow.port,
                            reference.verdict,
                            bundle.verdict
                        );
                    }
                    n += 1;
                }
            }
        }
    }
    let _ = Verdict::Allowed;
    n
}

/// The flows [`compare_all_flows`] compares, plus, on TCP port 80 and UDP port 53, flows that
/// carry an HTTP request or a DNS query (so that L7 decisions are compared too).
pub fn probe_flows(checked: &Checked, compiled: &Compiled) -> Vec<Flow> {
    use compiler::flow::HttpRequest;
    let peers = interesting_peers(checked, compiled);
    let ports = interesting_ports(compiled);
    let workloads: Vec<&Peer> = peers
        .iter()
        .filter(|p| matches!(p, Peer::Workload(_)))
        .collect();
    let flow = |from: &Peer, to: &Peer, protocol, port| Flow {
        from: from.clone(),
        to: to.clone(),
        protocol,
        port,
        http: None,
        dns: None,
    };
    let mut out = Vec::new();
    for a in &peers {
        for b in &workloads {
            for (from, to) in [(a, *b), (*b, a)] {
                if !matches!(from, Peer::Workload(_)) && !matches!(to, Peer::Workload(_)) {
                    continue;
                }
                if from == to && a != *b {
                    continue;
                }
                for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    for port in &ports {
                        out.push(flow(from, to, protocol, *port));
                    }
                }
                for (protocol, t) in [
                    (Protocol::Icmp, 8u16),
                    (Protocol::Icmp, 0),
                    (Protocol::IcmpV6, 128),
                ] {
                    out.push(flow(from, to, protocol, t));
                }
                for (method, path) in [("GET", "/api/v1"), ("POST", "/")] {
                    let mut f = flow(from, to, Protocol::Tcp, 80);
                    f.http = Some(HttpRequest {
                        method: method.into(),
                        path: path.into(),
                        host: None,
                        headers: Vec::new(),
                    });
                    out.push(f);
                }
                for name in ["api.example.com", "other.org"] {
                    let mut f = flow(from, to, Protocol::Udp, 53);
                    f.dns = Some(name.into());
                    out.push(f);
                }
            }
        }
    }
    out
}

/// Compares both evaluators on the [`probe_flows`] that `keep` keeps; returns how many flows
/// were compared, or the first disagreement with both answers.
pub fn first_disagreement(
    checked: &Checked,
    compiled: &Compiled,
    keep: impl Fn(&Flow) -> bool,
) -> Result<usize, String> {
    let evaluator = Evaluator::new(&compiled.bundle);
    let flows: Vec<Flow> = probe_flows(checked, compiled)
        .into_iter()
        .filter(|f| keep(f))
        .collect();
    for flow in &flows {
        let reference =
            compiler::reference::evaluate(&checked.tree, &compiled.inventory, flow, true);
        let bundle = evaluator.evaluate(flow);
        if reference.verdict != bundle.verdict {
            return Err(format!(
                "evaluators disagree on {} -> {} {:?}/{}{}{}: reference {:?}, bundle {:?}\nreference: {reference:#?}\nbundle: {bundle:#?}",
                flow.from.display(&compiled.inventory),
                flow.to.display(&compiled.inventory),
                flow.protocol,
                flow.port,
                flow.http.as_ref().map(|h| format!(" HTTP {} {}", h.method, h.path)).unwrap_or_default(),
                flow.dns.as_ref().map(|d| format!(" DNS {d}")).unwrap_or_default(),
                reference.verdict,
                bundle.verdict
            ));
        }
    }
    Ok(flows.len())
}
