//! `check-bench`: times `policyc check` on a generated tree against read and parse floors
//! measured in the same run, and reports its peak memory.

use benches::gen::{generate, Config, Stats};
use benches::measure::{median, parse_all, read_all, run_child, ChildRun};
use benches::run::{default_policyc, loud, max, min, paired, rate, ratio_cell, TempTree};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Time `policyc check DIR --format json` on a generated tree, next to two floors measured in
/// the same run: (A) reading every file, (B) pulling every saphyr-parser event of every file.
#[derive(Parser)]
#[command(name = "check-bench")]
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
    /// Measured rounds; each times A, B and policyc once, in a rotating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The policyc binary [default: `policyc` next to this binary].
    #[arg(long)]
    policyc: Option<PathBuf>,
    /// Keep the generated tree and print where it is.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Clone, Copy)]
enum Subject {
    Read,
    Parse,
    Policyc,
}

#[derive(Default)]
struct Samples {
    read: Vec<f64>,
    parse: Vec<f64>,
    policyc: Vec<f64>,
    rss: Vec<u64>,
}

fn run(args: &Args) -> Result<(), String> {
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let policyc = match &args.policyc {
        Some(p) => p.clone(),
        None => default_policyc()?,
    };
    if !policyc.is_file() {
        return Err(format!(
            "policyc not found at `{}`\n  build it next to this benchmark with:\n    \
             cargo build --release -p compiler -p benches\n  then run:\n    \
             cargo run --release -p benches --bin check-bench\n  (or point at another build with --policyc PATH)",
            policyc.display()
        ));
    }

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

    // Warm-up: fills the page cache, and checks every subject works before timing anything.
    read_all(&tree.path).map_err(|e| e.to_string())?;
    let parsed = parse_all(&tree.path).map_err(|e| e.to_string())?;
    let mut last = check_policyc(&policyc, &tree.path)?;

    let mut s = Samples::default();
    let order = [Subject::Read, Subject::Parse, Subject::Policyc];
    for round in 0..args.rounds {
        for k in 0..order.len() {
            match order[(round + k) % order.len()] {
                Subject::Read => {
                    let t = Instant::now();
                    read_all(&tree.path).map_err(|e| e.to_string())?;
                    s.read.push(t.elapsed().as_secs_f64());
                }
                Subject::Parse => {
                    let t = Instant::now();
                    parse_all(&tree.path).map_err(|e| e.to_string())?;
                    s.parse.push(t.elapsed().as_secs_f64());
                }
                Subject::Policyc => {
                    last = check_policyc(&policyc, &tree.path)?;
                    s.policyc.push(last.wall.as_secs_f64());
                    s.rss.push(last.max_rss_bytes);
                }
            }
        }
    }
    print_table(&stats, parsed.events, &s);
    print_findings(&last);
    Ok(())
}

