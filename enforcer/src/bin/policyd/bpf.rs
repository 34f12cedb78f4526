//! `policyd bpf ...`: the pinned maps as the kernel holds them (the live generation's
//! ipcache and policy, and conntrack), read without the agent.

use super::table::Table;
use super::EXIT_ERROR;
use clap::Subcommand;
use compiler::bundle::proto;
use enforcer::api::{self, EndpointInfo, Request};
use enforcer::datapath::{self, addr_from_bytes, EpKey};
use enforcer::Datapath;
use serde::Serialize;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum BpfCommand {
    /// The policy map.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The ipcache: prefix -> identity.
    Ipcache {
        #[command(subcommand)]
        command: ListCommand,
    },
    /// The connection tracking table.
    Ct {
        #[command(subcommand)]
        command: ListCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The policy entries of one endpoint in the live generation.
    Get {
        /// The endpoint: one of its addresses, or `namespace/pod` (asks the agent).
        endpoint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Lists every entry.
    List,
}

pub fn run(command: &BpfCommand, bpffs_root: &Path, socket: &Path, json: bool) -> u8 {
    let dp = match Datapath::open_pinned(bpffs_root) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("policyd: error: {e}");
            return EXIT_ERROR;
        }
    };
    let result = match command {
        BpfCommand::Policy {
            command: PolicyCommand::Get { endpoint },
        } => policy_get(&dp, endpoint, socket, json),
        BpfCommand::Ipcache { .. } => ipcache_list(&dp, json),
        BpfCommand::Ct { .. } => ct_list(&dp, json),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("policyd: error: {e}");
            EXIT_ERROR
        }
    }
}

