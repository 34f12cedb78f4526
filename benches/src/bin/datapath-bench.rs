//! `datapath-bench`: pod-to-pod UDP packets/s and new TCP connections/s through a node
//! namespace with no program, the eBPF datapath, iptables and nftables, each measured paired
//! against an identical twin node without programs, in one run.

use aya::programs::TcAttachType;
use benches::datapath::load::{self, Load, Paired, Plan, Side};
use benches::datapath::policy::{self, CLIENT_IF, CLIENT_IP, SERVER_IF, SERVER_IP};
use benches::datapath::policyd;
use benches::datapath::topo::{self, Sockets, World, DENIED_PROBES};
use benches::netns::{in_netns, Bpffs};
use benches::run::{is_root, kernel, loud, rate, signals};
use clap::{Parser, ValueEnum};
use enforcer::datapath::reason;
use enforcer::{Datapath, GenerationSpec, LoadOptions};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Pod-to-pod 64-byte UDP packets/s and new TCP connections/s through a node namespace,
/// with no program, the eBPF datapath, iptables and nftables enforcing the same policy of N
/// entries; every figure paired against an identical twin node without programs. As root.
#[derive(Parser)]
#[command(name = "datapath-bench")]
struct Args {
    /// A short run: 1 second per measurement unless --seconds says otherwise.
    #[arg(long)]
    quick: bool,
    /// Policy sizes: allow entries of the server's ingress (eBPF), rules (iptables), set
    /// elements (nftables).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 1_000, 100_000])]
    entries: Vec<usize>,
    /// Seconds per measurement; each row measures UDP, then TCP [default: 3, 1 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Enforcers to measure at each size, besides the A/A control.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["tcx-noop", "ebpf", "iptables", "iptables-ct", "nft"]
    )]
    variants: Vec<Variant>,
    /// One side's turn of the paired load generator, in microseconds.
    #[arg(long, default_value_t = 1000)]
    turn_us: u64,
    /// Also report the resident memory of this policyd binary while it enforces the largest
    /// policy for the bench's two pods, on a node namespace of its own.
    #[arg(long, value_name = "BIN")]
    policyd_memory: Option<PathBuf>,
    /// policyd's arguments, one per flag, replacing the default `--bpffs-root {pin_dir}
    /// --socket {socket} run --source {tree} --state-dir {state_dir} --metrics-address none`.
    /// Placeholders: `{tree}` (a directory with the policy as YAML), `{bundle}` (the policy as
    /// a bundle file), `{pin_dir}` (a directory on this run's bpffs), `{socket}`, `{state_dir}`,
    /// `{netns}` (the node namespace's name). Without `{socket}` the pods are not registered
    /// and memory is read after --policyd-settle seconds.
    #[arg(long = "policyd-arg", value_name = "ARG", allow_hyphen_values = true)]
    policyd_args: Vec<String>,
    /// Seconds policyd runs once it enforces the policy, before its memory is read.
    #[arg(long, default_value_t = 2.0)]
    policyd_settle: f64,
    /// Seconds policyd may take to start and enforce the policy.
    #[arg(long, default_value_t = 300.0)]
    policyd_timeout: f64,
    /// Endpoints registered with policyd for the memory figure: the client and the server,
    /// and pods without policy on veths of their own for the rest.
    #[arg(long, default_value_t = 100)]
    policyd_endpoints: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Variant {
    /// The project's eBPF datapath (`enforcer::Datapath`) on both host-side veths, with
    /// local delivery (a packet for another local endpoint goes straight into its namespace).
    Ebpf,
    /// The same without local delivery: packets take the node's IP stack between the veths.
    EbpfRouted,
    /// One iptables rule per entry (the system's `iptables-restore`), every packet towards
    /// the server walking the chain.
    Iptables,
    /// The same, behind an `ESTABLISHED,RELATED` accept, as Calico and kube-router do.
    IptablesCt,
    /// `iptables-legacy-restore` (x_tables) instead of the system's default backend.
    IptablesLegacy,
    /// nftables: one rule, one concatenated interval set of every entry.
    Nft,
    /// A program that passes every packet, attached where the datapath attaches: what the
    /// hooks alone cost. Measured once, whatever the sizes.
    TcxNoop,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Ebpf => "eBPF datapath",
            Variant::EbpfRouted => "eBPF, routed",
            Variant::Iptables => "iptables",
            Variant::IptablesCt => "iptables +ct",
            Variant::IptablesLegacy => "iptables-legacy",
            Variant::Nft => "nft set",
            Variant::TcxNoop => "tcx no-op",
        }
    }
}

