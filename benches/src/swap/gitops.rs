//! Part 1, change to enforcement: the real `policyd run --source LINK` in a node namespace
//! with a few pods registered over its socket, following a git-sync-style symbolic link that
//! the bench re-points from one revision's directory to the next (each differing from the
//! one before by one policy); timed from the re-point to the new generation's flip in the
//! kernel (read from the pinned `plc_live_v1`) and to policyd's `history` showing it applied,
//! next to policyd's own numbers.

use super::stats::Summary;
use super::{datapath_error, interrupted};
use crate::gen::{generate, Config};
use crate::netns::{wire_pod, Bpffs, Netns, TempDir};
use enforcer::api::{self, EndpointRegistration, Request};
use enforcer::Datapath;
use policy_lang::model::WorkloadKind;
use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The changing policy's port in revision k: `BASE_PORT + k`.
const BASE_PORT: u16 = 20_000;
/// How often the bench reads the live generation from the pinned map.
const KERNEL_POLL: Duration = Duration::from_millis(1);
/// How often it asks policyd for its history.
const HISTORY_POLL: Duration = Duration::from_millis(20);
/// How often the memory guard reads `MemAvailable`.
const MEMORY_POLL: Duration = Duration::from_millis(250);

/// Part 1's settings.
#[derive(Clone, Debug)]
pub struct GitopsPlan {
    pub policyd: PathBuf,
    pub sizes: Vec<usize>,
    /// Workloads of each tree: `workloads_per_policy * policies`, at most `max_workloads`.
    pub workloads_per_policy: usize,
    pub max_workloads: usize,
    pub reps: usize,
    pub pods: usize,
    pub revision_timeout: Duration,
    /// No revision of a tree starts once the tree has taken this long (at least one runs).
    pub tree_budget: Duration,
    pub min_available_mb: u64,
}

impl GitopsPlan {
    pub fn workloads(&self, policies: usize) -> usize {
        (policies * self.workloads_per_policy).clamp(1, self.max_workloads)
    }
}

/// One re-point of the link.
#[derive(Clone, Copy, Debug)]
pub struct Rep {
    /// Re-point -> `plc_live_v1` holds the new generation (packets use it from then on).
    pub flip_to_kernel_ms: f64,
    /// Re-point -> policyd's history shows the revision applied.
    pub flip_to_reported_ms: f64,
    /// policyd's own figures for the revision.
    pub change_to_enforced_ms: f64,
    pub compile_ms: f64,
    pub swap_ms: f64,
    /// Map entries the revision added and removed (policyd's count).
    pub added: u64,
    pub removed: u64,
}

/// One tree size.
#[derive(Clone, Debug, Default)]
pub struct GitopsRow {
    pub policies: usize,
    pub workloads: usize,
    pub tree: String,
    /// From policyd's log line of the last revision: endpoints of the bundle (registered
    /// here), policy and ipcache entries.
    pub endpoints: Option<(u64, u64)>,
    pub policy_entries: Option<u64>,
    pub ipcache_entries: Option<u64>,
    /// The first load of the big tree (from a small bootstrap tree), not a one-policy change.
    pub first_load: Option<Rep>,
    pub reps: Vec<Rep>,
    pub peak_rss_mb: u64,
    /// Why the size stopped early, if it did.
    pub stopped: Option<String>,
    /// Revisions left out to stay within the time budget.
    pub skipped_for_budget: usize,
}

impl GitopsRow {
    pub fn summary(&self, f: impl Fn(&Rep) -> f64) -> Summary {
        Summary::of(&self.reps.iter().map(f).collect::<Vec<_>>())
    }
}

/// policyd as a child process in the node namespace, killed on drop.
struct Policyd {
    child: Child,
    log: PathBuf,
}

impl Policyd {
    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "policyd exited ({status}); the end of its log:\n{}",
                tail(&self.log, 15)
            )),
            Err(e) => Err(format!("policyd: {e}")),
        }
    }
}

