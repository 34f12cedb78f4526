//! `policyd run`: the node agent. It owns one [`state::Agent`] behind a lock, follows the
//! source (a thread that sends revisions, one that applies them, newest first), serves the
//! unix socket (one thread per connection) and the metrics, and runs a housekeeping thread
//! that reads datapath events, collects expired conntrack entries and forgets endpoints whose
//! interface vanished.

pub mod events;
pub mod explain;
pub mod metrics;
pub mod pods;
pub mod source;
pub mod state;
pub mod store;

use crate::api::{Request, Response};
use state::{Agent, AgentError, RunOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Shared = Arc<Mutex<Agent>>;

fn lock(agent: &Shared) -> MutexGuard<'_, Agent> {
    // A panic in one connection's handler must not stop the agent: the state it guards is
    // only ever replaced whole (a generation swap either happened or not).
    agent.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often events are read from the ring buffer.
const EVENT_POLL: Duration = Duration::from_millis(100);
/// How often conntrack and vanished endpoints are collected.
const COLLECT_EVERY: Duration = Duration::from_secs(10);

/// Starts the agent and serves until the process is killed. Killing it is safe at any
/// moment: maps and links are pinned, and the next start adopts them.
pub fn run(opts: RunOptions) -> Result<(), AgentError> {
    let socket = opts.socket.clone();
    let source_spec = opts.source.clone();
    let state_dir = opts.state_dir.clone();
    let metrics_address = opts.metrics_address;
    let agent = Agent::start(opts)?;
    let listener = bind(&socket)?;
    if let Some(address) = metrics_address {
        agent.metrics.serve(address).map_err(AgentError::Refused)?;
        eprintln!("policyd: metrics on http://{address}/metrics");
    }
    let shared: Shared = Arc::new(Mutex::new(agent));
    eprintln!("policyd: listening on {}", socket.display());

    // The source sends revisions; the applier takes the newest of those waiting.
    let (rev_tx, rev_rx) = mpsc::channel::<source::Revision>();
    let spawn_err = |e: std::io::Error| AgentError::Refused(format!("cannot start a thread: {e}"));
    match source_spec {
        source::Source::Dir(dir) => {
            std::thread::Builder::new()
                .name("source".into())
                .spawn(move || source::follow_dir(dir, rev_tx))
                .map_err(spawn_err)?;
        }
        source::Source::Git {
            repo,
            reference,
            path,
            interval,
        } => {
            let (_stop_tx, stop_rx) = mpsc::channel::<()>();
            let work = state_dir.join("git");
            std::thread::Builder::new()
                .name("source".into())
                .spawn(move || {
                    // Keeps the stop channel open for as long as the thread runs.
                    let _keep = _stop_tx;
                    source::follow_git(repo, reference, path, interval, work, rev_tx, stop_rx)
                })
                .map_err(spawn_err)?;
        }
    }
    let applier = shared.clone();
    std::thread::Builder::new()
        .name("applier".into())
        .spawn(move || {
            while let Ok(mut rev) = rev_rx.recv() {
                // A burst of revisions: only the newest matters, but the change was seen
                // when the first of them was.
                let first_seen = rev.seen;
                while let Ok(newer) = rev_rx.try_recv() {
                    rev = newer;
                }
                rev.seen = first_seen;
                lock(&applier).apply(rev);
            }
        })
        .map_err(spawn_err)?;

    let housekeeping = shared.clone();
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last_collect = Instant::now();
            loop {
                std::thread::sleep(EVENT_POLL);
                let mut a = lock(&housekeeping);
                a.poll_events();
                a.release_old_generation();
                if last_collect.elapsed() >= COLLECT_EVERY {
                    last_collect = Instant::now();
                    a.collect_conntrack();
                    a.collect_vanished();
                }
            }
        })
        .map_err(|e| AgentError::Refused(format!("cannot start a thread: {e}")))?;

    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let agent = shared.clone();
        let _ = std::thread::Builder::new()
            .name("connection".into())
            .spawn(move || serve(&agent, conn));
    }
    Ok(())
}