/// The no-op tc program (`bpf/noop.bpf.c`, built by `build.rs`).
static NOOP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/noop.bpf.o"));

/// The targets.
const TARGET_EBPF_AT_100K: f64 = 0.92;
const TARGET_X_IPTABLES_AT_1K: f64 = 3.0;
/// The A/A control read 0.97-1.04 on an idle machine (GROUND.md).
const AA_LOW: f64 = 0.96;
const AA_HIGH: f64 = 1.05;

fn main() -> ExitCode {
    let args = Args::parse();
    signals::install();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn interrupted() -> Result<(), String> {
    match signals::RECEIVED.load(Ordering::Relaxed) {
        0 => Ok(()),
        sig => Err(format!(
            "stopped by signal {sig} (namespaces and pins removed)"
        )),
    }
}

/// What lives for the whole run. Field order is drop order.
struct Ctx {
    twin_socks: Sockets,
    twin: World,
    bpffs: Bpffs,
    stop: AtomicBool,
    seconds: f64,
    turn: Duration,
}

struct Row {
    label: &'static str,
    variant: Option<Variant>,
    entries: Option<usize>,
    udp: Paired,
    tcp: Paired,
    /// Loading the policy: write_generation, iptables-restore or nft -f.
    setup: Option<Duration>,
    /// CPU time used by everything but this process, in cores, during the measurements.
    other_cpu: f64,
    detail: Option<String>,
}

fn run(args: &Args) -> Result<(), String> {
    if !is_root() {
        return Err("datapath-bench needs root (network namespaces, bpffs, BPF programs)".into());
    }
    if args.entries.iter().any(|&n| n < 2) {
        return Err("--entries: every size must be at least 2 (the two probed flows)".into());
    }
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 3.0 });
    if !(0.1..=120.0).contains(&seconds) {
        return Err("--seconds must be between 0.1 and 120".into());
    }
    if !(100..=100_000).contains(&args.turn_us) {
        return Err("--turn-us must be between 100 and 100000".into());
    }
    let load_start = loadavg();
    println!(
        "datapath-bench: client pod -> node namespace -> server pod, 64-byte UDP datagrams and new TCP connections"
    );
    println!(
        "each row paired against an identical twin node without programs: turns of {} us, {seconds} s per measurement",
        args.turn_us
    );
    println!(
        "kernel {}, {} CPUs, load average {load_start}, {}",
        kernel(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        iptables_version()
    );

    let bpffs = Bpffs::mount("run")?;
    let twin = World::create("t")?;
    let twin_socks = twin.sockets()?;
    let ctx = Ctx {
        twin_socks,
        twin,
        bpffs,
        stop: AtomicBool::new(false),
        seconds,
        turn: Duration::from_micros(args.turn_us),
    };
    let c = topo::check(&ctx.twin, &ctx.twin_socks)?;
    if !c.udp_received || !c.tcp_accepted || c.denied_received == 0 {
        return Err(format!("the twin topology does not carry traffic: {c:?}"));
    }

    let mut plan: Vec<(Option<Variant>, Option<usize>)> = vec![(None, None)];
    if args.variants.contains(&Variant::TcxNoop) {
        plan.push((Some(Variant::TcxNoop), None));
    }
    for &n in &args.entries {
        for &v in args.variants.iter().filter(|v| **v != Variant::TcxNoop) {
            plan.push((Some(v), Some(n)));
        }
    }
    let mut rows = Vec::new();
    for (idx, (variant, entries)) in plan.into_iter().enumerate() {
        interrupted()?;
        let what = match (variant, entries) {
            (Some(v), Some(n)) => format!("{} with {n} entries", v.label()),
            (Some(v), None) => v.label().to_owned(),
            (None, _) => "A/A control (twin against twin)".to_owned(),
        };
        eprintln!("[{}] {what} ...", idx);
        let row = measure_row(&ctx, idx, variant, entries)?;
        eprintln!(
            "[{}]   UDP {:.2}, TCP {:.2} of the twin",
            idx,
            row.udp.ratio(),
            row.tcp.ratio()
        );
        rows.push(row);
    }
    let load_end = loadavg();

    print_table(&rows);
    print_targets(&rows);
    let mut warnings = Vec::new();
    if let Some(aa) = rows.first() {
        for (what, r) in [("UDP", aa.udp.ratio()), ("TCP", aa.tcp.ratio())] {
            if !(AA_LOW..=AA_HIGH).contains(&r) {
                warnings.push(format!(
                    "the A/A control's {what} ratio is {r:.2}, outside {AA_LOW}-{AA_HIGH}: the machine was disturbed, rerun"
                ));
            }
        }
    }
    let busiest = rows.iter().map(|r| r.other_cpu).fold(0.0, f64::max);
    if busiest > 0.25 {
        warnings.push(format!(
            "other processes used up to {busiest:.2} cores during the measurements (load average {load_start} at start, {load_end} at end): figures are noisy, rerun on a quiet machine"
        ));
    }
    if !warnings.is_empty() {
        loud(&warnings);
    }

    interrupted()?;
    let largest = args.entries.iter().copied().max().unwrap_or(2);
    policyd_memory(args, &ctx, largest)
}

