//! The paired load generator: one thread alternating short turns between the twin (no
//! program) and the variant, counting what each side's receiver got over the time spent in
//! that side's own turns, so that both sides of a ratio see the same machine.

use super::topo::{drain, send, tcp_once, Sockets};
use crate::netns::Netns;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// 64-byte UDP datagrams client -> server; counted when the server's socket reads them.
    Udp,
    /// New TCP connections client -> server; counted when the server accepts them.
    Tcp,
}

/// One side of the pair.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub client: &'a Netns,
    pub socks: &'a Sockets,
}

/// What one side achieved in its own turns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Datagrams received, or connections accepted.
    pub count: u64,
    /// Connections that did not complete (UDP: always 0; loss only lowers `count`).
    pub failures: u64,
    pub nanos: u64,
    pub turns: u64,
}

impl Tally {
    fn add(&mut self, count: u64, failures: u64, took: Duration) {
        self.count += count;
        self.failures += failures;
        self.nanos += took.as_nanos() as u64;
        self.turns += 1;
    }

    /// Per second of this side's own turns.
    pub fn rate(&self) -> f64 {
        if self.nanos == 0 {
            0.0
        } else {
            self.count as f64 * 1e9 / self.nanos as f64
        }
    }
}

/// A paired measurement.
#[derive(Clone, Debug, Default)]
pub struct Paired {
    pub twin: Tally,
    pub variant: Tally,
    /// Variant rate / twin rate in consecutive windows of about [`Plan::window`] each.
    pub windows: Vec<f64>,
}

impl Paired {
    /// Variant rate over twin rate, over the whole measurement.
    pub fn ratio(&self) -> f64 {
        let t = self.twin.rate();
        if t > 0.0 {
            self.variant.rate() / t
        } else {
            f64::NAN
        }
    }

    /// The 10th and 90th percentiles of the window ratios.
    pub fn spread(&self) -> (f64, f64) {
        let mut w: Vec<f64> = self
            .windows
            .iter()
            .copied()
            .filter(|r| r.is_finite())
            .collect();
        if w.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        w.sort_by(f64::total_cmp);
        let at = |q: f64| w[((w.len() - 1) as f64 * q).round() as usize];
        (at(0.1), at(0.9))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub load: Load,
    /// Measured wall time (both sides together), after a warm-up of a tenth of it.
    pub duration: Duration,
    /// One side's turn.
    pub turn: Duration,
    /// Wall time of a window of [`Paired::windows`] (it closes after the turn pair that
    /// crosses it).
    pub window: Duration,
}

/// More failed connections than this in one measurement abort it: the path drops the probe.
const MAX_FAILURES: u64 = 20;
/// Datagrams sent between two reads of the receiver.
const BURST: usize = 8;

/// Runs `plan` on a thread of its own (TCP turns move it between the client namespaces),
/// calling `tick` on the caller's thread about every 10 ms while it runs (the caller drains
/// the datapath's events there, as policyd would); `tick` returning false, or `stop`, ends
/// the measurement early.
pub fn run(
    plan: &Plan,
    twin: Side<'_>,
    variant: Side<'_>,
    stop: &AtomicBool,
    mut tick: impl FnMut() -> bool,
) -> Result<Paired, String> {
    std::thread::scope(|s| {
        let h = s.spawn(|| generate(plan, [twin, variant], stop));
        while !h.is_finished() {
            if !tick() {
                stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        h.join()
            .map_err(|_| "the load generator panicked".to_owned())?
    })
}

fn generate(plan: &Plan, sides: [Side<'_>; 2], stop: &AtomicBool) -> Result<Paired, String> {
    let warmup = Plan {
        duration: plan.duration / 10,
        ..*plan
    };
    pairs(&warmup, sides, stop)?;
    pairs(plan, sides, stop)
}

fn pairs(plan: &Plan, sides: [Side<'_>; 2], stop: &AtomicBool) -> Result<Paired, String> {
    let mut buf = [0u8; 2048];
    let mut out = Paired::default();
    let mut window = [Tally::default(); 2];
    let start = Instant::now();
    let mut window_start = start;
    // Bounded in count too: a turn lasts at least `turn`, so this is never the limit.
    let max_pairs = (plan.duration.as_nanos() / plan.turn.as_nanos().max(1)) as u64 + 1;
    for pair in 0..max_pairs {
        if start.elapsed() >= plan.duration || stop.load(Ordering::Relaxed) {
            break;
        }
        // ABBA: neither side always follows the other.
        let order = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = sides[i];
            let (count, failures, took) = match plan.load {
                Load::Udp => udp_turn(side.socks, plan.turn, &mut buf)?,
                Load::Tcp => {
                    side.client.enter()?;
                    tcp_turn(side.socks, plan.turn)?
                }
            };
            window[i].add(count, failures, took);
            let total = if i == 0 {
                &mut out.twin
            } else {
                &mut out.variant
            };
            total.add(count, failures, took);
            if total.failures > MAX_FAILURES {
                let which = if i == 0 { "twin" } else { "variant" };
                return Err(format!(
                    "{} TCP connections failed on the {which}: the path drops the probed flow",
                    total.failures
                ));
            }
        }
        if window_start.elapsed() >= plan.window {
            window_start = Instant::now();
            let t = window[0].rate();
            out.windows.push(if t > 0.0 {
                window[1].rate() / t
            } else {
                f64::NAN
            });
            window = [Tally::default(); 2];
        }
    }
    Ok(out)
}

/// Sends bursts and reads the receiver until the turn is over: (received, 0, time taken).
fn udp_turn(s: &Sockets, turn: Duration, buf: &mut [u8]) -> Result<(u64, u64, Duration), String> {
    let t0 = Instant::now();
    let mut got = 0;
    for _ in 0..1_000_000 {
        for _ in 0..BURST {
            send(&s.udp_tx)?;
        }
        got += drain(&s.udp_rx, buf)?;
        if t0.elapsed() >= turn {
            break;
        }
    }
    Ok((got, 0, t0.elapsed()))
}

/// New connections until the turn is over: (accepted, failed, time taken). The calling
/// thread is inside the client namespace.
fn tcp_turn(s: &Sockets, turn: Duration) -> Result<(u64, u64, Duration), String> {
    let t0 = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..100_000 {
        if tcp_once(&s.tcp_listener)? {
            ok += 1;
        } else {
            failed += 1;
            if failed > MAX_FAILURES {
                break;
            }
        }
        if t0.elapsed() >= turn {
            break;
        }
    }
    Ok((ok, failed, t0.elapsed()))
}
