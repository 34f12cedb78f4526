//! `compile-bench`: times a full compile against the check it starts from, in one process and
//! paired by round, then a recompile after a one-policy change, with each phase's peak memory.

use benches::gen::{generate, Config, Stats};
use benches::measure::{median, run_child, ChildRun};
use benches::run::{default_policyc, loud, max, min, paired, rate, ratio_cell, TempTree};
use clap::Parser;
use compiler::bundle::{Bundle, EndpointPolicy, Entry, EntryKey, Options};
use compiler::identity::Identity;
use compiler::lower::{compile, Compiled, PolicyKey};
use policy_lang::model::{Direction, Policy, PolicyKind, Port, PortSpec, Protocol, Tree};
use policy_lang::{Checked, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

// The allocator `policyc` links, so that in-process time and memory are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time `policy_lang::check` + `compiler::lower::compile` on a generated tree against the check
/// alone (same process, same round), a recompile after a one-policy change, and peak memory.
#[derive(Parser)]
#[command(name = "compile-bench")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    policies: usize,
    #[arg(long, default_value_t = 50_000)]
    workloads: usize,
    /// Namespaces, kube-system included [default: workloads / 200, between 3 and 500].
    #[arg(long)]
    namespaces: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Measured rounds; each runs the check, the full compile (then serialize and recompile)
    /// and, if it exists, `policyc compile`, in a rotating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The policyc binary for the child run [default: `policyc` next to this binary].
    #[arg(long)]
    policyc: Option<PathBuf>,
    /// Keep the generated tree and print where it is.
    #[arg(long)]
    keep: bool,
    /// Stop (exit 2, tree removed) when the machine's MemAvailable falls below this many MB,
    /// rather than let the kernel's OOM killer choose what to kill on a shared VM.
    #[arg(long, default_value_t = 1500)]
    min_available_mb: u64,
}

/// The targets.
const TARGET_FULL_SECS: f64 = 2.0;
const TARGET_RSS_BYTES: f64 = 1e9;
const TARGET_RECOMPILE_SECS: f64 = 0.1;

