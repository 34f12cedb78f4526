//! `gen-tree`: writes a deterministic synthetic tree of namespaces, workloads and policies.

use benches::gen::{generate, Config};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write a deterministic, valid synthetic tree of Kubernetes namespaces, workloads, Services,
/// NetworkPolicies and Cilium policies (one directory per namespace).
#[derive(Parser)]
#[command(name = "gen-tree")]
struct Args {
    /// Directory to write into; created if missing, refused if not empty.
    out_dir: PathBuf,
    /// Policies to write (~60% NetworkPolicy, ~35% CiliumNetworkPolicy, ~5% clusterwide).
    #[arg(long, default_value_t = 10_000)]
    policies: usize,
    /// Workloads to write (~70% Deployment, 15% StatefulSet, 5% DaemonSet, 10% Pod), kube-dns included.
    #[arg(long, default_value_t = 50_000)]
    workloads: usize,
    /// Namespaces, kube-system included [default: workloads / 200, between 3 and 500].
    #[arg(long)]
    namespaces: Option<usize>,
    /// Seed: the same arguments always give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let not_empty =
        std::fs::read_dir(&args.out_dir).is_ok_and(|mut entries| entries.next().is_some());
    if not_empty {
        eprintln!(
            "error: `{}` is not empty; give a new or empty directory",
            args.out_dir.display()
        );
        return ExitCode::from(2);
    }
    let cfg = Config {
        policies: args.policies,
        workloads: args.workloads,
        namespaces: args.namespaces,
        seed: args.seed,
    };
    let start = std::time::Instant::now();
    match generate(&cfg, &args.out_dir) {
        Ok(s) => {
            println!(
                "wrote {} files ({} JSON), {:.1} MB, {} objects: {} namespaces, {} workloads, {} services, \
                 {} policies ({} NetworkPolicy, {} CiliumNetworkPolicy, {} CiliumClusterwideNetworkPolicy) in {:.2} s",
                s.files,
                s.json_files,
                s.bytes as f64 / 1e6,
                s.objects(),
                s.namespaces,
                s.workloads,
                s.services,
                s.policies(),
                s.network_policies,
                s.cilium_policies,
                s.clusterwide_policies,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
