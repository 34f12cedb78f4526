//! The conformance scenarios of `shared/conformance/netpol-analyzer/tests` on the real
//! datapath: one pod per workload, wired by `policy-cni`, a server on every probed port in
//! every pod, and every (source, destination, port) cell of `policyc matrix` probed with real
//! TCP connections and UDP datagrams. The datapath must agree with the matrix on every probe.
//!
//! Pods take the address the tree gives them (`status.podIP`, through the `static` IPAM
//! plugin) or one from `host-local` outside every CIDR of the corpus, so that the tree the
//! matrix reads and the tree policyd enforces are the same. SCTP cells are skipped: this
//! kernel has no SCTP (`policyd preflight` says so).

mod node;

use compiler::bundle::Options;
use compiler::inventory::Workload;
use compiler::lower::{compile, Compiled};
use compiler::matrix::{self, PortProto};
use node::*;
use policy_lang::model::{Protocol, WorkloadKind};
use socket2::{Domain, Socket, Type};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIOS: [&str; 19] = [
    "core_pods_without_host_ip",
    "exposure_test_pod_exposed_only_to_representative_peers",
    "minimal_test_in_ns",
    "netpol_named_port_test",
    "netpol_named_port_test_2",
    "new_online_boutique",
    "new_online_boutique_synthesis",
    "onlineboutique",
    "semanticDiff-different-topologies-policy-a",
    "semanticDiff-different-topologies-policy-a-with-ipblock",
    "semanticDiff-different-topologies-policy-b",
    "semanticDiff-different-topologies-policy-b-with-ipblock",
    "semanticDiff-orig-topologies-no-policy",
    "semanticDiff-orig-topologies-policy-a",
    "test_with_named_ports",
    "test_with_named_ports_changed_netpol",
    "test_with_named_ports_changed_netpol_2",
    "with_end_port_example",
    "with_end_port_example_new",
];

/// A port no workload of the corpus declares: cells of it probe the default verdicts.
const UNDECLARED: u16 = 9999;
/// How long a probe waits for its answer.
const WAIT: Duration = Duration::from_millis(400);
/// Sockets one source opens at once.
const BATCH: usize = 200;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/netpol-analyzer/tests")
}

/// A name a controller of `kind` would give a pod of `name`.
fn pod_name(w: &Workload) -> String {
    match w.kind {
        WorkloadKind::Pod => w.name.clone(),
        WorkloadKind::Deployment => format!("{}-5d9c7b8f4-x2x7q", w.name),
        WorkloadKind::StatefulSet => format!("{}-0", w.name),
        WorkloadKind::CronJob => format!("{}-29000000-x2x7q", w.name),
        WorkloadKind::ReplicaSet | WorkloadKind::DaemonSet | WorkloadKind::Job => {
            format!("{}-x2x7q", w.name)
        }
    }
}

/// The pod name and address for a workload: a Pod object of the tree that belongs to it (its
/// name, its `status.podIP`), or a controller's pod name and no fixed address.
fn pod_for(tree: &policy_lang::model::Tree, w: &Workload) -> (String, Option<IpAddr>) {
    let object = tree.workloads.iter().find(|o| {
        o.kind == WorkloadKind::Pod
            && o.meta.namespace.value == w.namespace
            && (o.meta.name.value == w.name
                || o.meta.owner_references.iter().any(|r| r.name == w.name))
    });
    match object {
        Some(o) => (o.meta.name.value.clone(), o.ips.first().copied()),
        None => (pod_name(w), None),
    }
}