fn measure_row(
    ctx: &Ctx,
    idx: usize,
    variant: Option<Variant>,
    entries: Option<usize>,
) -> Result<Row, String> {
    let n = entries.unwrap_or(0);
    let world = World::create(&format!("v{idx}"))?;
    let mut installed = install(ctx, &world, idx, variant, n)?;
    let socks = world.sockets()?;
    let c = topo::check(&world, &socks)?;
    let label = variant.map_or("A/A control", Variant::label);
    if !c.udp_received || !c.tcp_accepted {
        return Err(format!(
            "{label}: the probed flows do not pass (UDP received: {}, TCP accepted: {})",
            c.udp_received, c.tcp_accepted
        ));
    }
    let enforces = variant.is_some_and(|v| v != Variant::TcxNoop);
    match enforces {
        false if c.denied_received == 0 => {
            return Err(format!(
                "{label}: traffic to the unlisted port was dropped without any policy"
            ))
        }
        true if c.denied_received > 0 => {
            return Err(format!(
                "{label}: {} of {DENIED_PROBES} datagrams to a port no entry allows passed: not enforcing",
                c.denied_received
            ))
        }
        _ => {}
    }

    let twin = Side {
        client: &ctx.twin.client,
        socks: &ctx.twin_socks,
    };
    let var = Side {
        client: &world.client,
        socks: &socks,
    };
    let plan = |load| Plan {
        load,
        duration: Duration::from_secs_f64(ctx.seconds),
        turn: ctx.turn,
        window: Duration::from_millis(100),
    };
    let mut events = 0usize;
    let mut event_errors = 0usize;
    let mut tick = || {
        if let Some(dp) = installed.dp.as_mut() {
            match dp.drain_events() {
                Ok(e) => events += e.len(),
                Err(_) => event_errors += 1,
            }
        }
        signals::RECEIVED.load(Ordering::Relaxed) == 0
    };
    let cpu = CpuSnap::now();
    let udp = load::run(&plan(Load::Udp), twin, var, &ctx.stop, &mut tick)?;
    interrupted()?;
    let tcp = load::run(&plan(Load::Tcp), twin, var, &ctx.stop, &mut tick)?;
    interrupted()?;
    let other_cpu = cpu.other_cores();
    if let Some(dp) = installed.dp.as_mut() {
        events += dp.drain_events().map_or(0, |e| e.len());
    }

    let detail = match &installed.dp {
        Some(dp) => {
            let stats = dp
                .stats()
                .map_err(|e| format!("datapath statistics: {e}"))?;
            let get = |code| stats.get(&code).copied().unwrap_or(0);
            let drops: Vec<String> = stats
                .iter()
                .filter(|(code, _)| {
                    **code >= 128 && u32::from(**code) != enforcer::datapath::STAT_EVENTS_LOST
                })
                .map(|(code, n)| format!("{} {n}", reason::name(*code)))
                .collect();
            if get(reason::PASS_POLICY) == 0 {
                return Err(format!(
                    "{label}: no packet was allowed by a policy entry: the probe missed the policy"
                ));
            }
            Some(format!(
                "{label}, {n} entries: {}; passes: policy-allow {}, not-enforced {}, ct-established {}, ct-reply {}; drops: {}; events drained {events}, lost {}{}",
                installed.note,
                get(reason::PASS_POLICY),
                get(reason::PASS_NOT_ENFORCED),
                get(reason::PASS_CT_ESTABLISHED),
                get(reason::PASS_CT_REPLY),
                if drops.is_empty() { "none".to_owned() } else { drops.join(", ") },
                stats.get(&(enforcer::datapath::STAT_EVENTS_LOST as u16)).copied().unwrap_or(0),
                if event_errors > 0 { format!(", {event_errors} failed drains") } else { String::new() },
            ))
        }
        None if !installed.note.is_empty() => {
            Some(format!("{label}, {n} entries: {}", installed.note))
        }
        None => None,
    };
    drop(socks);
    installed.remove();
    drop(world);
    Ok(Row {
        label,
        variant,
        entries,
        udp,
        tcp,
        setup: installed.setup,
        other_cpu,
        detail,
    })
}

