//! The commands that ask the running agent over its socket: status, endpoint list, observe,
//! explain.

use super::table::Table;
use super::EXIT_ERROR;
use enforcer::agent::events::EventRecord;
use enforcer::agent::explain::Explanation;
use enforcer::agent::state::{HistoryEntry, Status};
use enforcer::api::{self, Client, EndpointInfo, Request};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::path::Path;

/// Asks the agent and decodes the answer's body; prints the error and returns the exit
/// status when that fails.
fn ask<T: DeserializeOwned>(
    socket: &Path,
    request: &Request,
) -> Result<(T, serde_json::Value), u8> {
    let body = api::call(socket, request).map_err(|e| {
        eprintln!("policyd: error: {e}");
        EXIT_ERROR
    })?;
    let decoded = serde_json::from_value(body.clone()).map_err(|e| {
        eprintln!("policyd: error: the agent answered in an unexpected shape: {e}");
        EXIT_ERROR
    })?;
    Ok((decoded, body))
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

pub fn status(socket: &Path, json: bool) -> u8 {
    let (s, body): (Status, _) = match ask(socket, &Request::Status) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json {
        print_json(&body);
        return 0;
    }
    let mut out = String::new();
    out.push_str(&format!("policyd {} (kernel {})\n", s.version, s.kernel));
    out.push_str(&format!("started:     {}\n", s.started));
    out.push_str(&format!("source:      {}\n", s.source));
    out.push_str(&format!("bpffs root:  {}\n", s.bpffs_root));
    out.push_str(&format!("programs:    {}\n", s.programs.join(", ")));
    match &s.policy {
        Some(p) => out.push_str(&format!(
            "policy:      revision {}{}, generation {} since {} ({} policies, {} rules; compiled in {:.1} ms, swapped in {:.1} ms)\n",
            p.revision,
            p.commit.as_deref().map(|c| format!(" (commit {c})")).unwrap_or_default(),
            p.generation, p.swapped_at, p.policies, p.rules, p.compile_ms, p.swap_ms
        )),
        None => out.push_str(&format!(
            "policy:      none compiled yet (live generation {})\n",
            s.live_generation
        )),
    }
    out.push_str(&format!(
        "revisions:   {} applied, {} rejected, {} unchanged{}\n",
        s.revisions.applied,
        s.revisions.rejected,
        s.revisions.unchanged,
        s.revisions
            .last_change_to_enforced_ms
            .map(|m| format!("; last one enforced {m:.0} ms after the change"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "established: {}\n",
        if s.keep_established {
            "kept when a revision no longer allows them"
        } else {
            "judged again by each new revision"
        }
    ));
    if let Some(r) = &s.rejected {
        out.push_str(&format!(
            "rejected:    the revision read at {}{} has {} error(s); the one above stays in force\n",
            r.time,
            r.commit.as_deref().map(|c| format!(" (commit {c})")).unwrap_or_default(),
            r.errors.len()
        ));
        for e in &r.errors {
            out.push_str(&format!("             {e}\n"));
        }
    }
    out.push_str(&format!("endpoints:   {}\n", s.endpoints));
    out.push_str(&format!("identities:  {}\n", s.identities));
    out.push_str(&format!("events seen: {}\n", s.events_seen));
    out.push_str("maps:\n");
    let mut t = Table::new(&["  MAP", "ENTRIES", "CAPACITY"]);
    for m in &s.maps {
        t.row(vec![
            format!("  {}", m.name),
            m.entries.to_string(),
            m.capacity
                .map(|c| format!("{c} ({:.1}%)", 100.0 * m.entries as f64 / c.max(1) as f64))
                .unwrap_or_else(|| "sized per generation".into()),
        ]);
    }
    out.push_str(&t.render());
    if !s.packets.is_empty() {
        out.push_str("packets by reason:\n");
        let mut t = Table::new(&["  REASON", "PACKETS"]);
        for (reason, n) in &s.packets {
            t.row(vec![format!("  {reason}"), n.to_string()]);
        }
        out.push_str(&t.render());
    }
    print!("{out}");
    0
}

pub fn endpoint_list(socket: &Path, json: bool) -> u8 {
    let (eps, body): (Vec<EndpointInfo>, _) = match ask(socket, &Request::EndpointList) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json {
        print_json(&body);
        return 0;
    }
    let mut t = Table::new(&[
        "POD",
        "WORKLOAD",
        "IDENTITY",
        "ADDRESSES",
        "INTERFACE",
        "INGRESS",
        "EGRESS",
        "CONTAINER",
    ]);
    let enforced = |b: bool| if b { "enforced" } else { "open" }.to_owned();
    for e in &eps {
        t.row(vec![
            format!("{}/{}", e.namespace, e.pod_name),
            e.workload.clone().unwrap_or_else(|| "-".into()),
            e.identity.to_string(),
            e.ips
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            format!("{} ({})", e.host_ifname, e.host_ifindex),
            enforced(e.ingress_enforced),
            enforced(e.egress_enforced),
            e.container_id.chars().take(12).collect(),
        ]);
    }
    print!("{}", t.render());
    0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerdictFilter {
    Dropped,
    Forwarded,
    Redirected,
}

const OBSERVE_AFTER_HELP: &str = "\
Each line: time, source address:port (name, identity), destination, protocol, verdict (reason,
the side that judged), and the rule the datapath matched as file:line.

Examples:
  policyd observe --verdict dropped
  policyd observe --follow --json";

#[derive(Debug, clap::Args)]
#[command(after_help = OBSERVE_AFTER_HELP)]
pub struct ObserveArgs {
    /// Only events with this verdict.
    #[arg(long, value_enum)]
    verdict: Option<VerdictFilter>,
    /// Keep printing new events as they come.
    #[arg(short, long)]
    follow: bool,
    /// How many past events to print first (default: all kept, or none with --follow).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
}

pub fn observe(args: &ObserveArgs, socket: &Path, json: bool) -> u8 {
    let dropped_only = args.verdict == Some(VerdictFilter::Dropped);
    let keep = |r: &EventRecord| match args.verdict {
        None => true,
        Some(VerdictFilter::Dropped) => r.verdict == "dropped",
        Some(VerdictFilter::Forwarded) => r.verdict == "forwarded",
        Some(VerdictFilter::Redirected) => r.verdict == "redirected",
    };
    let print = |r: &EventRecord| {
        if keep(r) {
            if json {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            } else {
                println!("{}", r.line());
            }
        }
    };
    let request = Request::Observe {
        follow: args.follow,
        dropped_only,
        last: args.last,
    };
    if !args.follow {
        let (records, _): (Vec<EventRecord>, _) = match ask(socket, &request) {
            Ok(x) => x,
            Err(code) => return code,
        };
        records.iter().for_each(print);
        return 0;
    }
    let mut client = match Client::connect(socket, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("policyd: error: {e}");
            return EXIT_ERROR;
        }
    };
    let mut next = client.send(&request).map(Some);
    loop {
        match next {
            Ok(Some(r)) if r.ok => {
                if let Ok(record) = serde_json::from_value::<EventRecord>(r.body) {
                    print(&record);
                }
            }
            Ok(Some(r)) => {
                eprintln!("policyd: error: {}", r.error.unwrap_or_default());
                return EXIT_ERROR;
            }
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("policyd: error: {e}");
                return EXIT_ERROR;
            }
        }
        next = client.read_response();
    }
}

const EXPLAIN_AFTER_HELP: &str = "\
Takes the newest drop event the agent kept that matches the filters and judges its flow against
the tree in force: which side dropped it, and the deny rule (file:line) or the policies whose
default deny applied.

Examples:
  policyd explain
  policyd explain --from 10.1.0.5 --to 10.1.0.7 --port 5432 --protocol TCP";

#[derive(Debug, clap::Args)]
#[command(after_help = EXPLAIN_AFTER_HELP)]
pub struct ExplainArgs {
    /// Source address of the dropped packet.
    #[arg(long, value_name = "IP")]
    from: Option<IpAddr>,
    /// Destination address.
    #[arg(long, value_name = "IP")]
    to: Option<IpAddr>,
    /// Destination port (ICMP: the type).
    #[arg(long)]
    port: Option<u16>,
    /// TCP, UDP, SCTP, ICMP or ICMPv6.
    #[arg(long)]
    protocol: Option<String>,
}

pub fn explain(args: &ExplainArgs, socket: &Path, json: bool) -> u8 {
    let request = Request::Explain {
        from: args.from,
        to: args.to,
        port: args.port,
        protocol: args.protocol.clone(),
    };
    let (x, body): (Explanation, _) = match ask(socket, &request) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json {
        print_json(&body);
    } else {
        print!("{}", x.render());
    }
    0
}

pub fn history(last: Option<usize>, socket: &Path, json: bool) -> u8 {
    let (entries, body): (Vec<HistoryEntry>, _) = match ask(socket, &Request::History { last }) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json {
        print_json(&body);
        return 0;
    }
    let mut t = Table::new(&[
        "TIME",
        "REVISION",
        "COMMIT",
        "RESULT",
        "GENERATION",
        "+ENTRIES",
        "-ENTRIES",
        "COMPILE",
        "SWAP",
        "ENFORCED AFTER",
    ]);
    let mut notes = String::new();
    for e in &entries {
        t.row(vec![
            e.time.clone(),
            e.revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            e.commit
                .as_deref()
                .map(|c| c.chars().take(12).collect())
                .unwrap_or_else(|| "-".into()),
            e.result.clone(),
            e.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            e.entries_added.to_string(),
            e.entries_removed.to_string(),
            format!("{:.1} ms", e.compile_ms),
            format!("{:.1} ms", e.swap_ms),
            format!("{:.0} ms", e.change_to_enforced_ms),
        ]);
        if e.result == "rejected" {
            notes.push_str(&format!(
                "{} {}: {} error(s)\n",
                e.time,
                e.commit.as_deref().unwrap_or("(no commit)"),
                e.error_count
            ));
            for err in &e.errors {
                notes.push_str(&format!("  {err}\n"));
            }
        }
    }
    print!("{}", t.render());
    if !notes.is_empty() {
        print!("\nrejected revisions:\n{notes}");
    }
    0
}