impl Drop for Policyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything of one size. Field order is drop order: the bench's handle on the pinned maps
/// and policyd go before the pods, the node, the bpffs and the files.
struct Node {
    observer: Option<Datapath>,
    policyd: Option<Policyd>,
    pods: Vec<Netns>,
    node: Netns,
    bpffs: Bpffs,
    dir: TempDir,
}

/// A pod to register: the workload it belongs to and its address.
#[derive(Clone, Debug)]
struct PodPlan {
    namespace: String,
    pod_name: String,
    labels: Vec<(String, String)>,
    ip: Ipv4Addr,
}

pub fn measure(plan: &GitopsPlan) -> Result<Vec<GitopsRow>, String> {
    let mut rows = Vec::new();
    for (idx, &n) in plan.sizes.iter().enumerate() {
        interrupted()?;
        let workloads = plan.workloads(n);
        eprintln!("  {n} policies, {workloads} workloads ...");
        let mut row = GitopsRow {
            policies: n,
            workloads,
            ..GitopsRow::default()
        };
        if let Err(e) = measure_size(plan, idx, &mut row) {
            interrupted()?;
            eprintln!("    stopped: {e}");
            row.stopped = Some(e);
        }
        rows.push(row);
    }
    Ok(rows)
}

fn measure_size(plan: &GitopsPlan, idx: usize, row: &mut GitopsRow) -> Result<(), String> {
    let started = Instant::now();
    let available = mem_available_mb();
    if available < plan.min_available_mb {
        return Err(format!(
            "MemAvailable is {available} MB, below --min-available-mb {}",
            plan.min_available_mb
        ));
    }
    let dir = TempDir::create(&format!("g{idx}"))?;
    let revs = dir.path().join("revs");
    let base = revs.join("base");
    let t = Instant::now();
    let stats = generate(
        &Config {
            policies: row.policies,
            workloads: row.workloads,
            namespaces: None,
            seed: 1,
        },
        &base,
    )
    .map_err(|e| format!("generate the tree: {e}"))?;
    row.tree = stats.to_string();
    eprintln!(
        "    generated {} in {:.1} s",
        row.tree,
        t.elapsed().as_secs_f64()
    );
    let pods = pick_pods(&base, plan.pods, idx)?;
    let first = pods
        .first()
        .ok_or("the tree has no Deployment to register a pod of")?;
    for k in 0..=plan.reps {
        revision(&base, &revs.join(format!("rev-{k}")), first, k)?;
    }
    let boot = revs.join("boot");
    std::fs::create_dir_all(&boot).map_err(|e| e.to_string())?;
    std::fs::write(
        boot.join("namespace.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n",
            first.namespace
        ),
    )
    .map_err(|e| e.to_string())?;
    let link_dir = dir.path().join("src");
    std::fs::create_dir_all(&link_dir).map_err(|e| e.to_string())?;
    let link = link_dir.join("current");
    repoint(&link, &boot)?;

    let mut node = Node {
        observer: None,
        policyd: None,
        pods: Vec::new(),
        node: Netns::create(&format!("g{idx}n"))?,
        bpffs: Bpffs::mount(&format!("g{idx}"))?,
        dir,
    };
    let socket = node.dir.path().join("policyd.sock");
    node.policyd = Some(start_policyd(plan, &node, &link, &socket)?);
    // Registered while the small tree is in force: each registration compiles and swaps.
    for (i, p) in pods.iter().enumerate() {
        let pod = Netns::create(&format!("g{idx}p{i}"))?;
        let host_if = format!("sbg{i}");
        wire_pod(&node.node, &pod, &host_if, p.ip)?;
        let reg = EndpointRegistration {
            container_id: format!("swapbench{idx}x{i}"),
            ifname: "eth0".into(),
            netns: pod.path().display().to_string(),
            host_ifname: host_if,
            namespace: p.namespace.clone(),
            pod_name: p.pod_name.clone(),
            pod_uid: None,
            ips: vec![IpAddr::V4(p.ip)],
        };
        node.pods.push(pod);
        api::call(&socket, &Request::EndpointAdd(reg))
            .map_err(|e| format!("register {}/{}: {e}", p.namespace, p.pod_name))?;
    }
    node.observer = Some(Datapath::open_pinned(node.bpffs.path()).map_err(datapath_error)?);

    // The memory guard: kills policyd (by its pid) when the machine runs short.
    let guard_stop = Arc::new(AtomicBool::new(false));
    let guard_fired = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU32::new(0));
    let pid = node.policyd.as_ref().map_or(0, |p| p.child.id());
    let guard = {
        let (stop, fired, peak, min) = (
            guard_stop.clone(),
            guard_fired.clone(),
            peak_rss.clone(),
            plan.min_available_mb,
        );
        std::thread::spawn(move || {
            // Ends with the tree; the cap only bounds the loop.
            let cap = Instant::now() + Duration::from_secs(6 * 3600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < cap {
                peak.fetch_max(rss_mb(pid), Ordering::Relaxed);
                if mem_available_mb() < min {
                    fired.store(true, Ordering::Relaxed);
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                    return;
                }
                std::thread::sleep(MEMORY_POLL);
            }
        })
    };
    let result = run_revisions(plan, &mut node, &link, &revs, &socket, row, started);
    guard_stop.store(true, Ordering::Relaxed);
    let _ = guard.join();
    row.peak_rss_mb = u64::from(peak_rss.load(Ordering::Relaxed));
    let log = node.policyd.as_ref().map(|p| p.log.clone());
    if let Some(log) = log {
        if let Some((eps, here, pol, ipc)) = last_generation_line(&log) {
            row.endpoints = Some((eps, here));
            row.policy_entries = Some(pol);
            row.ipcache_entries = Some(ipc);
        }
    }
    if guard_fired.load(Ordering::Relaxed) {
        return Err(format!(
            "MemAvailable fell below --min-available-mb {} MB: policyd was killed to protect the machine",
            plan.min_available_mb
        ));
    }
    result
}