fn json_lines<T: Serialize>(rows: &[T]) -> Result<String, String> {
    serde_json::to_string_pretty(rows)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

fn identity_name(id: u32) -> String {
    match compiler::identity::Identity(id).reserved_name() {
        Some(n) => format!("{id} ({n})"),
        None if id == datapath::ID_ANY => "any".into(),
        None if (datapath::ID_FIRST_NAMESPACE..datapath::ID_CLUSTER_CLASS).contains(&id) => {
            format!("{id} (namespace #{})", id - datapath::ID_FIRST_NAMESPACE)
        }
        None if id == datapath::ID_CLUSTER_CLASS => format!("{id} (cluster)"),
        None if id == datapath::ID_WORLD_CLASS => format!("{id} (world class)"),
        None => id.to_string(),
    }
}

#[derive(Serialize)]
struct PolicyRow {
    direction: &'static str,
    peer_identity: u32,
    protocol: String,
    port: String,
    verdict: &'static str,
    l7_set: Option<u16>,
    rule_id: Option<u32>,
}

fn policy_get(dp: &Datapath, endpoint: &str, socket: &Path, json: bool) -> Result<String, String> {
    let ips: Vec<IpAddr> = match endpoint.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let (ns, pod) = endpoint
                .split_once('/')
                .ok_or_else(|| format!("`{endpoint}` is neither an address nor `namespace/pod`"))?;
            let body = api::call(socket, &Request::EndpointList).map_err(|e| e.to_string())?;
            let eps: Vec<EndpointInfo> = serde_json::from_value(body).map_err(|e| e.to_string())?;
            eps.into_iter()
                .find(|e| e.namespace == ns && e.pod_name == pod)
                .map(|e| e.ips)
                .ok_or_else(|| format!("the agent has no endpoint {endpoint}"))?
        }
    };
    let tables = dp.live_tables().map_err(|e| e.to_string())?;
    let (_, ep) = ips
        .iter()
        .find_map(|ip| {
            let key = EpKey::new(*ip);
            tables.endpoints.iter().find(|(k, _)| *k == key)
        })
        .ok_or_else(|| format!("no endpoint with address {endpoint} in the live generation"))?;
    let policy_id = ep.policy_id;
    let mut rows = Vec::new();
    for (k, v) in &tables.policy {
        if u32::from_be(k.policy_id) != policy_id {
            continue;
        }
        let port_bits = k.prefixlen.saturating_sub(datapath::POL_FIXED_BITS + 8);
        let port = u16::from_be(k.port);
        rows.push(PolicyRow {
            direction: if k.direction == datapath::DIR_INGRESS {
                "ingress"
            } else {
                "egress"
            },
            peer_identity: u32::from_be(k.peer_identity),
            protocol: if k.prefixlen <= datapath::POL_FIXED_BITS {
                "any".into()
            } else {
                proto::name(k.protocol).to_owned()
            },
            port: match port_bits {
                0 => "any".into(),
                16 => port.to_string(),
                bits => format!("{port}/{bits}"),
            },
            verdict: match v.verdict {
                datapath::VERDICT_DENY => "deny",
                datapath::VERDICT_ALLOW => "allow",
                datapath::VERDICT_REDIRECT => "redirect",
                _ => "?",
            },
            l7_set: (v.verdict == datapath::VERDICT_REDIRECT).then_some(v.l7_set),
            rule_id: (v.rule_id != datapath::NONE_U32).then_some(v.rule_id),
        });
    }
    if json {
        return json_lines(&rows);
    }
    let mut out = format!(
        "endpoint {endpoint}: identity {}, policy {policy_id}, ingress {}, egress {}\n",
        ep.identity,
        if ep.flags & datapath::EP_F_INGRESS_ENFORCED != 0 {
            "enforced"
        } else {
            "open"
        },
        if ep.flags & datapath::EP_F_EGRESS_ENFORCED != 0 {
            "enforced"
        } else {
            "open"
        },
    );
    let mut t = Table::new(&["DIRECTION", "PEER", "PROTOCOL", "PORT", "VERDICT", "RULE"]);
    for r in &rows {
        t.row(vec![
            r.direction.into(),
            identity_name(r.peer_identity),
            r.protocol.clone(),
            r.port.clone(),
            match r.l7_set {
                Some(s) => format!("redirect (L7 set {s})"),
                None => r.verdict.into(),
            },
            r.rule_id.map(|i| format!("#{i}")).unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    Ok(out)
}

#[derive(Serialize)]
struct IpcacheRow {
    prefix: String,
    identity: u32,
    namespace: Option<u32>,
}

fn ipcache_list(dp: &Datapath, json: bool) -> Result<String, String> {
    let tables = dp.live_tables().map_err(|e| e.to_string())?;
    let rows: Vec<IpcacheRow> = tables
        .ipcache
        .iter()
        .map(|(k, v)| {
            let bits = k.prefixlen.saturating_sub(datapath::IPC_FIXED_BITS);
            let addr = addr_from_bytes(k.family, k.addr)
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into());
            IpcacheRow {
                prefix: format!("{addr}/{bits}"),
                identity: v.identity,
                namespace: (v.namespace != datapath::NONE_U32).then_some(v.namespace),
            }
        })
        .collect();
    if json {
        return json_lines(&rows);
    }
    let mut t = Table::new(&["PREFIX", "IDENTITY", "NAMESPACE"]);
    for r in &rows {
        t.row(vec![
            r.prefix.clone(),
            identity_name(r.identity),
            r.namespace.map(|n| format!("#{n}")).unwrap_or_default(),
        ]);
    }
    Ok(t.render())
}

#[derive(Serialize)]
struct CtRow {
    endpoint: String,
    peer: String,
    protocol: String,
    /// `out` when the endpoint opened the connection, `in` when the peer did.
    origin: &'static str,
    expires_in_s: i64,
    generation: u32,
    seen_reply: bool,
    closing: bool,
    rule_id: Option<u32>,
}

fn ct_list(dp: &Datapath, json: bool) -> Result<String, String> {
    let now = enforcer::monotonic_ns();
    let mut rows: Vec<CtRow> = dp
        .conntrack()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|(k, v)| {
            let addr = |b| {
                addr_from_bytes(k.family, b)
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "?".into())
            };
            let with_port = |a: String, p: u16| {
                if k.protocol == proto::TCP || k.protocol == proto::UDP || k.protocol == proto::SCTP
                {
                    format!("{a}:{p}")
                } else {
                    a
                }
            };
            CtRow {
                // Conntrack keys hold ports in host order (the programs convert once).
                endpoint: with_port(addr(k.ep_addr), k.ep_port),
                peer: with_port(addr(k.peer_addr), k.peer_port),
                protocol: proto::name(k.protocol).to_owned(),
                origin: if v.origin == datapath::DIR_EGRESS {
                    "out"
                } else {
                    "in"
                },
                expires_in_s: ((v.expires_ns as i128 - now as i128) / 1_000_000_000) as i64,
                generation: v.generation,
                seen_reply: v.flags & datapath::CT_F_SEEN_REPLY != 0,
                closing: v.flags
                    & (datapath::CT_F_FIN_ORIG | datapath::CT_F_FIN_REPLY | datapath::CT_F_RST)
                    != 0,
                rule_id: (v.rule_id != datapath::NONE_U32).then_some(v.rule_id),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.endpoint, &a.peer).cmp(&(&b.endpoint, &b.peer)));
    if json {
        return json_lines(&rows);
    }
    let mut t = Table::new(&[
        "ENDPOINT",
        "PEER",
        "PROTOCOL",
        "ORIGIN",
        "EXPIRES",
        "GENERATION",
        "STATE",
    ]);
    for r in &rows {
        t.row(vec![
            r.endpoint.clone(),
            r.peer.clone(),
            r.protocol.clone(),
            r.origin.into(),
            format!("{}s", r.expires_in_s),
            r.generation.to_string(),
            match (r.seen_reply, r.closing) {
                (_, true) => "closing",
                (true, false) => "established",
                (false, false) => "new",
            }
            .into(),
        ]);
    }
    Ok(t.render())
}
