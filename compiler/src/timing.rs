//! Phase timings on stderr when `POLICYC_TIMINGS` is set: where a compile spends its time,
//! without a profiler. Each lap gives wall time and the CPU time of the whole process (all
//! threads, user and system), which stays meaningful on a busy machine.

use std::cell::Cell;
use std::time::Instant;

pub struct Phase {
    on: bool,
    last: Cell<(Instant, f64)>,
}

impl Phase {
    pub fn start() -> Phase {
        let on = std::env::var_os("POLICYC_TIMINGS").is_some();
        Phase {
            on,
            last: Cell::new((Instant::now(), if on { cpu_seconds() } else { 0.0 })),
        }
    }

    /// Prints the time since the last lap (or the start) under `label`.
    pub fn lap(&self, label: &str) {
        if self.on {
            let (now, cpu) = (Instant::now(), cpu_seconds());
            let (then, cpu_then) = self.last.get();
            eprintln!(
                "timing: {label:<24} {:>8.1} ms wall {:>8.0} ms cpu",
                (now - then).as_secs_f64() * 1e3,
                (cpu - cpu_then) * 1e3
            );
            self.last.set((now, cpu));
        }
    }
}

/// User and system time of this process so far, from `/proc/self/stat` (clock ticks of 10 ms
/// on Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