fn run_revisions(
    plan: &GitopsPlan,
    node: &mut Node,
    link: &Path,
    revs: &Path,
    socket: &Path,
    row: &mut GitopsRow,
    started: Instant,
) -> Result<(), String> {
    // The big tree's first load, from the bootstrap tree.
    row.first_load = Some(flip(plan, node, link, &revs.join("rev-0"), socket)?);
    eprintln!(
        "    first load: {:.0} ms to the kernel",
        row.first_load.map_or(0.0, |r| r.flip_to_kernel_ms)
    );
    let mut last = Duration::ZERO;
    for k in 1..=plan.reps {
        if k > 1 && started.elapsed() + last > plan.tree_budget {
            row.skipped_for_budget = plan.reps + 1 - k;
            eprintln!(
                "    {} revisions left out: the tree has taken {:.0} s (--tree-budget {} s)",
                row.skipped_for_budget,
                started.elapsed().as_secs_f64(),
                plan.tree_budget.as_secs()
            );
            break;
        }
        settle(node)?;
        let t = Instant::now();
        let rep = flip(plan, node, link, &revs.join(format!("rev-{k}")), socket)?;
        eprintln!(
            "    revision {k}: flip -> kernel {:.0} ms, -> reported {:.0} ms; policyd: change_to_enforced {:.0} ms (compile {:.0}, swap {:.0}), entries +{} -{}",
            rep.flip_to_kernel_ms,
            rep.flip_to_reported_ms,
            rep.change_to_enforced_ms,
            rep.compile_ms,
            rep.swap_ms,
            rep.added,
            rep.removed
        );
        row.reps.push(rep);
        last = t.elapsed();
    }
    Ok(())
}

