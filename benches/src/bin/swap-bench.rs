//! `swap-bench`: the GitOps swap benchmark. Change to enforcement through the real policyd
//! for trees of 100 to 50,000 policies, the generation swap itself at 10 to 100,000 map
//! entries, and datagrams lost under a flood during 100 back-to-back swaps; one table.

use benches::run::{is_root, kernel, loud, signals};
use benches::swap::direct::{self, Phases, SwapRow};
use benches::swap::flood::{self, FloodPlan, FloodRun};
use benches::swap::gitops::{self, mem_available_mb, GitopsPlan, GitopsRow};
use benches::swap::stats::{ms_cell, Summary};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The GitOps swap benchmark, as root: (1) change to enforcement through `policyd run
/// --source LINK` for trees of several sizes, (2) `Datapath::write_tables` at several map
/// sizes, (3) datagrams lost under a UDP flood during back-to-back swaps, against the same
/// flood without swaps.
#[derive(Parser)]
#[command(name = "swap-bench")]
struct Args {
    /// A shorter run: fewer repetitions and rounds, a smaller flood generation.
    #[arg(long)]
    quick: bool,
    /// Parts to run.
    #[arg(long, value_delimiter = ',', default_values = ["gitops", "swap", "flood"])]
    parts: Vec<Part>,
    /// Part 1: tree sizes, in policies.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 10_000, 50_000])]
    policies: Vec<usize>,
    /// Part 1: workloads per policy of each tree (gen-tree's default shape is 5) ...
    #[arg(long, default_value_t = 5)]
    workloads_per_policy: usize,
    /// ... and at most this many workloads (gen-tree's default).
    #[arg(long, default_value_t = 50_000)]
    max_workloads: usize,
    /// Part 1: one-policy revisions per tree [default: 5, 2 with --quick].
    #[arg(long)]
    reps: Option<usize>,
    /// Part 1: pods registered with policyd (veths in pod namespaces, `EndpointAdd`).
    #[arg(long, default_value_t = 4)]
    pods: usize,
    /// Part 1: seconds a revision may take to be enforced.
    #[arg(long, default_value_t = 600)]
    revision_timeout: u64,
    /// Part 1: seconds per tree after which no further revision starts (at least one runs)
    /// [default: 900, 420 with --quick].
    #[arg(long)]
    tree_budget: Option<u64>,
    /// Part 1: stop a tree (killing policyd) when `MemAvailable` falls below this, in MB.
    #[arg(long, default_value_t = 2000)]
    min_available_mb: u64,
    /// Part 1: the policyd binary [default: `policyd` next to this binary].
    #[arg(long)]
    policyd: Option<PathBuf>,
    /// Part 2: map sizes, in policy entries.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 1_000, 100_000])]
    entries: Vec<usize>,
    /// Part 2: swaps timed per size [default: 20, 10 with --quick].
    #[arg(long)]
    swap_rounds: Option<usize>,
    /// Part 3: swaps during each flood.
    #[arg(long, default_value_t = 100)]
    flood_swaps: usize,
    /// Part 3: policy entries of the two swapped generations [default: 100000, 10000 with
    /// --quick].
    #[arg(long)]
    flood_entries: Option<usize>,
    /// Part 3: the flood's rate, datagrams per second.
    #[arg(long, default_value_t = 50_000)]
    flood_pps: u64,
    /// Part 3: rounds of (flood without swaps, flood with swaps) [default: 3, 1 with --quick].
    #[arg(long)]
    flood_rounds: Option<usize>,
    /// Internal: the child that prints a swap's phases (`direct::TRACE_CHILD_ARG`).
    #[arg(long = "trace-child-entries", hide = true)]
    trace_child_entries: Option<usize>,
    #[arg(long = "trace-child-writes", hide = true, default_value_t = 5)]
    trace_child_writes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Change to enforcement through policyd.
    Gitops,
    /// write_tables at each size.
    Swap,
    /// Drops under a flood during swaps.
    Flood,
}

