//! `policyd`: the node agent (`policyd run`) and the commands that ask it or read its maps.

mod bpf;
mod query;
mod table;

use clap::{Parser, Subcommand};
use enforcer::agent::source::Source;
use enforcer::agent::state::RunOptions;
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Enforces a Git-kept tree of network policies on this node with eBPF";

const AFTER_HELP: &str = "\
`policyd run` is the agent: run it inside the node's network namespace. The other commands
ask the running agent over its socket (`status`, `endpoint list`, `observe`, `explain`) or read
the pinned maps directly (`bpf ...`, which works with or without an agent).

Exit status: 0 on success, 1 when the answer is no (`preflight` found a required feature
missing), 2 for usage errors and when the agent or the maps cannot be reached.";

#[derive(Debug, Parser)]
#[command(name = "policyd", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(propagate_version = true, disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// The agent's unix socket.
    #[arg(long, global = true, value_name = "PATH", default_value = enforcer::api::DEFAULT_SOCKET)]
    socket: PathBuf,

    /// The bpffs directory holding the agent's pinned maps and links.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_BPFFS_ROOT)]
    bpffs_root: PathBuf,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

const DEFAULT_BPFFS_ROOT: &str = "/sys/fs/bpf/policyd";

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the agent: compiles the tree, enforces it, serves the socket.
    Run(RunArgs),
    /// The agent's state: kernel, programs, policy revision, endpoints, map fill levels.
    Status,
    /// The endpoints registered by the CNI plugin.
    Endpoint {
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Reads the pinned datapath maps.
    Bpf {
        #[command(subcommand)]
        command: bpf::BpfCommand,
    },
    /// Prints datapath events (like `hubble observe`).
    Observe(query::ObserveArgs),
    /// Explains a drop: the rule, file and line that decided it.
    Explain(query::ExplainArgs),
    /// The revisions seen: applied, rejected (with their errors) or unchanged.
    History {
        /// Only the last N.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
    },
    /// Checks that this kernel and this process can run the datapath.
    #[command(after_help = PREFLIGHT_AFTER_HELP)]
    Preflight,
}

const PREFLIGHT_AFTER_HELP: &str = "\
Checks the kernel version, the CONFIG_* options the datapath needs (from /proc/config.gz or
/boot/config-$(uname -r)), that --bpffs-root is on a bpf filesystem, and this process's
capabilities; lists which optional features (TCX, masquerade, L7 proxies, bandwidth, IPv6,
tunnels, WireGuard, SCTP) this kernel supports.

Exit status: 0 when policyd can run here, 1 when something required is missing.";

#[derive(Debug, Subcommand)]
enum EndpointCommand {
    /// Lists the registered endpoints.
    List,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Established {
    Recheck,
    Keep,
}

const RUN_AFTER_HELP: &str = "\
Run it in the node's network namespace (`ip netns exec node policyd run --source DIR
--bpffs-root DIR`). The bpffs directory must be on a bpf filesystem that outlives the agent
(`mount -t bpf bpf /sys/fs/bpf` in the host's mount namespace; note that `ip netns exec`
remounts /sys, so pass a --bpffs-root outside /sys there). Killing the agent is safe: maps and
programs stay pinned and enforcing, and the next start adopts them.

Following: with --source, policyd watches the directory (inotify, debounced by 300 ms, so a
burst of writes makes one revision). Supported layouts: a plain directory edited in place, a
checkout that `git pull` updates, and git-sync's --link (the directory, or a directory inside
it, is a symbolic link re-pointed atomically to a fresh checkout). With --git, policyd fetches
the branch itself. Each revision is checked and compiled; one with errors is refused and the
revision in force stays (`policyd status`, `policyd history`).

Examples:
  policyd run --source examples/online-shop
  ip netns exec node policyd run --source /srv/policies --bpffs-root /run/policyd/bpf
  policyd run --git https://git.example.com/platform/policies --ref main --path clusters/prod";

#[derive(Debug, clap::Args)]
#[command(after_help = RUN_AFTER_HELP)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["source", "git"])))]
struct RunArgs {
    /// The policy tree to follow: a directory of NetworkPolicy, CiliumNetworkPolicy and
    /// workload YAML, or a symbolic link to one that git-sync re-points. Every change below it
    /// becomes a new revision.
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,

    /// Follow a Git repository instead (a URL, `file://` URL or local path), fetched with the
    /// `git` client every --interval.
    #[arg(long, value_name = "REPO", requires = "reference")]
    git: Option<String>,