/// Servers that answer every probe that reaches them: TCP listeners that accept and close,
/// UDP sockets that echo.
struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listening {
    fn start(pod: &Pod, ports: &[PortProto]) -> Listening {
        let ip = pod.ip;
        let ports = ports.to_vec();
        let (tcp, udp) = in_netns(&pod.netns, move || {
            let mut tcp = Vec::new();
            let mut udp = Vec::new();
            for p in &ports {
                let at = SocketAddr::new(ip, p.port);
                match p.protocol {
                    Protocol::Tcp => {
                        let l = TcpListener::bind(at).expect("bind tcp");
                        l.set_nonblocking(true).expect("nonblocking");
                        tcp.push(l);
                    }
                    Protocol::Udp => {
                        let s = UdpSocket::bind(at).expect("bind udp");
                        s.set_nonblocking(true).expect("nonblocking");
                        udp.push(s);
                    }
                    _ => {}
                }
            }
            (tcp, udp)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !flag.load(Ordering::Relaxed) {
                let mut idle = true;
                for l in &tcp {
                    while let Ok((conn, _)) = l.accept() {
                        idle = false;
                        drop(conn);
                    }
                }
                for s in &udp {
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        idle = false;
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Listening {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Probes `targets` from the calling thread's namespace, `BATCH` at a time: all sockets
/// send at once, then each is read after `WAIT`. Returns whether each got through.
fn probe_all(targets: &[(SocketAddr, Protocol)]) -> Vec<bool> {
    let mut out = Vec::with_capacity(targets.len());
    for chunk in targets.chunks(BATCH) {
        let mut pending: Vec<(Socket, Protocol)> = Vec::with_capacity(chunk.len());
        for (addr, protocol) in chunk {
            let domain = if addr.is_ipv4() {
                Domain::IPV4
            } else {
                Domain::IPV6
            };
            let ty = if *protocol == Protocol::Tcp {
                Type::STREAM
            } else {
                Type::DGRAM
            };
            let s = Socket::new(domain, ty, None).expect("socket");
            s.set_nonblocking(true).expect("nonblocking");
            // Non-blocking TCP connects answer EINPROGRESS; UDP "connects" at once.
            let _ = s.connect(&(*addr).into());
            if *protocol == Protocol::Udp {
                let _ = s.send(b"probe");
            }
            pending.push((s, *protocol));
        }
        std::thread::sleep(WAIT);
        for (s, protocol) in pending {
            let through = match protocol {
                Protocol::Tcp => match s.take_error() {
                    // A reset: the SYN got through and the answer came back.
                    Ok(Some(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                    _ => s.peer_addr().is_ok(),
                },
                _ => {
                    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16];
                    matches!(s.recv(&mut buf), Ok(5))
                }
            };
            out.push(through);
        }
    }
    out
}

/// One probe: the matrix cell it checks, the destination and the protocol.
type Probe = (usize, SocketAddr, Protocol);

struct Mismatch {
    from: String,
    to: String,
    port: String,
    matrix: bool,
}

/// Probes, how many of them the datapath let through, and the disagreements.
fn run_scenario(name: &str) -> (usize, usize, Vec<Mismatch>) {
    let dir = corpus().join(name);
    let checked = policy_lang::check(std::slice::from_ref(&dir));
    assert_eq!(checked.errors(), 0, "{name} does not check");
    let compiled: Compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    let mut ports: Vec<PortProto> = matrix::declared_ports(&compiled.inventory)
        .into_iter()
        .filter(|p| matches!(p.protocol, Protocol::Tcp | Protocol::Udp) && p.port != 0)
        .collect();
    ports.push(PortProto {
        port: UNDECLARED,
        protocol: Protocol::Tcp,
    });
    ports.sort();
    ports.dedup();
    let cells = matrix::compute(&compiled, &ports);

    let mut node = Node::with_tree(&name.chars().take(4).collect::<String>(), &dir);
    let host_local = node.host_local("172.30.0.0/16");
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    for w in &compiled.inventory.workloads {
        if w.host_network {
            continue;
        }
        let (pod, ip) = pod_for(&checked.tree, w);
        let ipam = match ip {
            Some(ip) => Node::static_ip(ip),
            None => host_local.clone(),
        };
        let p = node.add_pod(&w.namespace, &pod, &ipam);
        pods.insert(w.full_name(), p);
    }
    let _servers: Vec<Listening> = pods.values().map(|p| Listening::start(p, &ports)).collect();

    // Probes grouped by source pod; sources run in parallel.
    let mut by_source: BTreeMap<String, Vec<Probe>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        if c.from == c.to {
            continue;
        }
        let (Some(to), Some(_)) = (pods.get(&c.to), pods.get(&c.from)) else {
            continue;
        };
        let pp: PortProto = c.port.parse().expect("cell port");
        by_source.entry(c.from.clone()).or_default().push((
            i,
            SocketAddr::new(to.ip, pp.port),
            pp.protocol,
        ));
    }
    let mut results: BTreeMap<usize, bool> = BTreeMap::new();
    let sources: Vec<(String, Vec<Probe>)> = by_source.into_iter().collect();
    for group in sources.chunks(4) {
        let handles: Vec<_> = group
            .iter()
            .map(|(from, probes)| {
                let netns = pods[from].netns.clone();
                let probes = probes.clone();
                std::thread::spawn(move || {
                    let targets: Vec<(SocketAddr, Protocol)> =
                        probes.iter().map(|(_, a, p)| (*a, *p)).collect();
                    let through = in_netns(&netns, move || probe_all(&targets));
                    probes
                        .iter()
                        .map(|(i, _, _)| *i)
                        .zip(through)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            results.extend(h.join().expect("probe thread"));
        }
    }
    let mismatches = results
        .iter()
        .filter(|(i, through)| cells[**i].allowed != **through)
        .map(|(i, _)| Mismatch {
            from: cells[*i].from.clone(),
            to: cells[*i].to.clone(),
            port: cells[*i].port.clone(),
            matrix: cells[*i].allowed,
        })
        .collect();
    let through = results.values().filter(|t| **t).count();
    (results.len(), through, mismatches)
}

#[test]
fn every_probe_on_the_real_datapath_agrees_with_policyc_matrix() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let (mut all_probes, mut all_through) = (0, 0);
    for name in SCENARIOS {
        let t = Instant::now();
        let (probes, through, mismatches) = run_scenario(name);
        all_probes += probes;
        all_through += through;
        report.push(format!(
            "{name}: {probes} probes ({through} got through), {} mismatches, {:.1} s",
            mismatches.len(),
            t.elapsed().as_secs_f64()
        ));
        eprintln!("{}", report.last().map(String::as_str).unwrap_or(""));
        for m in mismatches.iter().take(10) {
            failures.push(format!(
                "{name}: {} -> {} {}: matrix says {}, the datapath {}",
                m.from,
                m.to,
                m.port,
                if m.matrix { "allowed" } else { "denied" },
                if m.matrix {
                    "dropped it"
                } else {
                    "let it through"
                }
            ));
        }
        assert!(probes > 0, "{name}: nothing was probed");
    }
    // Both verdicts were exercised: a datapath that passed or dropped everything would fail.
    assert!(
        all_through > 0 && all_through < all_probes,
        "{all_through} of {all_probes} probes got through"
    );
    assert!(
        failures.is_empty(),
        "{}\n\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}