/// The target for a 100,000-entry swap.
const TARGET_SWAP_MS: f64 = 100.0;
const TARGET_SWAP_ENTRIES: usize = 100_000;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(n) = args.trace_child_entries {
        // The child of `direct::phases`: the parent reads the trace on our stderr.
        return match direct::trace_child(n, args.trace_child_writes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    signals::install();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !is_root() {
        return Err(
            "swap-bench needs root (network namespaces, bpffs, BPF programs, policyd)".into(),
        );
    }
    let reps = args.reps.unwrap_or(if args.quick { 2 } else { 5 });
    let swap_rounds = args.swap_rounds.unwrap_or(if args.quick { 10 } else { 20 });
    let flood_plan = FloodPlan {
        swaps: args.flood_swaps,
        entries: args
            .flood_entries
            .unwrap_or(if args.quick { 10_000 } else { 100_000 }),
        pps: args.flood_pps,
        rounds: args.flood_rounds.unwrap_or(if args.quick { 1 } else { 3 }),
    };
    if !(1..=100).contains(&reps) || !(1..=1000).contains(&swap_rounds) {
        return Err("--reps must be 1-100 and --swap-rounds 1-1000".into());
    }
    if !(1..=10_000).contains(&flood_plan.swaps)
        || !(1_000..=500_000).contains(&flood_plan.pps)
        || !(1..=20).contains(&flood_plan.rounds)
        || flood_plan.entries < 3
        || args.entries.iter().any(|n| *n < 3)
    {
        return Err("--flood-swaps 1-10000, --flood-pps 1000-500000, --flood-rounds 1-20, and at least 3 entries per generation".into());
    }
    let policyd = match &args.policyd {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate this binary: {e}"))?
            .with_file_name("policyd"),
    };
    let wants = |p| args.parts.contains(&p);
    if wants(Part::Gitops) && !policyd.is_file() {
        return Err(format!(
            "no policyd at {}: build it next to this binary with `cargo build --release -p enforcer --bin policyd -p benches --bin swap-bench`, or pass --policyd PATH",
            policyd.display()
        ));
    }

    let load_start = loadavg();
    println!("swap-bench: the GitOps swap benchmark");
    println!(
        "kernel {}, {} CPUs, load average {load_start}, MemAvailable {} MB{}",
        kernel(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_available_mb(),
        if args.quick { ", --quick" } else { "" }
    );

    let mut gitops_rows = Vec::new();
    if wants(Part::Gitops) {
        println!("policyd: {}", describe_binary(&policyd));
        eprintln!("[1] change to enforcement through policyd ...");
        let plan = GitopsPlan {
            policyd: policyd.clone(),
            sizes: args.policies.clone(),
            workloads_per_policy: args.workloads_per_policy,
            max_workloads: args.max_workloads,
            reps,
            pods: args.pods.clamp(1, 50),
            revision_timeout: Duration::from_secs(args.revision_timeout.clamp(10, 3600)),
            tree_budget: Duration::from_secs(
                args.tree_budget
                    .unwrap_or(if args.quick { 420 } else { 900 })
                    .clamp(10, 7200),
            ),
            min_available_mb: args.min_available_mb,
        };
        gitops_rows = gitops::measure(&plan)?;
    }
    let mut swap_rows = Vec::new();
    let mut phases = Vec::new();
    if wants(Part::Swap) {
        eprintln!("[2] write_tables on the datapath ...");
        swap_rows = direct::measure(&args.entries, swap_rounds)?;
        let largest = args
            .entries
            .iter()
            .copied()
            .max()
            .unwrap_or(TARGET_SWAP_ENTRIES);
        eprintln!("  phases of a {largest}-entry swap (PLC_SWAP_TRACE=1, child process) ...");
        phases = direct::phases(largest, 5).map(|p| vec![(largest, p)])?;
    }
    let mut floods = None;
    if wants(Part::Flood) {
        eprintln!("[3] a UDP flood during back-to-back swaps ...");
        floods = Some(flood::measure(&flood_plan)?);
    }
    let load_end = loadavg();

    println!();
    if wants(Part::Gitops) {
        print_gitops(&gitops_rows, reps);
    }
    if wants(Part::Swap) {
        print_swaps(&swap_rows, swap_rounds, &phases);
    }
    if let Some((baselines, swapped)) = &floods {
        print_floods(&flood_plan, baselines, swapped);
    }
    println!();
    println!("load average {load_start} at start, {load_end} at end");
    let mut warnings = Vec::new();
    for r in &gitops_rows {
        if let Some(why) = &r.stopped {
            warnings.push(format!("{} policies: stopped early: {why}", r.policies));
        }
    }
    let busy: f64 = load_end
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if busy > 2.5 {
        warnings.push(format!(
            "the load average was {load_end} at the end on {} CPUs: other work shared the machine, figures are noisy",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
    }
    if !warnings.is_empty() {
        loud(&warnings);
    }
    Ok(())
}

fn print_gitops(rows: &[GitopsRow], reps: usize) {
    println!("## 1. Change to enforcement (policyd run --source LINK; {reps} one-policy revisions per tree)");
    println!();
    println!("| policies | workloads | policy entries | ipcache | endpoints (here) | flip -> kernel, median / max | flip -> policyd reports it | policyd change_to_enforced | policyd compile | policyd swap | entries changed | first load (to kernel) | policyd peak RSS |");
    println!("|---:|---:|---:|---:|---:|---|---|---|---|---|---|---:|---:|");
    for r in rows {
        let opt = |v: Option<u64>| v.map_or("-".to_owned(), group);
        let pair = |s: Summary| {
            if s.n == 0 {
                "-".to_owned()
            } else {
                format!("{} / {}", ms_cell(s.median), ms_cell(s.max))
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} MB |",
            group(r.policies as u64),
            group(r.workloads as u64),
            opt(r.policy_entries),
            opt(r.ipcache_entries),
            r.endpoints
                .map_or("-".to_owned(), |(e, h)| format!("{} ({h})", group(e))),
            pair(r.summary(|x| x.flip_to_kernel_ms)),
            pair(r.summary(|x| x.flip_to_reported_ms)),
            pair(r.summary(|x| x.change_to_enforced_ms)),
            ms_cell(r.summary(|x| x.compile_ms).median),
            ms_cell(r.summary(|x| x.swap_ms).median),
            changed(r),
            r.first_load
                .map_or("-".to_owned(), |f| ms_cell(f.flip_to_kernel_ms)),
            group(r.peak_rss_mb),
        );
    }
    for r in rows {
        if let Some(why) = &r.stopped {
            println!();
            println!(
                "{} policies: stopped after {} of the revisions: {why}",
                group(r.policies as u64),
                r.reps.len()
            );
        }
        if r.skipped_for_budget > 0 {
            println!();
            println!(
                "{} policies: {} of {reps} revisions measured; the rest would have passed the time budget per tree (--tree-budget).",
                group(r.policies as u64),
                r.reps.len()
            );
        }
    }
    println!();
    println!("- flip: the bench re-points the source link (rename of a new symlink over it, as git-sync does) to a directory that differs from the one before by one NetworkPolicy's port.");
    println!("- kernel: the bench reads `plc_live_v1` from the pinned maps every 1 ms; packets use the new generation from that moment. reports: `history` over the socket shows the revision applied.");
    println!("- policyd change_to_enforced counts from when the watcher sent the change, i.e. after its 300 ms debounce; the outside figures include the debounce. It ends when the history entry is written, after what `apply` does once the flip is done (counting changed entries, saving identities, replacing the previous compile), as does \"reports\".");
    println!();
}

fn print_swaps(rows: &[SwapRow], rounds: usize, phases: &[(usize, Vec<Phases>)]) {
    println!("## 2. The swap itself (Datapath::write_tables, {rounds} swaps per size, two generations differing in one entry)");
    println!();
    println!("| policy entries | write_tables median | p90 | max | release_old_generation median | p90 | max | building the tables (user space, not in the swap) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            group(r.entries as u64),
            ms_cell(r.write_ms.median),
            ms_cell(r.write_ms.p90),
            ms_cell(r.write_ms.max),
            ms_cell(r.release_ms.median),
            ms_cell(r.release_ms.p90),
            ms_cell(r.release_ms.max),
            ms_cell(r.build_ms),
        );
    }
    println!();
    for (n, p) in phases {
        let med = |f: fn(&Phases) -> f64| Summary::of(&p.iter().map(f).collect::<Vec<_>>()).median;
        println!(
            "Phases of a {}-entry swap (PLC_SWAP_TRACE=1, median of {} swaps in a child process): fill inner maps {} / set slots {} / flip {} / quiesce {} = {}",
            group(*n as u64),
            p.len(),
            ms_cell(med(|x| x.fill)),
            ms_cell(med(|x| x.set_slots)),
            ms_cell(med(|x| x.flip)),
            ms_cell(med(|x| x.quiesce)),
            ms_cell(med(Phases::total)),
        );
    }
    if let Some(r) = rows.iter().find(|r| r.entries == TARGET_SWAP_ENTRIES) {
        let met = r.write_ms.median < TARGET_SWAP_MS;
        println!(
            "Target: a {}-entry swap under {TARGET_SWAP_MS:.0} ms: {} (median {}, p90 {}, max {}).",
            group(TARGET_SWAP_ENTRIES as u64),
            if met {
                if r.write_ms.max < TARGET_SWAP_MS {
                    "met"
                } else {
                    "met on the median, not on every swap"
                }
            } else {
                "MISSED"
            },
            ms_cell(r.write_ms.median),
            ms_cell(r.write_ms.p90),
            ms_cell(r.write_ms.max),
        );
    }
    println!();
}

fn print_floods(plan: &FloodPlan, baselines: &[FloodRun], swapped: &[FloodRun]) {
    println!(
        "## 3. Drops under a UDP flood (pod A -> node -> pod B, {} datagrams/s of 64 bytes) during {} back-to-back swaps of {} entries",
        group(plan.pps),
        plan.swaps,
        group(plan.entries as u64)
    );
    println!();
    println!("| flood | swaps | seconds | sent | received | lost | longest gap | lost while a swap ran | datapath drops | B's UDP RcvbufErrors | policy-allow passes | write_tables median / max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
    let mut all: Vec<(&str, &FloodRun)> = Vec::new();
    for (i, b) in baselines.iter().enumerate() {
        all.push(("without swaps", b));
        if let Some(s) = swapped.get(i) {
            all.push(("with swaps", s));
        }
    }
    for (what, r) in &all {
        let drops = if r.drops.is_empty() {
            "none".to_owned()
        } else {
            r.drops
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let w = Summary::of(&r.write_ms);
        println!(
            "| {what} | {} | {:.1} | {} | {} | {} | {} | {} | {drops} | {} | {} | {} |",
            r.swaps,
            r.duration.as_secs_f64(),
            group(r.sent),
            group(r.received),
            group(r.lost),
            group(r.longest_gap),
            if r.swaps > 0 {
                group(r.lost_in_swaps)
            } else {
                "-".to_owned()
            },
            group(r.rcvbuf_errors),
            group(r.policy_allows),
            if w.n > 0 {
                format!("{} / {}", ms_cell(w.median), ms_cell(w.max))
            } else {
                "-".to_owned()
            },
        );
    }
    println!();
    let dp_drops: u64 = swapped.iter().flat_map(|r| r.drops.values()).sum();
    let lost_swapping: u64 = swapped.iter().map(|r| r.lost).sum();
    let lost_baseline: u64 = baselines.iter().map(|r| r.lost).sum();
    let sent_swapping: u64 = swapped.iter().map(|r| r.sent).sum();
    let sent_baseline: u64 = baselines.iter().map(|r| r.sent).sum();
    let rate = |l: u64, s: u64| if s > 0 { l as f64 / s as f64 } else { 0.0 };
    let met = dp_drops == 0
        && (lost_swapping == 0
            || rate(lost_swapping, sent_swapping) <= rate(lost_baseline, sent_baseline));
    println!(
        "Target: no drops attributable to the swaps: {} (datapath drop counters during the swap floods: {dp_drops}; lost {} of {} with swaps, {} of {} without).",
        if met { "met" } else { "MISSED" },
        group(lost_swapping),
        group(sent_swapping),
        group(lost_baseline),
        group(sent_baseline),
    );
    println!("- policy-allow passes: each swap makes the flow's next packet be judged again on both sides (conntrack re-checks entries of an older generation), so about 2 per swap show that the swapped generations were consulted.");
}

/// `+a -r` of the revisions' map entries, or the range when they differ.
fn changed(r: &GitopsRow) -> String {
    let span = |f: fn(&gitops::Rep) -> u64| {
        let lo = r.reps.iter().map(f).min().unwrap_or(0);
        let hi = r.reps.iter().map(f).max().unwrap_or(0);
        if lo == hi {
            group(lo)
        } else {
            format!("{}-{}", group(lo), group(hi))
        }
    };
    if r.reps.is_empty() {
        "-".to_owned()
    } else {
        format!("+{} -{}", span(|x| x.added), span(|x| x.removed))
    }
}

/// 12,345,678
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn describe_binary(path: &std::path::Path) -> String {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| format!(", built {} s ago", now_secs().saturating_sub(d.as_secs())))
        .unwrap_or_default();
    format!("{}{modified}", path.display())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