/// A policy installed in a variant's node.
struct Installed {
    dp: Option<Datapath>,
    /// The no-op program; its links last as long as it does.
    noop: Option<aya::Ebpf>,
    pin_dir: Option<PathBuf>,
    setup: Option<Duration>,
    note: String,
}

impl Installed {
    /// Detaches and closes the datapath (its links go with it) and removes its pins.
    fn remove(&mut self) {
        if let Some(dp) = self.dp.take() {
            let _ = dp.unpin();
        }
        self.noop = None;
        if let Some(dir) = self.pin_dir.take() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.remove();
    }
}

fn datapath_error(e: enforcer::DatapathError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!("\n  caused by: {s}"));
        src = s.source();
    }
    msg
}

fn install(
    ctx: &Ctx,
    world: &World,
    idx: usize,
    variant: Option<Variant>,
    n: usize,
) -> Result<Installed, String> {
    let mut out = Installed {
        dp: None,
        noop: None,
        pin_dir: None,
        setup: None,
        note: String::new(),
    };
    let Some(variant) = variant else {
        return Ok(out);
    };
    match variant {
        Variant::Ebpf | Variant::EbpfRouted => {
            let bundle = policy::bundle(n);
            let pin_dir = ctx.bpffs.path().join(format!("row{idx}"));
            out.pin_dir = Some(pin_dir.clone());
            let mut load = LoadOptions::new(&pin_dir);
            load.local_delivery = variant == Variant::Ebpf;
            let dp = out
                .dp
                .insert(Datapath::load(&load).map_err(datapath_error)?);
            let mut spec = GenerationSpec::new(&bundle);
            spec.ifindex
                .insert(IpAddr::V4(CLIENT_IP), world.node.ifindex(CLIENT_IF)?);
            spec.ifindex
                .insert(IpAddr::V4(SERVER_IP), world.node.ifindex(SERVER_IF)?);
            let t = Instant::now();
            let swap = dp.write_generation(&spec).map_err(datapath_error)?;
            out.setup = Some(t.elapsed());
            if swap.policy_entries != n {
                return Err(format!(
                    "the generation holds {} policy entries, not {n}",
                    swap.policy_entries
                ));
            }
            out.note = format!(
                "generation {} with {} policy, {} ipcache, {} endpoint entries",
                swap.generation, swap.policy_entries, swap.ipcache_entries, swap.endpoint_entries
            );
            in_netns(&world.node, || {
                dp.attach_endpoint(CLIENT_IF).map_err(datapath_error)?;
                dp.attach_endpoint(SERVER_IF).map_err(datapath_error)
            })?;
        }
        Variant::TcxNoop => {
            let t = Instant::now();
            let mut ebpf = aya::Ebpf::load(NOOP).map_err(|e| format!("no-op program: {e}"))?;
            let prog: &mut aya::programs::SchedClassifier = ebpf
                .program_mut("plcb_noop")
                .ok_or("no-op program: `plcb_noop` missing from the object")?
                .try_into()
                .map_err(|e| format!("no-op program: {e}"))?;
            prog.load().map_err(|e| format!("no-op program: {e}"))?;
            in_netns(&world.node, || {
                for ifname in [CLIENT_IF, SERVER_IF] {
                    for at in [TcAttachType::Ingress, TcAttachType::Egress] {
                        prog.attach(ifname, at)
                            .map_err(|e| format!("attach the no-op program to {ifname}: {e}"))?;
                    }
                }
                Ok(())
            })?;
            out.setup = Some(t.elapsed());
            out.noop = Some(ebpf);
        }
        Variant::Iptables | Variant::IptablesCt | Variant::IptablesLegacy => {
            let (restore, save) = if variant == Variant::IptablesLegacy {
                ("iptables-legacy-restore", "iptables-legacy")
            } else {
                ("iptables-restore", "iptables")
            };
            let ct = variant == Variant::IptablesCt;
            let text = policy::iptables_restore(&policy::rules(n), ct);
            let t = Instant::now();
            world.node.exec(restore, &[], Some(text.as_bytes()))?;
            out.setup = Some(t.elapsed());
            let listed = world.node.exec_output(save, &["-S", "PLCB-INGRESS"])?;
            let accepts = listed.lines().filter(|l| l.ends_with("-j ACCEPT")).count();
            let want = n + usize::from(ct);
            if accepts != want {
                return Err(format!(
                    "{restore} loaded {accepts} ACCEPT rules, not {want}"
                ));
            }
        }
        Variant::Nft => {
            let text = policy::nft_script(&policy::rules(n));
            let t = Instant::now();
            world
                .node
                .exec("nft", &["-f", "-"], Some(text.as_bytes()))?;
            out.setup = Some(t.elapsed());
            let listed = world
                .node
                .exec_output("nft", &["list", "set", "ip", "plcbench", "allow"])?;
            let elements = listed.matches(&format!(" . {SERVER_IP} . ")).count();
            if elements != n {
                return Err(format!("the nft set holds {elements} elements, not {n}"));
            }
        }
    }
    Ok(out)
}

