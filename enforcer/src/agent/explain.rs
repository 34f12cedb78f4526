//! `policyd explain`: turns a datapath event into the rules and files that decided it, by
//! judging the same flow against the tree in force with the compiler's reference evaluator.

use super::events::EventRecord;
use super::state::Live;
use compiler::flow::{Flow, Peer, Verdict};
use compiler::reference::{self, RuleRef, SideResult};
use policy_lang::model::{Direction, Protocol};
use serde::{Deserialize, Serialize};

/// One side's judgement, named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideExplanation {
    /// `egress of shop/web` or `ingress of shop/db`.
    pub side: String,
    pub verdict: String,
    pub reason: String,
    /// The rules that matched (deny rules when the side denied, allow rules otherwise), as
    /// `file:line (Kind ns/name rule #i)`.
    pub rules: Vec<String>,
    /// The policies that select the endpoint in this direction.
    pub selecting_policies: Vec<String>,
}

/// The answer of `policyd explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub event: EventRecord,
    /// The verdict of the tree in force on the event's flow.
    pub verdict: String,
    pub sides: Vec<SideExplanation>,
    /// Whether the datapath's verdict is the tree's (it differs when the event is older than
    /// the generation in force, or when a conntrack entry decided).
    pub agrees: bool,
    pub generation: u32,
}

fn protocol(number: &str) -> Option<Protocol> {
    Some(match number {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        "ICMP" => Protocol::Icmp,
        "ICMPv6" => Protocol::IcmpV6,
        _ => return None,
    })
}

/// Explains `event` against the generation in force.
pub fn explain(live: &Live, event: &EventRecord) -> Result<Explanation, String> {
    let inventory = &live.compiled.inventory;
    let peer = |ip: Option<std::net::IpAddr>| -> Result<Peer, String> {
        let ip = ip.ok_or("the event has no address")?;
        Peer::parse(&ip.to_string(), inventory)
    };
    let flow = Flow {
        from: peer(event.source.ip)?,
        to: peer(event.destination.ip)?,
        protocol: protocol(&event.protocol)
            .ok_or_else(|| format!("no policy judges protocol {}", event.protocol))?,
        port: event.destination.port,
        http: None,
        dns: None,
    };
    let answer = reference::evaluate(
        &live.tree,
        inventory,
        &flow,
        live.compiled.bundle.options.allow_host_ingress,
    );
    let rule = |r: &RuleRef| -> String {
        let kind = r.policy_kind.as_str();
        live.compiled
            .bundle
            .rules
            .iter()
            .find(|o| {
                o.kind == kind
                    && o.name == r.name
                    && o.rule_index == r.rule_index
                    && (o.namespace == r.namespace || o.namespace.is_empty())
            })
            .map(|o| {
                format!(
                    "{}:{} ({} rule #{})",
                    o.file,
                    o.line,
                    o.policy(),
                    o.rule_index
                )
            })
            .unwrap_or_else(|| format!("{kind} {}/{} rule #{}", r.namespace, r.name, r.rule_index))
    };
    let side = |s: &SideResult| -> SideExplanation {
        let who = inventory
            .workloads
            .get(s.endpoint)
            .map(|w| w.full_name())
            .unwrap_or_default();
        let dir = match s.direction {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        };
        let rules = if s.verdict == Verdict::Denied {
            &s.matched_denies
        } else {
            &s.matched_allows
        };
        SideExplanation {
            side: format!("{dir} of {who}"),
            verdict: verdict_word(s.verdict).into(),
            reason: s.reason.as_str().into(),
            rules: rules.iter().map(rule).collect(),
            selecting_policies: s
                .selecting_policies
                .iter()
                .map(|p| policy_location(live, p))
                .collect(),
        }
    };
    let sides: Vec<SideExplanation> = answer
        .egress
        .iter()
        .chain(answer.ingress.iter())
        .map(side)
        .collect();
    let datapath_denied = event.dropped();
    Ok(Explanation {
        event: event.clone(),
        verdict: verdict_word(answer.verdict).into(),
        agrees: datapath_denied == (answer.verdict == Verdict::Denied),
        sides,
        generation: live.generation,
    })
}

/// `Kind ns/name at file:line` for a policy named `Kind ns/name` (or `Kind name`).
fn policy_location(live: &Live, policy: &str) -> String {
    let found = live.tree.policies.iter().find(|p| {
        let name = if p.kind() == policy_lang::model::PolicyKind::CiliumClusterwideNetworkPolicy {
            format!("{} {}", p.kind().as_str(), p.meta().name.value)
        } else {
            format!(
                "{} {}/{}",
                p.kind().as_str(),
                p.meta().namespace.value,
                p.meta().name.value
            )
        };
        name == policy
    });
    let located = found.and_then(|p| {
        let (file, start, _) = live.source.sources.locate(p.meta().span)?;
        Some(format!(
            "{policy} at {}:{}",
            file.path.display(),
            start.line
        ))
    });
    located.unwrap_or_else(|| policy.to_owned())
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    }
}

impl Explanation {
    /// The human rendering.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.event.line());
        out.push_str(&format!(
            "the tree in force (generation {}) {} this flow",
            self.generation,
            if self.verdict == "denied" {
                "denies"
            } else {
                "allows"
            }
        ));
        if !self.agrees {
            out.push_str(
                " (the datapath decided otherwise: the event is older than this generation)",
            );
        }
        out.push('\n');
        for s in &self.sides {
            out.push_str(&format!("  {}: {} — {}\n", s.side, s.verdict, s.reason));
            for r in &s.rules {
                out.push_str(&format!("      rule {r}\n"));
            }
            if s.rules.is_empty() && !s.selecting_policies.is_empty() {
                out.push_str(&format!(
                    "      selected by {}\n",
                    s.selecting_policies.join(", ")
                ));
            }
        }
        out
    }
}
