//! Part 3, drops during back-to-back swaps: pod A -> node namespace -> pod B (Calico-like
//! /32 routing over veths), the datapath attached to both host-side veths, a paced UDP flood
//! A -> B that both of two equivalent generations allow, once while the bench swaps between
//! them back to back and once without swaps (this VM's loss baseline), alternating.

use super::direct::Loaded;
use super::tables::{tables, Ifindexes, CLIENT_IP, SERVER_IP, UDP_PORT};
use super::{datapath_error, interrupted};
use crate::netns::{in_netns, wire_pod, Netns};
use enforcer::datapath::{reason, STAT_EVENTS_LOST};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CLIENT_IF: &str = "sba";
const SERVER_IF: &str = "sbb";
/// A port of B that no entry allows: the check that the datapath enforces at all.
const DENIED_PORT: u16 = UDP_PORT + 1;
/// No flood runs longer than this, whatever the swaps take.
const MAX_FLOOD: Duration = Duration::from_secs(120);
/// The receiver's socket buffer, so that a receiver starved of CPU for a while (two cores,
/// and the swap's own threads) does not lose datagrams to a full queue.
const RCVBUF_BYTES: i32 = 16 << 20;
/// Quiet time before and after the swaps, inside the flood.
const MARGIN: Duration = Duration::from_millis(300);

/// The flood part's settings.
#[derive(Clone, Copy, Debug)]
pub struct FloodPlan {
    pub swaps: usize,
    pub entries: usize,
    pub pps: u64,
    pub rounds: usize,
}

/// One flood.
#[derive(Clone, Debug, Default)]
pub struct FloodRun {
    pub swaps: usize,
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    /// Sequence numbers never received, and the longest run of consecutive ones.
    pub lost: u64,
    pub longest_gap: u64,
    /// Lost datagrams sent while a `write_tables` or `release_old_generation` call ran.
    pub lost_in_swaps: u64,
    pub duration: Duration,
    /// Datapath counters over the flood: drops by reason name, and policy-allow passes
    /// (each swap makes the flow's next packet be judged again on both sides).
    pub drops: BTreeMap<String, u64>,
    pub policy_allows: u64,
    pub ct_established: u64,
    /// Pod B's UDP `RcvbufErrors` and `InErrors` over the flood (`/proc/net/snmp`).
    pub rcvbuf_errors: u64,
    pub in_errors: u64,
    /// The write_tables times of the swaps, ms.
    pub write_ms: Vec<f64>,
    pub release_ms: Vec<f64>,
}

/// The three namespaces. Field order is drop order: the node goes first, taking the
/// host-side veths with it.
struct World {
    node: Netns,
    client: Netns,
    server: Netns,
}

impl World {
    fn create() -> Result<World, String> {
        let w = World {
            node: Netns::create("fn")?,
            client: Netns::create("fa")?,
            server: Netns::create("fb")?,
        };
        wire_pod(&w.node, &w.client, CLIENT_IF, CLIENT_IP)?;
        wire_pod(&w.node, &w.server, SERVER_IF, SERVER_IP)?;
        w.node.sysctl(&["net.ipv4.ip_forward=1"])?;
        Ok(w)
    }
}

struct Sockets {
    tx: UdpSocket,
    tx_denied: UdpSocket,
    rx: UdpSocket,
    rx_denied: UdpSocket,
}

