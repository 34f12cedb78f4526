//! Part 2, the swap itself: `enforcer::Datapath::write_tables` and
//! `release_old_generation` timed directly on a datapath loaded into a private bpffs, for
//! generations of N policy entries; and the phase breakdown that `PLC_SWAP_TRACE=1` prints,
//! taken from a child process (this binary again) so that the trace can be read.

use super::stats::Summary;
use super::tables::{tables, Ifindexes};
use super::{datapath_error, interrupted};
use crate::netns::Bpffs;
use enforcer::{Datapath, LoadOptions};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one size measured.
pub struct SwapRow {
    pub entries: usize,
    pub write_ms: Summary,
    pub release_ms: Summary,
    /// Building the tables in user space (not part of the swap; shown for scale).
    pub build_ms: f64,
}

/// Loads a datapath into its own bpffs. Field order: the datapath drops (closing its maps)
/// before the bpffs is unmounted.
pub struct Loaded {
    pub dp: Datapath,
    pub fs: Bpffs,
}

impl Loaded {
    pub fn new(tag: &str) -> Result<Loaded, String> {
        let fs = Bpffs::mount(tag)?;
        let mut opts = LoadOptions::new(fs.path().join("plc"));
        opts.ct_max_entries = Some(16_384);
        opts.frag_max_entries = Some(1024);
        let dp = Datapath::load(&opts).map_err(datapath_error)?;
        Ok(Loaded { dp, fs })
    }
}

/// Times `rounds` swaps at each size, alternating two generations that differ in one entry
/// (what a one-policy revision changes), each write followed by a timed release of the
/// previous generation, as the agent's housekeeping does off the swap's path.
pub fn measure(sizes: &[usize], rounds: usize) -> Result<Vec<SwapRow>, String> {
    let mut loaded = Loaded::new("swap")?;
    let mut rows = Vec::new();
    for &n in sizes {
        interrupted()?;
        let t = Instant::now();
        let gens = [
            tables(n, 1, Ifindexes::default())?,
            tables(n, 2, Ifindexes::default())?,
        ];
        let build_ms = ms(t);
        // One warm-up write, not counted: the first generation has nothing to replace.
        loaded.dp.write_tables(&gens[1]).map_err(datapath_error)?;
        loaded.dp.release_old_generation().map_err(datapath_error)?;
        let mut write = Vec::new();
        let mut release = Vec::new();
        for i in 0..rounds {
            interrupted()?;
            let t = Instant::now();
            loaded
                .dp
                .write_tables(&gens[i % 2])
                .map_err(datapath_error)?;
            write.push(ms(t));
            let t = Instant::now();
            loaded.dp.release_old_generation().map_err(datapath_error)?;
            release.push(ms(t));
        }
        eprintln!(
            "  {n} entries: write_tables median {:.1} ms, release {:.1} ms",
            Summary::of(&write).median,
            Summary::of(&release).median
        );
        rows.push(SwapRow {
            entries: n,
            write_ms: Summary::of(&write),
            release_ms: Summary::of(&release),
            build_ms,
        });
    }
    let _ = loaded.dp.unpin();
    Ok(rows)
}

/// The phases of a swap, in ms, as `PLC_SWAP_TRACE` marks them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    pub fill: f64,
    pub set_slots: f64,
    pub flip: f64,
    pub quiesce: f64,
}

impl Phases {
    pub fn total(&self) -> f64 {
        self.fill + self.set_slots + self.flip + self.quiesce
    }
}

/// The argument that makes this binary the trace child.
pub const TRACE_CHILD_ARG: &str = "--trace-child-entries";

/// In the child: `writes` swaps of `entries` entries with the trace on (set by the parent),
/// releasing after each. The trace goes to stderr.
pub fn trace_child(entries: usize, writes: usize) -> Result<(), String> {
    let mut loaded = Loaded::new("trace")?;
    let gens = [
        tables(entries, 1, Ifindexes::default())?,
        tables(entries, 2, Ifindexes::default())?,
    ];
    for i in 0..writes.max(1) {
        loaded
            .dp
            .write_tables(&gens[i % 2])
            .map_err(datapath_error)?;
        loaded.dp.release_old_generation().map_err(datapath_error)?;
        eprintln!("swap: done");
    }
    let _ = loaded.dp.unpin();
    Ok(())
}

/// Runs the trace child for `entries` and returns the phases of each swap but the first
/// (which has no previous generation), in order.
pub fn phases(entries: usize, writes: usize) -> Result<Vec<Phases>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    let out = Command::new(exe)
        .arg(TRACE_CHILD_ARG)
        .arg(entries.to_string())
        .arg("--trace-child-writes")
        .arg((writes + 1).to_string())
        .env("PLC_SWAP_TRACE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the trace child: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "the trace child failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    let mut all = parse_trace(&stderr);
    if all.len() < 2 {
        return Err(format!(
            "the trace child printed no phases (is PLC_SWAP_TRACE still read by write_tables?): {}",
            stderr.trim()
        ));
    }
    all.remove(0);
    Ok(all)
}

/// Reads `swap: WHAT at X ms` lines, one swap ending at each `swap: done`.
pub fn parse_trace(text: &str) -> Vec<Phases> {
    let mut out = Vec::new();
    let mut marks: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("swap: ") else {
            continue;
        };
        if rest == "done" {
            let at = |what: &str| {
                marks
                    .iter()
                    .find(|(w, _)| w == what)
                    .map(|(_, t)| *t)
                    .unwrap_or(f64::NAN)
            };
            let (filled, set, flipped, quiesced) = (
                at("inner maps filled"),
                at("slots set"),
                at("flipped"),
                at("quiesced"),
            );
            out.push(Phases {
                fill: filled,
                set_slots: set - filled,
                flip: flipped - set,
                quiesce: quiesced - flipped,
            });
            marks.clear();
            continue;
        }
        if let Some((what, t)) = rest.rsplit_once(" at ") {
            if let Some(v) = t.strip_suffix(" ms").and_then(|v| v.parse::<f64>().ok()) {
                marks.push((what.to_owned(), v));
            }
        }
    }
    out
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_splits_into_phases() {
        let text = "swap: inner maps filled at 60.00 ms\nswap: slots set at 70.50 ms\nswap: flipped at 70.60 ms\nswap: quiesced at 80.60 ms\nswap: done\nnoise\nswap: inner maps filled at 1.00 ms\nswap: done\n";
        let p = parse_trace(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].fill, 60.0);
        assert!((p[0].set_slots - 10.5).abs() < 1e-9);
        assert!((p[0].flip - 0.1).abs() < 1e-9);
        assert!((p[0].quiesce - 10.0).abs() < 1e-9);
        assert!((p[0].total() - 80.6).abs() < 1e-9);
        assert!(p[1].set_slots.is_nan());
    }
}