fn check_policyc(policyc: &Path, dir: &Path) -> Result<ChildRun, String> {
    let run = run_child(
        Command::new(policyc)
            .arg("check")
            .arg(dir)
            .args(["--format", "json"]),
    )
    .map_err(|e| e.to_string())?;
    match run.status.code() {
        Some(0 | 1) => Ok(run),
        code => {
            let stderr = String::from_utf8_lossy(&run.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let how = code.map_or_else(
                || format!("was killed ({})", run.status),
                |c| format!("exited with {c}"),
            );
            Err(format!(
                "`{} check {} --format json` {how}; expected 0 (clean) or 1 (findings)\n{}",
                policyc.display(),
                dir.display(),
                tail.join("\n")
            ))
        }
    }
}

fn print_header(args: &Args, st: &Stats, gen_secs: f64, dir: &Path) {
    println!(
        "policyc check benchmark: seed {}, {} measured rounds after 1 warm-up",
        args.seed, args.rounds
    );
    println!("tree: {st}");
    println!("generated in {gen_secs:.2} s into {}", dir.display());
    println!();
}

fn print_table(st: &Stats, events: u64, s: &Samples) {
    let objects = st.objects() as f64;
    let mb = st.bytes as f64 / 1e6;
    println!(
        "{:<38} {:>10} {:>17} {:>10} {:>8} {:>20} {:>20}",
        "",
        "median ms",
        "min-max ms",
        "objects/s",
        "MB/s",
        "time / B (min-max)",
        "time / A (min-max)"
    );
    let rows: [(&str, &[f64]); 3] = [
        ("A  read every file (I/O floor)", &s.read),
        ("B  saphyr-parser events (parse floor)", &s.parse),
        ("C  policyc check --format json", &s.policyc),
    ];
    for (name, t) in rows {
        let m = median(t);
        let (lo, hi) = (min(t), max(t));
        println!(
            "{:<38} {:>10.1} {:>17} {:>10} {:>8.1} {:>20} {:>20}",
            name,
            m * 1e3,
            format!("{:.1}-{:.1}", lo * 1e3, hi * 1e3),
            rate(objects / m),
            mb / m,
            ratio_cell(&paired(t, &s.parse)),
            ratio_cell(&paired(t, &s.read)),
        );
    }
    println!("(B pulled {events} parser events per pass; A and B are single-threaded and include the directory walk)");
    let rss: Vec<f64> = s.rss.iter().map(|&b| b as f64 / 1e6).collect();
    let peak = rss.iter().copied().fold(0.0, f64::max);
    println!(
        "policyc peak RSS: {:.1} MB (max over runs; median {:.1} MB) = {:.1} x the tree's bytes",
        peak,
        median(&rss),
        if mb > 0.0 { peak / mb } else { 0.0 }
    );
}

fn count(
    summary: Option<&serde_json::Value>,
    key: &str,
    diagnostics: Option<&Vec<serde_json::Value>>,
) -> Option<u64> {
    if let Some(n) = summary.and_then(|s| s.get(key)).and_then(|v| v.as_u64()) {
        return Some(n);
    }
    // Older or different output: count the diagnostics of that severity instead.
    let severity = key.trim_end_matches('s');
    diagnostics.map(|d| {
        d.iter()
            .filter(|x| x.get("severity").and_then(|s| s.as_str()) == Some(severity))
            .count() as u64
    })
}

fn print_findings(run: &ChildRun) {
    let code = run.status.code().unwrap_or(-1);
    let json: Option<serde_json::Value> = serde_json::from_slice(&run.stdout).ok();
    let Some(json) = json else {
        let head: String = String::from_utf8_lossy(&run.stdout)
            .chars()
            .take(200)
            .collect();
        loud(&[
            format!("policyc exited with {code} but its stdout is not JSON: errors and"),
            "warnings are unknown, so the run may not have checked anything.".into(),
            format!("stdout began with: {head:?}"),
        ]);
        return;
    };
    let summary = json.get("summary");
    let diagnostics = json.get("diagnostics").and_then(|d| d.as_array());
    let errors = count(summary, "errors", diagnostics);
    let warnings = count(summary, "warnings", diagnostics);
    let show = |n: Option<u64>| n.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    println!(
        "policyc exit code {code}; summary: {} errors, {} warnings",
        show(errors),
        show(warnings)
    );
    if errors != Some(0) {
        let mut lines = vec![
            format!(
                "the generated tree is meant to be valid, but policyc reported {} errors.",
                show(errors)
            ),
            "either gen-tree or the validator is wrong; the timings above include".into(),
            "error reporting. Reproduce with `gen-tree DIR` and `policyc check DIR`,".into(),
            "or rerun this benchmark with --keep.".into(),
        ];
        let is_error =
            |x: &&serde_json::Value| x.get("severity").and_then(|s| s.as_str()) == Some("error");
        for x in diagnostics.into_iter().flatten().filter(is_error).take(5) {
            lines.push(x.to_string());
        }
        loud(&lines);
    } else if code == 1 {
        println!("note: exit code 1 with no errors: policyc failed the run on warnings");
    }
}