fn sockets(w: &World) -> Result<Sockets, String> {
    let (rx, rx_denied) = in_netns(&w.server, || {
        let bind = |port| {
            let s = UdpSocket::bind(SocketAddrV4::new(SERVER_IP, port))
                .map_err(|e| format!("bind UDP {SERVER_IP}:{port}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(s)
        };
        let rx = bind(UDP_PORT)?;
        set_rcvbuf(&rx, RCVBUF_BYTES)?;
        Ok((rx, bind(DENIED_PORT)?))
    })?;
    let (tx, tx_denied) = in_netns(&w.client, || {
        let connect = |port| {
            let s = UdpSocket::bind(SocketAddrV4::new(CLIENT_IP, 0))
                .map_err(|e| format!("bind UDP {CLIENT_IP}: {e}"))?;
            s.connect(SocketAddrV4::new(SERVER_IP, port))
                .map_err(|e| format!("connect UDP to {SERVER_IP}:{port}: {e}"))?;
            Ok::<_, String>(s)
        };
        Ok((connect(UDP_PORT)?, connect(DENIED_PORT)?))
    })?;
    Ok(Sockets {
        tx,
        tx_denied,
        rx,
        rx_denied,
    })
}

#[allow(unsafe_code)] // SO_RCVBUFFORCE has no std API
fn set_rcvbuf(s: &UdpSocket, bytes: i32) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor owned by `s`, and a pointer to an i32 that lives
    // across the call, with its exact size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!(
            "SO_RCVBUFFORCE: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Pod B's UDP counters (`RcvbufErrors`, `InErrors`), read by a thread inside its namespace.
fn udp_errors(server: &Netns) -> Result<(u64, u64), String> {
    let text = in_netns(server, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp").map_err(|e| e.to_string())
    })?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return Err("no Udp lines in /proc/net/snmp".into());
    };
    let get = |name: &str| {
        names
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((get("RcvbufErrors"), get("InErrors")))
}

/// Sends `count` datagrams to `tx`'s peer and returns how many arrived on `rx` within a
/// short wait.
fn probe(tx: &UdpSocket, rx: &UdpSocket, count: usize) -> usize {
    for i in 0..count {
        let _ = tx.send(&[i as u8; 64]);
    }
    let mut buf = [0u8; 128];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_millis(500);
    while got < count && Instant::now() < deadline {
        match rx.recv(&mut buf) {
            Ok(_) => got += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    got
}

/// Runs part 3: `rounds` times a flood without swaps and one with `swaps` swaps (in
/// alternating order), on a fresh world.
pub fn measure(plan: &FloodPlan) -> Result<(Vec<FloodRun>, Vec<FloodRun>), String> {
    let world = World::create()?;
    let at = Ifindexes {
        client: world.node.ifindex(CLIENT_IF)?,
        server: world.node.ifindex(SERVER_IF)?,
    };
    let gens = [tables(plan.entries, 1, at)?, tables(plan.entries, 2, at)?];
    let mut loaded = Loaded::new("flood")?;
    // Attached from inside the node namespace, where the interfaces are; the links belong
    // to the datapath object and go with it.
    {
        let dp = &mut loaded.dp;
        in_netns(&world.node, move || {
            dp.attach_endpoint(CLIENT_IF).map_err(datapath_error)?;
            dp.attach_endpoint(SERVER_IF).map_err(datapath_error)
        })?;
    }
    loaded.dp.write_tables(&gens[0]).map_err(datapath_error)?;
    let socks = sockets(&world)?;
    // Wake ARP and the routes, then check that the flow passes and enforcement is on.
    let _ = probe(&socks.tx, &socks.rx, 3);
    std::thread::sleep(Duration::from_millis(100));
    let passed = probe(&socks.tx, &socks.rx, 20);
    let denied = probe(&socks.tx_denied, &socks.rx_denied, 20);
    if passed < 20 {
        return Err(format!(
            "the flood's flow does not pass the datapath ({passed} of 20 probes arrived)"
        ));
    }
    if denied > 0 {
        return Err(format!(
            "{denied} of 20 datagrams to a port no entry allows arrived: the datapath does not enforce"
        ));
    }

    let mut baselines = Vec::new();
    let mut swapped = Vec::new();
    let mut next_gen = 1usize;
    for round in 0..plan.rounds {
        let swaps_first = round % 2 == 1;
        let mut swap_duration = None;
        for swapping in [swaps_first, !swaps_first] {
            interrupted()?;
            let run = if swapping {
                eprintln!(
                    "  round {}: flood with {} swaps of {} entries ...",
                    round + 1,
                    plan.swaps,
                    plan.entries
                );
                let r = flood(&world, &mut loaded, &socks, plan, |dp, start| {
                    swaps(dp, &gens, &mut next_gen, plan.swaps, start)
                })?;
                swap_duration = Some(r.duration);
                r
            } else {
                // As long as a swap flood lasts (the first round's estimate: swaps at the
                // measured speed of a single swap).
                let d = match swap_duration {
                    Some(d) => d,
                    None => estimate(&mut loaded, &gens, &mut next_gen, plan.swaps)?,
                };
                eprintln!(
                    "  round {}: flood without swaps for {:.1} s ...",
                    round + 1,
                    d.as_secs_f64()
                );
                flood(&world, &mut loaded, &socks, plan, |_, _| {
                    let end = Instant::now() + d.saturating_sub(2 * MARGIN);
                    while Instant::now() < end {
                        interrupted()?;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(Swaps::default())
                })?
            };
            eprintln!(
                "    sent {}, received {}, lost {}, datapath drops {}",
                run.sent,
                run.received,
                run.lost,
                run.drops.values().sum::<u64>()
            );
            if swapping {
                swapped.push(run);
            } else {
                baselines.push(run);
            }
        }
    }
    drop(socks);
    let _ = loaded.dp.unpin();
    drop(loaded);
    drop(world);
    Ok((baselines, swapped))
}

/// The duration a swap flood will take: a few swaps timed, times the count, plus margins.
fn estimate(
    loaded: &mut Loaded,
    gens: &[enforcer::Tables; 2],
    next: &mut usize,
    swaps: usize,
) -> Result<Duration, String> {
    let t = Instant::now();
    let k = 3;
    self::swaps(&mut loaded.dp, gens, next, k, t)?;
    let per = t.elapsed() / k as u32;
    Ok(per * swaps as u32 + 2 * MARGIN)
}

/// What the swaps of one flood did.
#[derive(Default)]
struct Swaps {
    write_ms: Vec<f64>,
    release_ms: Vec<f64>,
    /// From `flood_start`: when each write began and its release ended.
    windows: Vec<(Duration, Duration)>,
}

/// `count` swaps back to back, alternating the two generations, each write followed by the
/// release of the previous generation (bounded by half of [`MAX_FLOOD`]).
fn swaps(
    dp: &mut enforcer::Datapath,
    gens: &[enforcer::Tables; 2],
    next: &mut usize,
    count: usize,
    flood_start: Instant,
) -> Result<Swaps, String> {
    let mut out = Swaps::default();
    let deadline = Instant::now() + MAX_FLOOD / 2;
    for _ in 0..count {
        interrupted()?;
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        dp.write_tables(&gens[*next % 2]).map_err(datapath_error)?;
        *next += 1;
        out.write_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let r = Instant::now();
        dp.release_old_generation().map_err(datapath_error)?;
        out.release_ms.push(r.elapsed().as_secs_f64() * 1000.0);
        out.windows.push((
            t.duration_since(flood_start),
            Instant::now().duration_since(flood_start),
        ));
    }
    Ok(out)
}

/// One flood: a paced sender in A, a receiver in B, and `during` on this thread (the swaps,
/// or a wait), between two quiet margins.
fn flood(
    world: &World,
    loaded: &mut Loaded,
    socks: &Sockets,
    plan: &FloodPlan,
    during: impl FnOnce(&mut enforcer::Datapath, Instant) -> Result<Swaps, String>,
) -> Result<FloodRun, String> {
    let max_count = plan.pps.saturating_mul(MAX_FLOOD.as_secs()) as usize;
    let stats_before = loaded.dp.stats().map_err(datapath_error)?;
    let (rcvbuf_before, inerr_before) = udp_errors(&world.server)?;
    // Drain what an earlier flood left (its sender has stopped: a socket buffer's worth).
    let mut buf = [0u8; 128];
    for _ in 0..1_000_000 {
        if socks.rx.recv(&mut buf).is_err() {
            break;
        }
    }

    let stop = AtomicBool::new(false);
    let sender_done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let send_errors = AtomicU64::new(0);
    let start = Instant::now();
    // Send time of each sequence number, in microseconds from `start`.
    let sent_at: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    let (received, seen, result) = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut times = Vec::with_capacity(max_count.min(1 << 24));
            let mut payload = [0x5au8; 64];
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) && (n as usize) < max_count {
                let elapsed = start.elapsed();
                if elapsed > MAX_FLOOD {
                    break;
                }
                let due = (elapsed.as_secs_f64() * plan.pps as f64) as u64;
                while n < due && (n as usize) < max_count {
                    payload[..8].copy_from_slice(&n.to_le_bytes());
                    match socks.tx.send(&payload) {
                        Ok(_) => {
                            times.push(start.elapsed().as_micros() as u32);
                            n += 1;
                        }
                        Err(_) => {
                            send_errors.fetch_add(1, Ordering::Relaxed);
                            // Not sent: try the same number again at the next tick.
                            break;
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            sent.store(n, Ordering::Relaxed);
            if let Ok(mut v) = sent_at.lock() {
                *v = times;
            }
            sender_done.store(true, Ordering::Relaxed);
        });
        let receiver = s.spawn(|| {
            let mut seen = vec![false; max_count];
            let mut count: u64 = 0;
            let mut buf = [0u8; 128];
            let mut idle_since: Option<Instant> = None;
            let hard_stop = start + MAX_FLOOD + Duration::from_secs(5);
            while Instant::now() < hard_stop {
                match socks.rx.recv(&mut buf) {
                    Ok(n) if n >= 8 => {
                        idle_since = None;
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&buf[..8]);
                        let seq = u64::from_le_bytes(b) as usize;
                        if let Some(slot) = seen.get_mut(seq) {
                            if !*slot {
                                *slot = true;
                                count += 1;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        if sender_done.load(Ordering::Relaxed) {
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(300) {
                                break;
                            }
                        }
                    }
                }
            }
            (count, seen)
        });
        // The swaps (or the wait), between quiet margins.
        std::thread::sleep(MARGIN);
        let result = during(&mut loaded.dp, start);
        std::thread::sleep(MARGIN);
        stop.store(true, Ordering::Relaxed);
        let _ = sender.join();
        let (count, seen) = receiver.join().unwrap_or((0, Vec::new()));
        (count, seen, result)
    });
    let Swaps {
        write_ms,
        release_ms,
        windows,
    } = result?;
    let duration = start.elapsed();
    let sent = sent.load(Ordering::Relaxed);
    let times = sent_at.into_inner().unwrap_or_default();
    let mut lost = 0;
    let mut longest = 0;
    let mut run = 0;
    let mut lost_in_swaps = 0;
    for seq in 0..sent as usize {
        if seen.get(seq).copied().unwrap_or(false) {
            run = 0;
            continue;
        }
        lost += 1;
        run += 1;
        longest = longest.max(run);
        if let Some(us) = times.get(seq) {
            let t = Duration::from_micros(u64::from(*us));
            if windows.iter().any(|(a, b)| t >= *a && t <= *b) {
                lost_in_swaps += 1;
            }
        }
    }
    let stats_after = loaded.dp.stats().map_err(datapath_error)?;
    let (rcvbuf_after, inerr_after) = udp_errors(&world.server)?;
    let delta = |code: u16| {
        stats_after
            .get(&code)
            .copied()
            .unwrap_or(0)
            .saturating_sub(stats_before.get(&code).copied().unwrap_or(0))
    };
    let drops: BTreeMap<String, u64> = stats_after
        .keys()
        .filter(|c| **c >= 128 && u32::from(**c) != STAT_EVENTS_LOST)
        .map(|c| (reason::name(*c).to_owned(), delta(*c)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(FloodRun {
        swaps: write_ms.len(),
        sent,
        send_errors: send_errors.load(Ordering::Relaxed),
        received,
        lost,
        longest_gap: longest,
        lost_in_swaps,
        duration,
        drops,
        policy_allows: delta(reason::PASS_POLICY),
        ct_established: delta(reason::PASS_CT_ESTABLISHED),
        rcvbuf_errors: rcvbuf_after.saturating_sub(rcvbuf_before),
        in_errors: inerr_after.saturating_sub(inerr_before),
        write_ms,
        release_ms,
    })
}