    /// The branch (or tag) of --git to follow.
    #[arg(long = "ref", value_name = "BRANCH", id = "reference")]
    reference: Option<String>,

    /// The tree's directory inside the repository of --git.
    #[arg(long, value_name = "SUBDIR", requires = "git")]
    path: Option<PathBuf>,

    /// How often --git is fetched (`30s`, `5m`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    interval: std::time::Duration,

    /// What happens to established connections that a new revision no longer allows:
    /// `recheck` judges their next packet by the new revision and cuts them when it denies
    /// them; `keep` lets them live on, as Cilium does.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Established::Recheck)]
    established: Established,

    /// Local delivery: a packet between two endpoints of this node goes from the sender's
    /// veth straight into the receiver's namespace, both sides judged on the way (`on`), or
    /// through the node's IP stack (`off`).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    local_delivery: String,

    /// Where to serve Prometheus metrics (`GET /metrics`); `none` to serve none.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:9962")]
    metrics_address: String,

    /// Where registered endpoints and the identity allocation are kept.
    #[arg(long, value_name = "DIR", default_value = "/run/policyd")]
    state_dir: PathBuf,

    /// Conntrack capacity (entries).
    #[arg(long, value_name = "N")]
    ct_max_entries: Option<u32>,
}

/// Exit status for usage errors and unreachable agents or maps.
pub const EXIT_ERROR: u8 = 2;

fn preflight(bpffs_root: &std::path::Path, json: bool) -> u8 {
    let report =
        enforcer::preflight::inspect(&enforcer::preflight::HostEnv::from_machine_at(bpffs_root));
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("policyd: error: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        print!("{}", report.render_human());
    }
    if report.is_ok() {
        0
    } else {
        1
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Run(args) => {
            let source = match (&args.source, &args.git, &args.reference) {
                (Some(dir), _, _) => Source::Dir(dir.clone()),
                (None, Some(repo), Some(reference)) => Source::Git {
                    repo: repo.clone(),
                    reference: reference.clone(),
                    path: args.path.clone(),
                    interval: args.interval,
                },
                _ => {
                    eprintln!("policyd: error: give --source DIR, or --git REPO --ref BRANCH");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
            let metrics_address = match args.metrics_address.as_str() {
                "none" => None,
                a => match a.parse() {
                    Ok(a) => Some(a),
                    Err(e) => {
                        eprintln!("policyd: error: --metrics-address `{a}`: {e}");
                        return ExitCode::from(EXIT_ERROR);
                    }
                },
            };
            let opts = RunOptions {
                source,
                bpffs_root: cli.bpffs_root.clone(),
                socket: cli.socket.clone(),
                state_dir: args.state_dir.clone(),
                ct_max_entries: args.ct_max_entries,
                keep_established: args.established == Established::Keep,
                local_delivery: args.local_delivery == "on",
                metrics_address,
            };
            match enforcer::agent::run(opts) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("policyd: error: {e}");
                    EXIT_ERROR
                }
            }
        }
        Command::Status => query::status(&cli.socket, cli.json),
        Command::Endpoint {
            command: EndpointCommand::List,
        } => query::endpoint_list(&cli.socket, cli.json),
        Command::Bpf { command } => bpf::run(command, &cli.bpffs_root, &cli.socket, cli.json),
        Command::Observe(args) => query::observe(args, &cli.socket, cli.json),
        Command::Explain(args) => query::explain(args, &cli.socket, cli.json),
        Command::Preflight => preflight(&cli.bpffs_root, cli.json),
        Command::History { last } => query::history(*last, &cli.socket, cli.json),
    };
    ExitCode::from(code)
}