fn main() -> ExitCode {
    small_pages();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------- memory

/// No transparent huge pages, as `policyc compile` does for itself (see `small_pages` in
/// compiler/src/cli/compile.rs), so that in-process phases pay for memory as the binary does.
/// Children (E) inherit the setting, which policyc sets anyway.
#[allow(unsafe_code)]
fn small_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`) in bytes; 0 if unreadable.
fn status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Sets VmHWM back to the current RSS (Linux 4.0 and later); false when refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A field of `/proc/meminfo` (`MemAvailable`) in bytes; `None` if unreadable.
fn meminfo_bytes(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
}

/// The phase running now, for the watchdog's message.
static PHASE: AtomicUsize = AtomicUsize::new(0);
const PHASES: [&str; 6] = [
    "setup",
    "A (check)",
    "B (check + compile)",
    "D (serialize)",
    "C (recompile)",
    "E (policyc compile child)",
];

fn set_phase(i: usize) {
    PHASE.store(i, Ordering::Relaxed);
}

/// Polls MemAvailable; below `floor` it removes the tree (unless kept) and exits 2, so that a
/// compile too big for this machine ends here instead of in the OOM killer.
fn start_watchdog(floor: u64, tree: PathBuf, keep: bool) {
    std::thread::spawn(move || loop {
        if let Some(avail) = meminfo_bytes("MemAvailable") {
            if avail < floor {
                let phase = PHASES
                    .get(PHASE.load(Ordering::Relaxed))
                    .copied()
                    .unwrap_or("?");
                eprintln!(
                    "error: the machine has {:.0} MB available, below --min-available-mb {:.0}, \
                     in phase {phase} with this process at {:.0} MB RSS: stopped before the OOM \
                     killer. The compile does not fit this machine at this size.",
                    mb(avail),
                    mb(floor),
                    mb(status_bytes("VmRSS"))
                );
                if !keep {
                    let _ = std::fs::remove_dir_all(&tree);
                }
                std::process::exit(2);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    });
}

/// The memory of one phase: the RSS it started from and the peak RSS it reached.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    start: u64,
    peak: u64,
}

#[allow(unsafe_code)] // the one mimalloc call the `mimalloc` crate does not wrap; see SAFETY
mod allocator {
    extern "C" {
        /// mimalloc's own: frees what it caches and, with `force`, returns it to the OS.
        fn mi_collect(force: bool);
    }

    /// Returns the memory mimalloc keeps after a phase, so that the next phase starts from
    /// what is live rather than from what an earlier phase left cached.
    pub fn collect() {
        // SAFETY: `mi_collect` is part of the statically linked mimalloc (the global allocator
        // above); it takes a plain bool and may be called at any time from any thread.
        unsafe { mi_collect(true) }
    }
}

/// Starts a phase: returns cached memory to the OS, resets the peak (when the kernel lets
/// us) and returns the RSS now.
fn mem_begin(resettable: bool) -> u64 {
    allocator::collect();
    if resettable {
        reset_peak();
    }
    status_bytes("VmRSS")
}

fn mem_end(start: u64) -> Mem {
    Mem {
        start,
        peak: status_bytes("VmHWM"),
    }
}

// ---------------------------------------------------------------- the one-policy change

/// Adds a TCP port to the first NetworkPolicy ingress rule that lists ports (a port no entry
/// of that rule covers), on the typed tree. Returns what it did.
/// Adds a port to one NetworkPolicy ingress rule; returns what changed and the policy's key.
fn change_one_policy(tree: &mut Tree) -> Result<(String, PolicyKey), String> {
    for policy in &mut tree.policies {
        let Policy::Kubernetes(np) = policy else {
            continue;
        };
        if !np.directions().contains(&Direction::Ingress) {
            continue;
        }
        let name = format!("{}/{}", np.meta.namespace.value, np.meta.name.value);
        for (i, rule) in np.ingress.iter_mut().enumerate() {
            let Some(ports) = rule.ports.as_mut().filter(|p| !p.is_empty()) else {
                continue;
            };
            let covered = |n: u16| {
                ports.iter().any(|p| match p.port.value {
                    Port::Number(a) => (a..=p.end_port.map_or(a, |e| e.value)).contains(&n),
                    _ => false,
                })
            };
            let Some(new) = (1..=8443u16).rev().find(|n| !covered(*n)) else {
                continue;
            };
            let span = rule.span;
            ports.push(PortSpec {
                protocol: Spanned::new(Protocol::Tcp, span),
                protocol_given: true,
                port: Spanned::new(Port::Number(new), span),
                end_port: None,
                span,
            });
            let key = (
                PolicyKind::NetworkPolicy,
                np.meta.namespace.value.clone(),
                np.meta.name.value.clone(),
            );
            return Ok((
                format!("NetworkPolicy {name}, ingress rule {i}: TCP port {new} added"),
                key,
            ));
        }
    }
    Err("the tree has no NetworkPolicy ingress rule with ports: nothing to change".into())
}

/// How two bundles of the same tree differ, endpoint by endpoint.
#[derive(Clone, Debug, Default)]
struct Diff {
    /// Endpoints whose policy (entries or enforcement) differs.
    endpoints: usize,
    /// Distinct endpoint policies of the new bundle among them.
    policies: usize,
    /// Entries of those distinct policies, before and after.
    entries_before: usize,
    entries_after: usize,
    /// Over the same policies: new keys, keys gone, same key with other content; only when
    /// the old bundle was kept whole.
    entries: Option<(usize, usize, usize)>,
    /// Endpoints whose identity number changed (0 expected: the identity table was passed in).
    renumbered: usize,
    /// Endpoints not found at the same position with the same name (0 expected).
    unmatched: usize,
}

/// What the recompile is compared with: the old bundle, or (when two bundles would not fit)
/// a 64-bit digest of each of its endpoint policies.
struct OldBundle {
    /// Per endpoint: name, identity, policy index.
    endpoints: Vec<(String, Identity, u32)>,
    /// Per endpoint policy: digest and entry count.
    policies: Vec<(u64, usize)>,
    whole: Option<Bundle>,
}

fn policy_digest(p: &EndpointPolicy) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (p.ingress_enforced, p.egress_enforced).hash(&mut h);
    for e in &p.entries {
        (&e.key, &e.verdict, &e.rules).hash(&mut h);
    }
    h.finish()
}

impl OldBundle {
    fn new(b: Bundle, keep_whole: bool) -> OldBundle {
        OldBundle {
            endpoints: b
                .endpoints
                .iter()
                .map(|e| (e.name.clone(), e.identity, e.policy))
                .collect(),
            policies: b
                .policies
                .iter()
                .map(|p| (policy_digest(p), p.entries.len()))
                .collect(),
            whole: keep_whole.then_some(b),
        }
    }
}

fn entry_diff(old: &[Entry], new: &[Entry]) -> (usize, usize, usize) {
    let a: BTreeMap<&EntryKey, &Entry> = old.iter().map(|e| (&e.key, e)).collect();
    let b: BTreeMap<&EntryKey, &Entry> = new.iter().map(|e| (&e.key, e)).collect();
    let added = b.keys().filter(|k| !a.contains_key(*k)).count();
    let removed = a.keys().filter(|k| !b.contains_key(*k)).count();
    let altered = a
        .iter()
        .filter(|(k, e)| b.get(*k).is_some_and(|f| f != *e))
        .count();
    (added, removed, altered)
}

fn diff_bundles(old: &OldBundle, new: &Bundle) -> Diff {
    let mut d = Diff {
        unmatched: old.endpoints.len().abs_diff(new.endpoints.len()),
        entries: old.whole.as_ref().map(|_| (0, 0, 0)),
        ..Diff::default()
    };
    let mut new_digests: BTreeMap<u32, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for ((name, identity, policy), b) in old.endpoints.iter().zip(&new.endpoints) {
        if *name != b.name {
            d.unmatched += 1;
            continue;
        }
        if *identity != b.identity {
            d.renumbered += 1;
        }
        let (old_digest, old_len) = old
            .policies
            .get(*policy as usize)
            .copied()
            .unwrap_or((0, 0));
        let pb = new.policies.get(b.policy as usize);
        let new_digest = *new_digests
            .entry(b.policy)
            .or_insert_with(|| pb.map_or(0, policy_digest));
        if old_digest == new_digest {
            continue;
        }
        d.endpoints += 1;
        if seen.insert(b.policy) {
            d.policies += 1;
            d.entries_before += old_len;
            d.entries_after += pb.map_or(0, |p| p.entries.len());
            if let (Some(whole), Some((added, removed, altered))) = (&old.whole, &mut d.entries) {
                let pa = whole.policies.get(*policy as usize);
                let (a, r, x) = entry_diff(
                    pa.map_or(&[][..], |p| &p.entries),
                    pb.map_or(&[][..], |p| &p.entries),
                );
                *added += a;
                *removed += r;
                *altered += x;
            }
        }
    }
    d
}

/// Counts what would be written, so that the serialized size is known without holding it.
#[derive(Default)]
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `bundle.to_bytes().len()` without the buffer: the same serde_json serialization (compact
/// JSON) plus its final newline, streamed into a counter.
fn serialized_len(bundle: &Bundle) -> Result<usize, String> {
    let mut count = ByteCount::default();
    serde_json::to_writer(&mut count, bundle).map_err(|e| format!("cannot serialize: {e}"))?;
    Ok(count.0 + 1)
}

// ---------------------------------------------------------------- rounds

/// What one compile produced.
#[derive(Clone, Debug, Default)]
struct Counts {
    entries: usize,
    distinct_entries: usize,
    policies: usize,
    endpoints: usize,
    identities: usize,
    ipcache: usize,
    rules: usize,
    l7: usize,
    bytes: usize,
}

/// Where the entries of a bundle come from (counted per endpoint, as `entry_count`).
#[derive(Clone, Debug, Default)]
struct Breakdown {
    /// Entries by their peer: any, reserved, workload, CIDR, DNS-name identities.
    by_peer: [usize; 5],
    /// Entries by the kind of policy of their rules (an entry shaped by rules of two kinds
    /// counts for both).
    by_kind: BTreeMap<String, usize>,
    /// The rules that shape the most entries: entries, policy, rule index, direction/description.
    top_rules: Vec<(usize, String)>,
    /// Heap of the distinct endpoint policies' entry vectors: used, unused capacity, and the
    /// `rules` lists of their entries (one allocation each).
    entry_bytes: usize,
    slack_bytes: usize,
    rule_list_bytes: usize,
    rule_lists: usize,
}

const PEER_CLASSES: [&str; 5] = ["any", "reserved", "workload", "CIDR", "DNS name"];

fn peer_class(id: Identity) -> usize {
    if id == Identity::ANY {
        0
    } else if id.is_reserved() {
        1
    } else if !id.is_local() {
        2
    } else if id.0 < Identity::FIRST_LOCAL + (1 << 23) {
        3
    } else {
        4
    }
}

fn breakdown(b: &Bundle) -> Breakdown {
    let mut users = vec![0usize; b.policies.len()];
    for e in &b.endpoints {
        if let Some(u) = users.get_mut(e.policy as usize) {
            *u += 1;
        }
    }
    let mut by_peer = [0usize; 5];
    let mut per_rule = vec![0usize; b.rules.len()];
    for (p, n) in b.policies.iter().zip(&users) {
        for e in &p.entries {
            if let Some(c) = by_peer.get_mut(peer_class(e.key.peer)) {
                *c += n;
            }
            for r in &e.rules {
                if let Some(c) = per_rule.get_mut(*r as usize) {
                    *c += n;
                }
            }
        }
    }
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds_of_entry: Vec<usize> = Vec::new();
    for (p, n) in b.policies.iter().zip(&users) {
        for e in &p.entries {
            kinds_of_entry.clear();
            for r in &e.rules {
                if let Some(o) = b.rules.get(*r as usize) {
                    let k = match o.kind.as_str() {
                        "NetworkPolicy" => 0,
                        "CiliumNetworkPolicy" => 1,
                        _ => 2,
                    };
                    if !kinds_of_entry.contains(&k) {
                        kinds_of_entry.push(k);
                    }
                }
            }
            for k in &kinds_of_entry {
                let name = [
                    "NetworkPolicy",
                    "CiliumNetworkPolicy",
                    "CiliumClusterwideNetworkPolicy",
                ]
                .get(*k)
                .copied()
                .unwrap_or("?");
                *by_kind.entry(name.to_owned()).or_default() += n;
            }
        }
    }
    let entry_size = std::mem::size_of::<Entry>();
    let (mut entry_bytes, mut slack_bytes, mut rule_list_bytes, mut rule_lists) = (0, 0, 0, 0);
    for p in &b.policies {
        entry_bytes += p.entries.len() * entry_size;
        slack_bytes += (p.entries.capacity() - p.entries.len()) * entry_size;
        for e in &p.entries {
            if e.rules.capacity() > 0 {
                rule_lists += 1;
                rule_list_bytes += e.rules.capacity() * std::mem::size_of::<u32>();
            }
        }
    }
    let mut ranked: Vec<(usize, usize)> = per_rule.iter().copied().zip(0..).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let top_rules = ranked
        .into_iter()
        .take(8)
        .filter_map(|(n, r)| {
            let o = b.rules.get(r)?;
            let index = if o.rule_index == usize::MAX {
                "policyTypes".to_owned()
            } else {
                format!("rule {}", o.rule_index)
            };
            Some((n, format!("{} {index} {}", o.policy(), o.description)))
        })
        .collect();
    Breakdown {
        by_peer,
        by_kind,
        top_rules,
        entry_bytes,
        slack_bytes,
        rule_list_bytes,
        rule_lists,
    }
}

fn counts(c: &Compiled, bytes: usize) -> Counts {
    let b = &c.bundle;
    Counts {
        entries: b.entry_count(),
        distinct_entries: b.policies.iter().map(|p| p.entries.len()).sum(),
        policies: b.policies.len(),
        endpoints: b.endpoints.len(),
        identities: b.identities.len(),
        ipcache: b.ipcache.len(),
        rules: b.rules.len(),
        l7: b.l7.len(),
        bytes,
    }
}

#[derive(Default)]
struct Samples {
    /// A: `policy_lang::check`.
    baseline: Vec<f64>,
    /// B: check + compile, and its two parts.
    full: Vec<f64>,
    full_check: Vec<f64>,
    lower: Vec<f64>,
    /// D: serializing B's bundle (into a byte counter) after B.
    serialize: Vec<f64>,
    /// C: compile again after the change, identities passed in.
    recompile: Vec<f64>,
    /// E: `policyc compile DIR -o /dev/null`, spawn to exit, and its peak RSS from wait4.
    child: Vec<f64>,
    child_rss: Vec<u64>,
    mem_baseline: Vec<Mem>,
    mem_full: Vec<Mem>,
    mem_serialize: Vec<Mem>,
    mem_recompile: Vec<Mem>,
}

/// What the last full round saw.
#[derive(Default)]
struct Outcome {
    counts: Counts,
    breakdown: Breakdown,
    change: String,
    diff: Diff,
    /// Whether C ran with the whole old bundle held (else its digests).
    old_kept: bool,
    errors: usize,
    warnings: usize,
    first_errors: Vec<String>,
}

fn check(dir: &Path) -> Checked {
    policy_lang::check(&[dir.to_path_buf()])
}

fn baseline_round(dir: &Path, resettable: bool, s: &mut Samples) {
    set_phase(1);
    let start = mem_begin(resettable);
    let t = Instant::now();
    let checked = check(dir);
    s.baseline.push(t.elapsed().as_secs_f64());
    s.mem_baseline.push(mem_end(start));
    // Freeing is not timed: a process exits instead, and B does not time it either.
    drop(std::hint::black_box(checked));
    set_phase(0);
}

/// B, then D on its bundle, then the change and C.
fn full_round(
    dir: &Path,
    resettable: bool,
    floor: u64,
    s: &mut Samples,
) -> Result<Outcome, String> {
    set_phase(2);
    let start = mem_begin(resettable);
    let t = Instant::now();
    let mut checked = check(dir);
    let t_check = t.elapsed().as_secs_f64();
    let compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    let t_full = t.elapsed().as_secs_f64();
    let full_mem = mem_end(start);
    s.mem_full.push(full_mem);
    s.full.push(t_full);
    s.full_check.push(t_check);
    s.lower.push(t_full - t_check);

    set_phase(3);
    let start = mem_begin(resettable);
    let t = Instant::now();
    let bytes = serialized_len(&compiled.bundle)?;
    s.serialize.push(t.elapsed().as_secs_f64());
    s.mem_serialize.push(mem_end(start));

    set_phase(0);
    let counts = counts(&compiled, bytes);
    let breakdown = breakdown(&compiled.bundle);
    let (change, key) = change_one_policy(&mut checked.tree)?;
    let mut compiled = compiled;
    let bundle = compiled.bundle.clone();
    // A live compiler holds the old bundle while it builds the new one. When a second bundle
    // (about B's growth) would not fit above the floor, keep digests of the old one instead.
    let need = full_mem.peak.saturating_sub(full_mem.start) as f64 * 1.25;
    let available = meminfo_bytes("MemAvailable").unwrap_or(0) as f64;
    let old_kept = available - floor as f64 > need;
    let old = OldBundle::new(bundle, old_kept);

    set_phase(4);
    let start = mem_begin(resettable);
    let t = Instant::now();
    // The live path: only the changed policy is lowered again (`update_policies`).
    compiled
        .update_policies(&checked.tree, &checked.sources, std::slice::from_ref(&key))
        .map_err(|e| format!("update_policies: {e:?}"))?;
    let again = compiled;
    s.recompile.push(t.elapsed().as_secs_f64());
    s.mem_recompile.push(mem_end(start));
    set_phase(0);

    let first_errors = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_lang::Severity::Error)
        .take(5)
        .map(|d| format!("{d:?}"))
        .collect();
    Ok(Outcome {
        counts,
        breakdown,
        diff: diff_bundles(&old, &again.bundle),
        change,
        old_kept,
        errors: checked.errors(),
        warnings: checked.warnings(),
        first_errors,
    })
}

/// Whether `policyc compile` can run, or why the child line is skipped.
enum ChildState {
    Ready(PathBuf),
    Skipped(String),
}

fn probe_policyc(policyc: &Path) -> ChildState {
    if !policyc.is_file() {
        return ChildState::Skipped(format!(
            "no policyc at `{}` (build it next to this benchmark with \
             `cargo build --release -p compiler -p benches`, or pass --policyc PATH)",
            policyc.display()
        ));
    }
    match run_child(Command::new(policyc).args(["compile", "--help"])) {
        Ok(run) if run.status.success() => ChildState::Ready(policyc.to_path_buf()),
        Ok(run) => ChildState::Skipped(format!(
            "`{} compile --help` {}: this build has no `compile` verb yet",
            policyc.display(),
            exit_text(&run)
        )),
        Err(e) => ChildState::Skipped(e.to_string()),
    }
}

fn exit_text(run: &ChildRun) -> String {
    run.status.code().map_or_else(
        || format!("was killed ({})", run.status),
        |c| format!("exited with {c}"),
    )
}

fn child_compile(policyc: &Path, dir: &Path) -> Result<ChildRun, String> {
    // The child is spawned with vfork, and exec records the parent's peak RSS as the child's
    // starting maxrss: hand cached memory back and reset our peak, so that ru_maxrss is the
    // child's own (plus the few MB this process holds between rounds), not B's or C's.
    mem_begin(reset_peak());
    let run = run_child(
        Command::new(policyc)
            .arg("compile")
            .arg(dir)
            .args(["-o", "/dev/null"]),
    )
    .map_err(|e| e.to_string())?;
    if matches!(run.status.code(), Some(0 | 1)) {
        return Ok(run);
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "`{} compile {} -o /dev/null` {}; expected 0\n{}",
        policyc.display(),
        dir.display(),
        exit_text(&run),
        tail.join("\n")
    ))
}

#[derive(Clone, Copy)]
enum Subject {
    Baseline,
    Full,
    Child,
}

fn run(args: &Args) -> Result<(), String> {
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let policyc = match &args.policyc {
        Some(p) => p.clone(),
        None => default_policyc()?,
    };
    let tree = TempTree::new(args.keep);
    tree.remove_on_signal();
    let cfg = Config {
        policies: args.policies,
        workloads: args.workloads,
        namespaces: args.namespaces,
        seed: args.seed,
    };
    let start = Instant::now();
    let stats = generate(&cfg, &tree.path).map_err(|e| e.to_string())?;
    let gen_secs = start.elapsed().as_secs_f64();
    print_header(args, &stats, gen_secs, &tree.path);
    let dir = tree.path.as_path();
    let floor = args.min_available_mb * 1_000_000;
    start_watchdog(floor, tree.path.clone(), args.keep);

    let resettable = reset_peak();
    let mut child = probe_policyc(&policyc);

    // Warm-up: the check fills the page cache (B and C read nothing else), and the child
    // must work before it is timed. B is not warmed up: at full size it takes minutes, and
    // each phase starts from memory handed back to the OS anyway.
    baseline_round(dir, resettable, &mut Samples::default());
    if let ChildState::Ready(p) = &child {
        set_phase(5);
        let warm_child = child_compile(p, dir);
        set_phase(0);
        if let Err(e) = warm_child {
            loud(&[format!("the child run failed, so its line is skipped: {e}")]);
            child = ChildState::Skipped("it failed in the warm-up (see above)".into());
        }
    }

    let mut s = Samples::default();
    let mut order = vec![Subject::Baseline, Subject::Full];
    if let ChildState::Ready(_) = child {
        order.push(Subject::Child);
    }
    let mut last = Outcome::default();
    for round in 0..args.rounds {
        for k in 0..order.len() {
            match order[(round + k) % order.len()] {
                Subject::Baseline => baseline_round(dir, resettable, &mut s),
                Subject::Full => last = full_round(dir, resettable, floor, &mut s)?,
                Subject::Child => {
                    if let ChildState::Ready(p) = &child {
                        set_phase(5);
                        let run = child_compile(p, dir)?;
                        set_phase(0);
                        s.child.push(run.wall.as_secs_f64());
                        s.child_rss.push(run.max_rss_bytes);
                    }
                }
            }
        }
        progress(round, args.rounds, &s, &last);
    }
    print_table(&stats, &s, &child);
    print_memory(&stats, &s, resettable, &child);
    print_outcome(&last);
    print_targets(&s, last.old_kept);
    Ok(())
}

// ---------------------------------------------------------------- report

/// One line per round on stderr, so that a long run shows where it is, and a run stopped
/// half-way still leaves figures.
fn progress(round: usize, rounds: usize, s: &Samples, o: &Outcome) {
    let last = |v: &[f64]| v.last().map_or("-".to_owned(), |t| format!("{t:.2} s"));
    let peak = |v: &[Mem]| {
        v.last()
            .map_or("-".to_owned(), |m| format!("{:.0} MB", mb(m.peak)))
    };
    eprintln!(
        "round {}/{rounds}: A {}, B {} (compile() {}), D {}, C {}, E {}; peak RSS A {}, B {}, C {}",
        round + 1,
        last(&s.baseline),
        last(&s.full),
        last(&s.lower),
        last(&s.serialize),
        last(&s.recompile),
        last(&s.child),
        peak(&s.mem_baseline),
        peak(&s.mem_full),
        peak(&s.mem_recompile),
    );
    eprintln!(
        "  {} entries, {} endpoints, {} policies, {} identities, {} ipcache, {} bytes; \
         C changed {} endpoints / {} policies ({} -> {} entries); {} errors",
        o.counts.entries,
        o.counts.endpoints,
        o.counts.policies,
        o.counts.identities,
        o.counts.ipcache,
        o.counts.bytes,
        o.diff.endpoints,
        o.diff.policies,
        o.diff.entries_before,
        o.diff.entries_after,
        o.errors
    );
}

fn print_header(args: &Args, st: &Stats, gen_secs: f64, dir: &Path) {
    println!(
        "policyc compile benchmark: seed {}, {} measured rounds after a warm-up check, one process",
        args.seed, args.rounds
    );
    println!("tree: {st}");
    println!("generated in {gen_secs:.2} s into {}", dir.display());
    println!();
}

fn print_table(st: &Stats, s: &Samples, child: &ChildState) {
    let objects = st.objects() as f64;
    println!(
        "{:<46} {:>10} {:>17} {:>10} {:>22}",
        "", "median ms", "min-max ms", "objects/s", "time / A (min-max)"
    );
    let rows: [(&str, &[f64]); 6] = [
        ("A  policy_lang::check (baseline)", &s.baseline),
        ("B  check + lower::compile (full compile)", &s.full),
        ("     B's check", &s.full_check),
        ("     B's compile() alone", &s.lower),
        ("C  compile() again after a one-policy change", &s.recompile),
        ("D  serialize B's bundle (to_bytes' JSON)", &s.serialize),
    ];
    for (name, t) in rows {
        print_row(name, t, objects, &s.baseline);
    }
    match child {
        ChildState::Ready(_) => print_row(
            "E  policyc compile DIR -o /dev/null (child)",
            &s.child,
            objects,
            &s.baseline,
        ),
        ChildState::Skipped(why) => println!("{:<46} skipped: {why}", "E  policyc compile (child)"),
    }
    println!(
        "(A, B and C run in this process, A and B alternating; C and D follow each B on its tree; \
         E is spawn to exit. Ratios pair each time with A of the same round.)"
    );
}

fn print_row(name: &str, t: &[f64], objects: f64, baseline: &[f64]) {
    let m = median(t);
    println!(
        "{:<46} {:>10.1} {:>17} {:>10} {:>22}",
        name,
        m * 1e3,
        format!("{:.1}-{:.1}", min(t) * 1e3, max(t) * 1e3),
        rate(objects / m),
        ratio_cell(&paired(t, baseline)),
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn print_memory(st: &Stats, s: &Samples, resettable: bool, child: &ChildState) {
    let tree_mb = st.bytes as f64 / 1e6;
    println!();
    if resettable {
        println!(
            "peak RSS per phase (VmHWM, reset at the phase's start through /proc/self/clear_refs; \
             peak = max over rounds, start = median RSS the phase began with):"
        );
    } else {
        println!(
            "peak RSS per phase (VmHWM; /proc/self/clear_refs refused, so each peak is the \
             process's peak so far, not the phase's):"
        );
    }
    let rows: [(&str, &[Mem]); 4] = [
        ("A  check", &s.mem_baseline),
        ("B  check + compile", &s.mem_full),
        (
            "D  serialize, streamed (tree + bundle held)",
            &s.mem_serialize,
        ),
        ("C  recompile (tree + old bundle held)", &s.mem_recompile),
    ];
    for (name, mems) in rows {
        let peak = mems.iter().map(|m| m.peak).max().unwrap_or(0);
        let starts: Vec<f64> = mems.iter().map(|m| mb(m.start)).collect();
        println!(
            "  {:<44} peak {:>8.1} MB  start {:>8.1} MB  = {:>5.1} x the tree's bytes",
            name,
            mb(peak),
            median(&starts),
            if tree_mb > 0.0 {
                mb(peak) / tree_mb
            } else {
                0.0
            }
        );
    }
    match child {
        ChildState::Ready(_) => {
            let peak = s.child_rss.iter().copied().max().unwrap_or(0);
            println!(
                "  {:<44} peak {:>8.1} MB  (ru_maxrss from wait4) = {:>5.1} x the tree's bytes",
                "E  policyc compile (child)",
                mb(peak),
                if tree_mb > 0.0 {
                    mb(peak) / tree_mb
                } else {
                    0.0
                }
            );
        }
        ChildState::Skipped(_) => println!(
            "  {:<44} skipped (no `policyc compile`; see above)",
            "E  policyc compile (child)"
        ),
    }
}

fn print_outcome(o: &Outcome) {
    let c = &o.counts;
    println!();
    println!(
        "bundle: {} policy entries over {} endpoints ({} distinct endpoint policies holding {}), \
         {} identities, {} ipcache entries, {} rules, {} L7 sets, {:.1} MB serialized ({} bytes)",
        c.entries,
        c.endpoints,
        c.policies,
        c.distinct_entries,
        c.identities,
        c.ipcache,
        c.rules,
        c.l7,
        c.bytes as f64 / 1e6,
        c.bytes
    );
    println!(
        "       to_bytes() would hold those {:.1} MB in one Vec (and up to twice that while it grows); \
         D streams the same JSON into a byte counter instead",
        c.bytes as f64 / 1e6
    );
    let total = c.entries.max(1) as f64;
    let share = |n: usize| format!("{n} ({:.1}%)", 100.0 * n as f64 / total);
    let by_peer: Vec<String> = PEER_CLASSES
        .iter()
        .zip(o.breakdown.by_peer)
        .map(|(name, n)| format!("{name} {}", share(n)))
        .collect();
    println!("entries by peer: {}", by_peer.join(", "));
    let by_kind: Vec<String> = o
        .breakdown
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {}", share(*n)))
        .collect();
    println!("entries shaped by rules of: {}", by_kind.join(", "));
    let bd = &o.breakdown;
    println!(
        "entry heap of the distinct policies: {:.1} MB in entries ({} bytes each), {:.1} MB unused \
         capacity, {:.1} MB in {} `rules` lists (one allocation per entry, before allocator rounding)",
        bd.entry_bytes as f64 / 1e6,
        std::mem::size_of::<Entry>(),
        bd.slack_bytes as f64 / 1e6,
        bd.rule_list_bytes as f64 / 1e6,
        bd.rule_lists
    );
    println!("rules shaping the most entries:");
    for (n, what) in &o.breakdown.top_rules {
        println!("  {:>12}  {what}", share(*n));
    }
    let d = &o.diff;
    println!(
        "change (on the typed tree, not re-read or re-checked): {}",
        o.change
    );
    let entries = match d.entries {
        Some((added, removed, altered)) => format!("+{added} -{removed} ~{altered}"),
        None => "(old bundle kept as digests: no per-entry diff)".into(),
    };
    println!(
        "recompile: {} endpoints in {} distinct endpoint policies changed, holding {} entries \
         before and {} after {entries}; {} endpoints renumbered",
        d.endpoints, d.policies, d.entries_before, d.entries_after, d.renumbered
    );
    if !o.old_kept {
        println!(
            "note: C did not hold the old bundle (a second bundle would not fit above \
             --min-available-mb), only a digest per endpoint policy: C's peak RSS is lower \
             than a live compiler's, which holds both"
        );
    }
    println!("check: {} errors, {} warnings", o.errors, o.warnings);
    let mut warnings = Vec::new();
    if o.errors > 0 {
        warnings.push(format!(
            "the generated tree is meant to be valid, but the check reported {} errors;",
            o.errors
        ));
        warnings.push("either gen-tree or the validator is wrong. First errors:".into());
        warnings.extend(o.first_errors.iter().cloned());
    }
    if d.endpoints == 0 {
        warnings
            .push("the one-policy change changed no endpoint policy: C measured a no-op.".into());
    }
    if d.renumbered > 0 || d.unmatched > 0 {
        warnings.push(format!(
            "the recompile renumbered {} endpoints and lost {} despite the identity table passed in",
            d.renumbered, d.unmatched
        ));
    }
    if !warnings.is_empty() {
        loud(&warnings);
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_targets(s: &Samples, old_kept: bool) {
    println!();
    println!("against the issue's targets (median over rounds, worst in brackets):");
    let full = median(&s.full);
    println!(
        "  full compile < 2 s            {:>9.0} ms [{:.0}]   B, in process        {}",
        full * 1e3,
        max(&s.full) * 1e3,
        verdict(full < TARGET_FULL_SECS)
    );
    if !s.child.is_empty() {
        let c = median(&s.child);
        println!(
            "                                {:>9.0} ms [{:.0}]   E, policyc compile   {}",
            c * 1e3,
            max(&s.child) * 1e3,
            verdict(c < TARGET_FULL_SECS)
        );
    }
    let peak = |m: &[Mem]| m.iter().map(|m| m.peak).max().unwrap_or(0);
    if let Some(child_peak) = s.child_rss.iter().copied().max() {
        println!(
            "  peak RSS < 1 GB (10^9 bytes)  {:>9.0} MB           E, policyc compile   {}",
            mb(child_peak),
            verdict((child_peak as f64) < TARGET_RSS_BYTES)
        );
    }
    let compile_peak = peak(&s.mem_full).max(peak(&s.mem_serialize));
    println!(
        "  peak RSS < 1 GB (10^9 bytes)  {:>9.0} MB           B+D, in process      {}",
        mb(compile_peak),
        verdict((compile_peak as f64) < TARGET_RSS_BYTES)
    );
    let re_peak = peak(&s.mem_recompile);
    println!(
        "                                {:>9.0} MB           C, {}  {}",
        mb(re_peak),
        if old_kept {
            "tree + 2 bundles"
        } else {
            "tree + 1 bundle "
        },
        verdict((re_peak as f64) < TARGET_RSS_BYTES)
    );
    let re = median(&s.recompile);
    println!(
        "  one-policy recompile < 100 ms {:>9.0} ms [{:.0}]   C, in process        {}",
        re * 1e3,
        max(&s.recompile) * 1e3,
        verdict(re < TARGET_RECOMPILE_SECS)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (TempTree, Checked) {
        let tree = TempTree::new(false);
        let mut cfg = Config::new(40, 200);
        cfg.seed = 3;
        generate(&cfg, &tree.path).expect("the generator writes a tiny tree");
        let checked = check(&tree.path);
        (tree, checked)
    }

    #[test]
    fn one_policy_change_changes_some_endpoint_policy_and_no_identity() {
        let (_tree, mut checked) = tiny();
        assert_eq!(checked.errors(), 0);
        let before = compile(&checked.tree, &checked.sources, None, Options::default());
        let (what, _) = change_one_policy(&mut checked.tree).expect("a NetworkPolicy with ports");
        let after = compile(
            &checked.tree,
            &checked.sources,
            Some(before.identities.clone()),
            Options::default(),
        );
        let whole = diff_bundles(&OldBundle::new(before.bundle.clone(), true), &after.bundle);
        let (added, _, _) = whole.entries.expect("the old bundle was kept");
        assert!(whole.endpoints > 0 && added > 0, "{what}: {whole:?}");
        assert_eq!((whole.renumbered, whole.unmatched), (0, 0));
        assert_eq!(whole.entries_after, whole.entries_before + added);
        // Digests alone find the same endpoints and policies.
        let digests = diff_bundles(&OldBundle::new(before.bundle.clone(), false), &after.bundle);
        assert_eq!(
            (digests.endpoints, digests.policies, digests.entries),
            (whole.endpoints, whole.policies, None)
        );
        let same = diff_bundles(
            &OldBundle::new(before.bundle.clone(), false),
            &before.bundle,
        );
        assert_eq!(same.endpoints, 0);
        assert_eq!(
            serialized_len(&before.bundle),
            Ok(before.bundle.to_bytes().len())
        );
    }

    #[test]
    fn proc_status_fields_are_read() {
        assert!(status_bytes("VmRSS") > 0);
        assert!(status_bytes("VmHWM") >= status_bytes("VmRSS") / 2);
        assert_eq!(status_bytes("NoSuchField"), 0);
    }
}