/// Lets policyd's housekeeping free the previous generation (it runs every 100 ms) before
/// the next change.
fn settle(node: &mut Node) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        interrupted()?;
        if let Some(p) = node.policyd.as_mut() {
            p.alive()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Re-points the link to `target` and waits for the kernel and policyd.
fn flip(
    plan: &GitopsPlan,
    node: &mut Node,
    link: &Path,
    target: &Path,
    socket: &Path,
) -> Result<Rep, String> {
    let observer = node
        .observer
        .as_ref()
        .ok_or("no handle on the pinned maps")?;
    let g0 = observer.live_generation().map_err(datapath_error)?;
    let n0 = history(socket)?.len();
    let t0 = Instant::now();
    repoint(link, target)?;
    let deadline = t0 + plan.revision_timeout;

    // policyd's answer comes on a thread: a history request waits while a revision is being
    // applied (the agent holds its lock), up to the client's 30 s timeout, and is retried.
    let done = Arc::new(AtomicBool::new(false));
    let reported = {
        let (socket, done) = (socket.to_owned(), done.clone());
        std::thread::spawn(move || -> Result<(f64, serde_json::Value), String> {
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(h) = history(&socket) {
                    if h.len() > n0 {
                        let at = ms(t0);
                        return Ok((at, h.last().cloned().unwrap_or_default()));
                    }
                }
                std::thread::sleep(HISTORY_POLL);
            }
            Err("no new history entry".into())
        })
    };
    let mut kernel_ms = None;
    let outcome = loop {
        if let Err(e) = interrupted() {
            break Err(e);
        }
        if Instant::now() > deadline {
            break Err(format!(
                "the revision was not enforced within {} s",
                plan.revision_timeout.as_secs()
            ));
        }
        if let Some(p) = node.policyd.as_mut() {
            if let Err(e) = p.alive() {
                break Err(e);
            }
        }
        if kernel_ms.is_none() {
            match observer.live_generation() {
                Ok(g) if g != g0 => kernel_ms = Some(ms(t0)),
                Ok(_) => {}
                Err(e) => break Err(datapath_error(e)),
            }
        }
        if kernel_ms.is_some() && reported.is_finished() {
            break Ok(());
        }
        std::thread::sleep(if kernel_ms.is_some() {
            HISTORY_POLL
        } else {
            KERNEL_POLL
        });
    };
    done.store(true, Ordering::Relaxed);
    let answer = reported
        .join()
        .map_err(|_| "the history thread panicked".to_owned())?;
    outcome?;
    let (reported_ms, entry) = answer?;
    if entry["result"] != "applied" {
        return Err(format!(
            "policyd did not apply the revision: {}",
            serde_json::to_string(&entry).unwrap_or_default()
        ));
    }
    let num = |k: &str| entry[k].as_f64().unwrap_or(f64::NAN);
    Ok(Rep {
        flip_to_kernel_ms: kernel_ms.unwrap_or(f64::NAN),
        flip_to_reported_ms: reported_ms,
        change_to_enforced_ms: num("change_to_enforced_ms"),
        compile_ms: num("compile_ms"),
        swap_ms: num("swap_ms"),
        added: entry["entries_added"].as_u64().unwrap_or(0),
        removed: entry["entries_removed"].as_u64().unwrap_or(0),
    })
}