fn ratio_cell(p: &Paired) -> String {
    let (lo, hi) = p.spread();
    format!("{:.2} ({lo:.2}-{hi:.2})", p.ratio())
}

fn abs_cell(p: &Paired) -> String {
    format!("{} / {}", rate(p.variant.rate()), rate(p.twin.rate()))
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<16} {:>8}  {:<18} {:<18} {:<22} {:<20} {:>9} {:>7}",
        "variant",
        "entries",
        "UDP pps / twin",
        "TCP conn/s / twin",
        "UDP pps variant/twin",
        "TCP conn/s var/twin",
        "setup",
        "others"
    );
    for r in rows {
        println!(
            "{:<16} {:>8}  {:<18} {:<18} {:<22} {:<20} {:>9} {:>7}",
            r.label,
            r.entries.map_or("-".to_owned(), |n| n.to_string()),
            ratio_cell(&r.udp),
            ratio_cell(&r.tcp),
            abs_cell(&r.udp),
            abs_cell(&r.tcp),
            r.setup.map_or("-".to_owned(), |d| format!(
                "{:.0} ms",
                d.as_secs_f64() * 1e3
            )),
            format!("{:.2}", r.other_cpu),
        );
    }
    println!(
        "\nratios: the variant's rate over the twin's, each over the time spent in its own turns; in brackets the 10th-90th percentile over ~100 ms windows."
    );
    println!(
        "setup: loading the policy (write_generation / iptables-restore / nft -f). others: CPU cores used by other processes meanwhile."
    );
    let details: Vec<&String> = rows.iter().filter_map(|r| r.detail.as_ref()).collect();
    if !details.is_empty() {
        println!();
        for d in details {
            println!("  {d}");
        }
    }
}

