//! Datapath events as `policyd observe` shows them: time, both ends by name and identity,
//! verdict, reason and the rule that decided, kept in a bounded log and fanned out to
//! followers.

use crate::datapath::{self, reason, Event};
use compiler::bundle::proto;
use compiler::lower::Compiled;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

/// How many events the agent keeps for `observe` and `explain`.
pub const KEPT_EVENTS: usize = 8192;

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEnd {
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub identity: u32,
    /// `namespace/workload` of a pod address, or the identity's reserved name (`world`).
    pub name: String,
}

/// One event, resolved against the generation in force when it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// RFC 3339, UTC.
    pub time: String,
    pub generation: u32,
    /// `forwarded`, `dropped` or `redirected`.
    pub verdict: String,
    pub reason: String,
    /// `ingress` (judged at the receiving endpoint) or `egress` (at the sender).
    pub direction: String,
    pub protocol: String,
    pub source: FlowEnd,
    pub destination: FlowEnd,
    /// `file:line (Kind ns/name rule #i)` of the rule the datapath matched, when one did.
    pub rule: Option<String>,
    /// The bundle's rule index (`plc_pol_val.rule_id`), when one matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<u32>,
}

impl EventRecord {
    pub fn dropped(&self) -> bool {
        self.verdict == "dropped"
    }

    /// One line, as `hubble observe` prints flows.
    pub fn line(&self) -> String {
        let end = |e: &FlowEnd| {
            let ip = e.ip.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
            let port = if e.port != 0 && (self.protocol == "TCP" || self.protocol == "UDP") {
                format!(":{}", e.port)
            } else {
                String::new()
            };
            format!("{ip}{port} ({} id:{})", e.name, e.identity)
        };
        let mut s = format!(
            "{}  {} -> {}  {}  {} ({}, {})",
            self.time,
            end(&self.source),
            end(&self.destination),
            self.protocol,
            self.verdict.to_uppercase(),
            self.reason,
            self.direction
        );
        if let Some(rule) = &self.rule {
            s.push_str("  rule ");
            s.push_str(rule);
        }
        s
    }
}

/// The names the events of one generation resolve to.
pub struct Names<'a> {
    /// `None` before the first generation.
    pub compiled: Option<&'a Compiled>,
}

impl Names<'_> {
    fn end(&self, ip: Option<IpAddr>, port: u16, identity: u32) -> FlowEnd {
        let name = ip
            .and_then(|ip| self.compiled?.inventory.by_ip(ip))
            .map(|w| w.full_name())
            .or_else(|| {
                compiler::identity::Identity(identity)
                    .reserved_name()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                if identity >= datapath::ID_FIRST_LOCAL {
                    "cidr".into()
                } else {
                    "unknown".into()
                }
            });
        FlowEnd {
            ip,
            port,
            identity,
            name,
        }
    }

    pub fn record(&self, e: &Event, wall: SystemTime) -> EventRecord {
        let rule_id = (e.rule_id != datapath::NONE_U32).then_some(e.rule_id);
        let rule = rule_id
            .and_then(|i| self.compiled?.bundle.rules.get(i as usize))
            .map(|o| {
                format!(
                    "{}:{} ({} rule #{})",
                    o.file,
                    o.line,
                    o.policy(),
                    o.rule_index
                )
            });
        EventRecord {
            time: humantime::format_rfc3339_millis(wall).to_string(),
            generation: e.generation,
            verdict: match e.verdict {
                datapath::EV_DROP => "dropped",
                datapath::EV_REDIRECT => "redirected",
                _ => "forwarded",
            }
            .into(),
            reason: reason::name(e.reason).into(),
            direction: match e.direction {
                datapath::DIR_INGRESS => "ingress",
                datapath::DIR_EGRESS => "egress",
                _ => "-",
            }
            .into(),
            protocol: match e.protocol {
                proto::ANY => "-".into(),
                p => proto::name(p).to_owned(),
            },
            source: self.end(e.source(), e.sport, e.src_identity),
            destination: self.end(e.destination(), e.dport, e.dst_identity),
            rule,
            rule_id,
        }
    }
}

/// The wall-clock time of a `bpf_ktime_get_ns` timestamp.
pub fn wall_time(timestamp_ns: u64) -> SystemTime {
    let now_mono = crate::sys::monotonic_ns();
    let now = SystemTime::now();
    now.checked_sub(Duration::from_nanos(now_mono.saturating_sub(timestamp_ns)))
        .unwrap_or(now)
}

/// The last [`KEPT_EVENTS`] events, and who follows new ones.
#[derive(Default)]
pub struct EventLog {
    kept: VecDeque<EventRecord>,
    followers: Vec<(bool, Sender<EventRecord>)>,
    pub seen: u64,
}

impl EventLog {
    pub fn push(&mut self, record: EventRecord) {
        self.seen += 1;
        self.followers.retain(|(dropped_only, tx)| {
            (*dropped_only && !record.dropped()) || tx.send(record.clone()).is_ok()
        });
        if self.kept.len() == KEPT_EVENTS {
            self.kept.pop_front();
        }
        self.kept.push_back(record);
    }

    /// The last `n` kept events (all when `None`), oldest first.
    pub fn last(&self, n: Option<usize>, dropped_only: bool) -> Vec<EventRecord> {
        let matching: Vec<&EventRecord> = self
            .kept
            .iter()
            .filter(|r| !dropped_only || r.dropped())
            .collect();
        let skip = n.map_or(0, |n| matching.len().saturating_sub(n));
        matching.into_iter().skip(skip).cloned().collect()
    }

    pub fn follow(&mut self, dropped_only: bool, tx: Sender<EventRecord>) {
        self.followers.push((dropped_only, tx));
    }
}