fn history(socket: &Path) -> Result<Vec<serde_json::Value>, String> {
    let v = api::call(socket, &Request::History { last: None }).map_err(|e| e.to_string())?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn start_policyd(
    plan: &GitopsPlan,
    node: &Node,
    link: &Path,
    socket: &Path,
) -> Result<Policyd, String> {
    let log = node.dir.path().join("policyd.log");
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", node.node.name()])
        .arg(&plan.policyd)
        .arg("--socket")
        .arg(socket)
        .arg("--bpffs-root")
        .arg(node.bpffs.path())
        .arg("run")
        .arg("--source")
        .arg(link)
        .arg("--state-dir")
        .arg(node.dir.path().join("state"))
        .args(["--metrics-address", "none"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", plan.policyd.display()))?;
    let mut p = Policyd { child, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        interrupted()?;
        p.alive()?;
        if let Ok(h) = history(socket) {
            if h.last().is_some_and(|e| e["result"] == "applied") {
                return Ok(p);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "policyd did not apply the bootstrap tree within 60 s:\n{}",
                tail(&p.log, 15)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Re-points `link` at `target` atomically, as git-sync does (a new link renamed over it).
pub fn repoint(link: &Path, target: &Path) -> Result<(), String> {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| format!("symlink: {e}"))?;
    std::fs::rename(&tmp, link).map_err(|e| format!("re-point {}: {e}", link.display()))
}

/// Revision `k`: the base tree (hard links: no file is ever written in place) plus one
/// NetworkPolicy of the first pod's workload, allowing TCP port `BASE_PORT + k` from its
/// namespace.
fn revision(base: &Path, dir: &Path, pod: &PodPlan, k: usize) -> Result<(), String> {
    crate::netns::run(
        "cp",
        &[
            "-al",
            &base.display().to_string(),
            &dir.display().to_string(),
        ],
        None,
    )?;
    let mut labels = String::new();
    for (key, value) in &pod.labels {
        labels.push_str(&format!("      \"{key}\": \"{value}\"\n"));
    }
    let port = BASE_PORT + k as u16;
    let yaml = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: swap-bench\n  namespace: {}\nspec:\n  podSelector:\n    matchLabels:\n{labels}  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector: {{}}\n    ports:\n    - protocol: TCP\n      port: {port}\n",
        pod.namespace
    );
    std::fs::write(dir.join("zz-swap-bench.yaml"), yaml).map_err(|e| e.to_string())
}

/// Deployments to register pods of: from the namespaces with the most policies, two each.
fn pick_pods(tree: &Path, count: usize, idx: usize) -> Result<Vec<PodPlan>, String> {
    let checked = policy_lang::check(&[tree.to_owned()]);
    if checked.errors() > 0 {
        return Err(format!(
            "the generated tree has {} errors",
            checked.errors()
        ));
    }
    let mut per_ns: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &checked.tree.policies {
        let ns = p.meta().namespace.value.as_str();
        if !ns.is_empty() {
            *per_ns.entry(ns).or_default() += 1;
        }
    }
    let mut namespaces: Vec<(&str, usize)> = per_ns.into_iter().collect();
    namespaces.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out = Vec::new();
    for (ns, _) in namespaces {
        let mut deployments: Vec<_> = checked
            .tree
            .workloads
            .iter()
            .filter(|w| w.kind == WorkloadKind::Deployment && w.meta.namespace.value == ns)
            .collect();
        deployments.sort_by(|a, b| a.meta.name.value.cmp(&b.meta.name.value));
        for w in deployments.into_iter().take(2) {
            if out.len() == count {
                return Ok(out);
            }
            let i = out.len();
            out.push(PodPlan {
                namespace: ns.to_owned(),
                pod_name: format!("{}-5d9c7b8f4-sbx{i:02}", w.meta.name.value),
                labels: w
                    .pod_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect(),
                ip: Ipv4Addr::new(10, 246, idx as u8, i as u8 + 1),
            });
        }
    }
    Ok(out)
}

/// `(endpoints, here, policy entries, ipcache entries)` from policyd's last
/// `generation N in force (...): E endpoints (H here), P policy entries, I ipcache entries` line.
fn last_generation_line(log: &Path) -> Option<(u64, u64, u64, u64)> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(" in force (revision "))?;
    let after = line.split_once("): ")?.1;
    let nums: Vec<u64> = after
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(4)
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums[..] {
        [e, h, p, i] => Some((e, h, p, i)),
        _ => None,
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `MemAvailable` in MB (u64::MAX when unreadable: the guard then never fires).
pub fn mem_available_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb / 1024)
}

/// A process's resident set in MB (0 when it is gone).
fn rss_mb(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| (kb / 1024) as u32)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_line_gives_the_counts() {
        let dir = std::env::temp_dir().join(format!("plcb-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("log");
        std::fs::write(
            &log,
            "x policyd: generation 1 in force (revision 1): 3 endpoints (0 here), 10 policy entries, 2 ipcache entries; +12 -0 entries (compiled in 1.0 ms, swapped in 2.0 ms)\n\
             x policyd: generation 7 in force (revision 4): 50000 endpoints (4 here), 18136116 policy entries, 20039 ipcache entries; +5 -3 entries (compiled in 1.0 ms, swapped in 2.0 ms)\n",
        )
        .expect("write");
        assert_eq!(
            last_generation_line(&log),
            Some((50000, 4, 18_136_116, 20039))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