fn find(rows: &[Row], v: Variant, n: usize) -> Option<&Row> {
    rows.iter()
        .find(|r| r.variant == Some(v) && r.entries == Some(n))
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn print_targets(rows: &[Row]) {
    println!("\ntargets:");
    match find(rows, Variant::Ebpf, 100_000) {
        Some(r) => {
            let (u, t) = (r.udp.ratio(), r.tcp.ratio());
            println!(
                "  eBPF at 100,000 entries >= {TARGET_EBPF_AT_100K} of baseline: UDP {u:.2} {}, TCP {t:.2} {}",
                met(u >= TARGET_EBPF_AT_100K),
                met(t >= TARGET_EBPF_AT_100K)
            );
        }
        None => println!("  eBPF at 100,000 entries: not measured in this run"),
    }
    for v in [
        Variant::Iptables,
        Variant::IptablesCt,
        Variant::IptablesLegacy,
    ] {
        let (Some(e), Some(i)) = (find(rows, Variant::Ebpf, 1_000), find(rows, v, 1_000)) else {
            if v == Variant::Iptables {
                println!("  eBPF vs iptables at 1,000 rules: not measured in this run");
            }
            continue;
        };
        let cell = |eb: f64, ip: f64| {
            let x = eb / ip;
            // A ratio to the twin above 1.00 is not a speed-up any enforcer can have.
            let reachable = if ip * TARGET_X_IPTABLES_AT_1K > 1.0 {
                format!(
                    " (unreachable: it would take {:.2} of baseline)",
                    ip * TARGET_X_IPTABLES_AT_1K
                )
            } else {
                String::new()
            };
            format!(
                "{eb:.2} / {ip:.2} = {x:.1}x {}{reachable}",
                met(x >= TARGET_X_IPTABLES_AT_1K)
            )
        };
        println!(
            "  eBPF >= {TARGET_X_IPTABLES_AT_1K}x {} at 1,000 rules: UDP {}; TCP {}{}",
            v.label(),
            cell(e.udp.ratio(), i.udp.ratio()),
            cell(e.tcp.ratio(), i.tcp.ratio()),
            if v == Variant::Iptables {
                ""
            } else {
                " (not the issue's target, for reference)"
            }
        );
    }
}

/// policyd's resident memory while it enforces the largest policy (see
/// `benches::datapath::policyd`), or a line saying why not.
fn policyd_memory(args: &Args, ctx: &Ctx, n: usize) -> Result<(), String> {
    println!();
    let Some(bin) = &args.policyd_memory else {
        println!("policyd memory: skipped (no --policyd-memory BIN given)");
        return Ok(());
    };
    let report = policyd::measure(&policyd::Options {
        bin,
        args: &args.policyd_args,
        entries: n,
        bpffs: ctx.bpffs.path(),
        timeout: Duration::from_secs_f64(args.policyd_timeout.clamp(1.0, 3600.0)),
        settle: Duration::from_secs_f64(args.policyd_settle.clamp(0.0, 3600.0)),
        endpoints: args.policyd_endpoints.max(2),
    })?;
    println!(
        "policyd memory ({}) with the {n}-entry policy and {} endpoints: VmRSS {}, VmHWM {} (after {} s{})",
        bin.display(),
        args.policyd_endpoints.max(2),
        report.vm_rss,
        report.vm_hwm,
        args.policyd_settle,
        match &report.status {
            Some(_) => " enforcing",
            None => " running",
        }
    );
    if let Some(status) = report.status {
        println!("  policyd status: {status}");
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn iptables_version() -> String {
    Command::new("iptables")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "iptables not found".to_owned())
}

/// CPU time of the whole machine and of this process, to tell how busy the rest was.
struct CpuSnap {
    machine: u64,
    own: u64,
    at: Instant,
}

/// `USER_HZ`: the unit of /proc/stat and /proc/self/stat on Linux.
const TICKS_PER_SEC: f64 = 100.0;

impl CpuSnap {
    fn now() -> CpuSnap {
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines().next().map(|l| {
                    // cpu user nice system idle iowait irq softirq steal
                    let f: Vec<u64> = l
                        .split_whitespace()
                        .skip(1)
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    [0, 1, 2, 7].iter().filter_map(|&i| f.get(i)).sum()
                })
            })
            .unwrap_or(0);
        let own = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the command's closing parenthesis, from `state` (field 3):
                // utime and stime (fields 14 and 15) are the 12th and 13th of them.
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        CpuSnap {
            machine,
            own,
            at: Instant::now(),
        }
    }

    /// Cores' worth of user, system and stolen time since `self` that was not this process's.
    fn other_cores(&self) -> f64 {
        let now = CpuSnap::now();
        let secs = now.at.duration_since(self.at).as_secs_f64();
        let other = now.machine.saturating_sub(self.machine) as f64
            - now.own.saturating_sub(self.own) as f64;
        if secs > 0.0 {
            (other / TICKS_PER_SEC / secs).max(0.0)
        } else {
            0.0
        }
    }
}
