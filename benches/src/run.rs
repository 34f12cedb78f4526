//! Plumbing shared by the bench binaries: the temporary tree, paired ratios and their cells,
//! rates, and warnings that cannot be missed.

use crate::measure::median;
use std::path::PathBuf;

/// A generated tree under the system temp dir; removed on drop (normal end, error or panic)
/// unless kept.
pub struct TempTree {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempTree {
    /// A fresh path `policyc-bench-PID-…` under the temp dir (nothing is created yet).
    pub fn new(keep: bool) -> TempTree {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        TempTree {
            path: std::env::temp_dir()
                .join(format!("policyc-bench-{}-{nanos:x}", std::process::id())),
            keep,
        }
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept the tree at {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("warning: cannot remove `{}`: {e}", self.path.display());
            }
        }
    }
}

#[allow(unsafe_code)] // installing a signal handler has no safe std API; see SAFETY
pub mod signals {
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The last termination signal received; 0 for none.
    pub static RECEIVED: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(sig: libc::c_int) {
        // Async-signal-safe: one atomic store, nothing else.
        RECEIVED.store(sig, Ordering::Relaxed);
    }

    /// Routes SIGINT, SIGTERM and SIGHUP to [`RECEIVED`] instead of killing the process.
    pub fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `on_signal` has the C signature `signal` expects and only stores to an
            // atomic, which is async-signal-safe; it is replaced for the rest of the process.
            unsafe {
                libc::signal(
                    sig,
                    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
    }
}

impl TempTree {
    /// On SIGINT, SIGTERM or SIGHUP, removes the tree (unless kept) and exits with 128 +
    /// the signal, from a watcher thread: the main thread may be deep in a minutes-long
    /// compile, and a process killed by a signal runs no destructors.
    pub fn remove_on_signal(&self) {
        signals::install();
        let (path, keep) = (self.path.clone(), self.keep);
        std::thread::spawn(move || loop {
            let sig = signals::RECEIVED.load(std::sync::atomic::Ordering::Relaxed);
            if sig != 0 {
                if keep {
                    eprintln!("kept the tree at {}", path.display());
                } else {
                    let _ = std::fs::remove_dir_all(&path);
                }
                eprintln!("stopped by signal {sig}");
                std::process::exit(128 + sig);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
    }
}

/// `policyc` next to the running binary (both come from one `cargo build`).
pub fn default_policyc() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    let dir = exe.parent().ok_or("this binary has no parent directory")?;
    Ok(dir.join("policyc"))
}

/// Per-round ratios a/b, so that both sides of each ratio share the machine's state of the moment.
pub fn paired(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| if *y > 0.0 { x / y } else { f64::NAN })
        .collect()
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// `median (min-max)` of ratios, two decimals.
pub fn ratio_cell(r: &[f64]) -> String {
    format!("{:.2} ({:.2}-{:.2})", median(r), min(r), max(r))
}

/// A count per second with a k/M suffix.
pub fn rate(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

const BANNER: &str =
    "################################################################################";

/// Prints a block that cannot be missed in a scrolling terminal or a CI log.
pub fn loud(lines: &[String]) {
    println!();
    println!("{BANNER}");
    for line in lines {
        println!("WARNING: {line}");
    }
    println!("{BANNER}");
}

/// Whether this process runs as root (effective uid 0), as the datapath benches need.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The running kernel's release, for the benches' headers.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_by_round() {
        let r = paired(&[2.0, 3.0, 1.0], &[1.0, 1.5, 0.0]);
        assert_eq!(&r[..2], &[2.0, 2.0]);
        assert!(r[2].is_nan());
        assert_eq!(ratio_cell(&[1.0, 2.0, 3.0]), "2.00 (1.00-3.00)");
        assert_eq!(rate(1500.0), "1.5 k");
    }

    #[test]
    fn temp_tree_is_removed_on_drop() {
        let t = TempTree::new(false);
        std::fs::create_dir_all(t.path.join("a")).expect("temp dir is writable");
        let path = t.path.clone();
        drop(t);
        assert!(!path.exists());
    }
}