/// Binds the socket, replacing a stale one (left by a killed agent) but never stealing the
/// socket of a running one.
fn bind(path: &std::path::Path) -> Result<UnixListener, AgentError> {
    let err = |e: std::io::Error| AgentError::State {
        path: path.to_owned(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(AgentError::Refused(format!(
                "another policyd is already listening on {}",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    UnixListener::bind(path).map_err(err)
}

fn serve(agent: &Shared, conn: UnixStream) {
    let Ok(writer) = conn.try_clone() else { return };
    let mut writer = std::io::BufWriter::new(writer);
    let reader = BufReader::new(conn);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut writer, &Response::err(format!("bad request: {e}")));
                continue;
            }
        };
        if let Request::Observe {
            follow: true,
            dropped_only,
            last,
        } = request
        {
            follow(agent, &mut writer, dropped_only, last);
            return;
        }
        let response = handle(agent, request);
        if send(&mut writer, &response).is_err() {
            return;
        }
    }
}

fn send(w: &mut impl Write, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

fn follow(agent: &Shared, w: &mut impl Write, dropped_only: bool, last: Option<usize>) {
    let (tx, rx) = mpsc::channel();
    let backlog = {
        let mut a = lock(agent);
        a.events.follow(dropped_only, tx);
        a.events.last(Some(last.unwrap_or(0)), dropped_only)
    };
    for r in backlog {
        if send(w, &Response::ok(r)).is_err() {
            return;
        }
    }
    while let Ok(r) = rx.recv() {
        if send(w, &Response::ok(r)).is_err() {
            return;
        }
    }
}

fn handle(agent: &Shared, request: Request) -> Response {
    let mut a = lock(agent);
    match request {
        Request::EndpointAdd(r) => match a.add_endpoint(r) {
            Ok(info) => Response::ok(info),
            Err(e) => Response::err(e),
        },
        Request::EndpointDel {
            container_id,
            ifname,
        } => match a.remove_endpoint(&container_id, &ifname) {
            Ok(known) => Response::ok(serde_json::json!({ "removed": known })),
            Err(e) => Response::err(e),
        },
        Request::EndpointGet {
            container_id,
            ifname,
        } => match a.get_endpoint(&container_id, &ifname) {
            Some(info) => Response::ok(info),
            None => Response::err(format!("no endpoint {container_id}/{ifname} is registered")),
        },
        Request::EndpointList => Response::ok(a.endpoint_list()),
        Request::Status => match a.status() {
            Ok(s) => Response::ok(s),
            Err(e) => Response::err(e),
        },
        Request::Observe {
            dropped_only, last, ..
        } => {
            a.poll_events();
            Response::ok(a.events.last(last, dropped_only))
        }
        Request::Explain {
            from,
            to,
            port,
            protocol,
        } => {
            a.poll_events();
            let wanted = |e: &events::EventRecord| {
                e.dropped()
                    && from.is_none_or(|ip| e.source.ip == Some(ip))
                    && to.is_none_or(|ip| e.destination.ip == Some(ip))
                    && port.is_none_or(|p| e.destination.port == p)
                    && protocol
                        .as_deref()
                        .is_none_or(|p| p.eq_ignore_ascii_case(&e.protocol))
            };
            let Some(event) = a.events.last(None, true).into_iter().rev().find(wanted) else {
                return Response::err(
                    "no kept drop event matches (policyd keeps the last 8192 events; `policyd observe --verdict dropped` lists them)",
                );
            };
            let Some(live) = &a.live else {
                return Response::err("no tree is in force yet");
            };
            match explain::explain(live, &event) {
                Ok(x) => Response::ok(x),
                Err(e) => Response::err(e),
            }
        }
        Request::History { last } => {
            let skip = last.map_or(0, |n| a.history.len().saturating_sub(n));
            let entries: Vec<&state::HistoryEntry> = a.history.iter().skip(skip).collect();
            Response::ok(entries)
        }
        Request::Reload => {
            let taken = a.reload();
            match (&a.rejected, taken) {
                (_, true) => Response::ok(serde_json::json!({ "taken": true })),
                (Some(r), false) => Response::err(format!(
                    "the tree was refused; the generation in force stays:\n{}",
                    r.errors.join("\n")
                )),
                (None, false) => Response::err("the tree was refused"),
            }
        }
    }
}
