//! `policyc trace`: judges one flow and explains the verdict like a proof, rule by rule (from
//! the reference evaluator) and entry by entry (from the bundle evaluator, which mirrors the
//! datapath and decides the verdict printed).

use super::inspect::{entry_port, entry_verdict, pod_labels, IdentityNames};
use super::layout::columns;
use super::paint::Paint;
use super::tree::{self, origin_of, rule_line, rule_name};
use super::{emit, log, ColorChoice, EXIT_ERROR, EXIT_FAILED, EXIT_OK};
use clap::{Args, ValueEnum};
use compiler::bundle::{proto, Bundle, Dir, Entry, L7Set};
use compiler::flow::{Flow, HttpRequest, Peer, Verdict};
use compiler::identity::Identity;
use compiler::inventory::Inventory;
use compiler::ir::Origin;
use compiler::lookup::{Decision, Evaluator, L7Decision, SideDecision, SideReason};
use compiler::matrix::PortProto;
use compiler::reference::{self, Explanation, L7Outcome, L7Protocol, SideResult};
use policy_lang::model::Direction;
use policy_lang::{SourceMap, Span};
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
A PEER is a workload `namespace/name`, an IP address (a pod IP stands for its workload), an
entity (`world`, `host`, `remote-node`, `kube-apiserver`, `health`, `init`, `unmanaged`,
`ingress`) or `fqdn:NAME` (an address the DNS proxy answered for NAME).

The verdict printed is the one the datapath reaches: the bundle's lookups (ipcache, policy
entries by longest prefix, deny first, default deny where enforced, then the L7 proxy). The
rules that explain it come from the reference evaluator, which reads the policies directly.
Should the two ever disagree, an internal error is printed on stderr and the exit status is 2.

Examples:
  policyc trace examples/online-shop --from shop-frontend/storefront \\
      --to shop-backend/catalog --port 8080/TCP
  policyc trace testdata/trace/shop --from shop/web --to shop/api --port 8080 \\
      --http GET:/api/v1/items --header 'X-Request-Id: 42'
  policyc trace testdata/trace/shop --from shop/web --to fqdn:api.example.com --port 443
  policyc trace testdata/trace/shop --from shop/web --to kube-system/kube-dns \\
      --port 53/UDP --dns api.example.com

Exit status:
  0  the flow is allowed
  1  the flow is denied
  2  usage error (an unknown peer, a bad --port), a tree with errors (its findings are printed
     on stderr), or the two evaluators disagree (an internal error)";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct TraceArgs {
    /// Files and directories of the tree (walked as `policyc check` walks them).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// The source: `namespace/name`, an IP, an entity such as `world`, or `fqdn:NAME`.
    #[arg(long, value_name = "PEER")]
    pub from: String,

    /// The destination: `namespace/name`, an IP, an entity such as `world`, or `fqdn:NAME`.
    #[arg(long, value_name = "PEER")]
    pub to: String,

    /// Destination port and protocol: `80/TCP`, `53/UDP`, `8/ICMP` (the ICMP type); the
    /// protocol defaults to TCP.
    #[arg(long, value_name = "PORT[/PROTO]", value_parser = parse_port)]
    pub port: PortProto,

    /// An HTTP request the flow carries, checked against HTTP rules: `METHOD:PATH`.
    #[arg(long, value_name = "METHOD:PATH", value_parser = parse_http)]
    pub http: Option<(String, String)>,

    /// A header of the `--http` request, `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "http", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// The Host of the `--http` request.
    #[arg(long, value_name = "HOST", requires = "http")]
    pub host: Option<String>,

    /// A DNS query name the flow carries, checked against DNS rules (port 53).
    #[arg(long, value_name = "NAME")]
    pub dns: Option<String>,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Human)]
    pub format: Format,
}

/// The `--format` setting of `trace`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The explanation as numbered steps, then the verdict line.
    #[default]
    Human,
    /// One JSON object: `flow`, `verdict`, `reason`, `from`/`to` (peer, identities),
    /// `egress`/`ingress` (endpoint, enforced, verdict, reason, selecting_policies,
    /// matched_rules, entries), `l7`.
    Json,
}

fn parse_port(s: &str) -> Result<PortProto, String> {
    s.parse()
}

fn parse_http(s: &str) -> Result<(String, String), String> {
    let (method, path) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: write the request as METHOD:PATH, e.g. GET:/api/v1"))?;
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("`{s}`: the method must be letters, e.g. GET"));
    }
    if !path.starts_with('/') {
        return Err(format!("`{s}`: the path must start with `/`"));
    }
    Ok((method.to_owned(), path.to_owned()))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: write a header as `Name: value`"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("`{s}`: the header name must be one word"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Runs `policyc trace` and returns the exit status.
pub fn run(args: &TraceArgs, color: ColorChoice) -> u8 {
    let mut loaded = match tree::load(&args.paths, color, None) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // The proof quotes rules: bring back the text of files loading did not keep.
    let ids: Vec<_> = loaded.checked.sources.files().map(|(id, _)| id).collect();
    for id in ids {
        loaded.checked.sources.load_text(id);
    }
    let inventory = &loaded.compiled.inventory;
    let peer = |text: &str, flag: &str| {
        Peer::parse(text, inventory).map_err(|e| {
            log(format_args!("error: --{flag}: {e}"));
            EXIT_ERROR
        })
    };
    let (from, to) = match (peer(&args.from, "from"), peer(&args.to, "to")) {
        (Ok(f), Ok(t)) => (f, t),
        _ => return EXIT_ERROR,
    };
    let flow = Flow {
        from,
        to,
        protocol: args.port.protocol,
        port: args.port.port,
        http: args.http.as_ref().map(|(method, path)| HttpRequest {
            method: method.clone(),
            path: path.clone(),
            host: args.host.clone(),
            headers: args.headers.clone(),
        }),
        dns: args
            .dns
            .as_ref()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase()),
    };
    let bundle = &loaded.compiled.bundle;
    let evaluator = Evaluator::new(bundle);
    let decision = evaluator.evaluate(&flow);
    let explanation = reference::evaluate(
        &loaded.checked.tree,
        inventory,
        &flow,
        bundle.options.allow_host_ingress,
    );
    let cx = Cx {
        bundle,
        inventory,
        sources: &loaded.checked.sources,
        evaluator: &evaluator,
        names: IdentityNames::new(bundle),
        flow: &flow,
    };
    let trace = cx.trace(&decision, &explanation);
    let verdict = match trace.verdict {
        Verdict::Allowed => EXIT_OK,
        Verdict::Denied => EXIT_FAILED,
    };
    let paint = color.for_stdout();
    let mut status = emit(verdict, |out| match args.format {
        Format::Human => write_human(out, &trace, paint),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &trace.json())?;
            writeln!(out)
        }
    });
    if let Some(problem) = disagreement(&decision, &explanation) {
        log(format_args!(
            "INTERNAL ERROR: the bundle evaluator and the reference evaluator disagree on this \
             flow ({problem}); the verdict above is the bundle's (the datapath's), the rules \
             may not explain it. Please report this bug with the tree and the command line"
        ));
        status = EXIT_ERROR;
    }
    std::mem::forget(loaded);
    status
}

/// Where the bundle evaluator (the datapath) and the reference evaluator part ways, if they
/// do: the verdict, or the L4 verdict of a judged side.
pub fn disagreement(decision: &Decision, explanation: &Explanation) -> Option<String> {
    let word = |v: Verdict| match v {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    };
    if decision.verdict != explanation.verdict {
        return Some(format!(
            "bundle: {}, reference: {}",
            word(decision.verdict),
            word(explanation.verdict)
        ));
    }
    if decision.self_traffic {
        return None;
    }
    for (name, b, r) in [
        ("egress", &decision.egress, &explanation.egress),
        ("ingress", &decision.ingress, &explanation.ingress),
    ] {
        match (b, r) {
            (Some(b), Some(r)) if b.verdict() != r.verdict => {
                return Some(format!(
                    "{name}: bundle {}, reference {}",
                    word(b.verdict()),
                    word(r.verdict)
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Some(format!("{name} is judged by one evaluator only"));
            }
            _ => {}
        }
    }
    None
}

// ------------------------------------------------------------------------------------------------
// The trace, as data
// ------------------------------------------------------------------------------------------------

/// Everything printed, in both formats.
struct Trace {
    from: End,
    to: End,
    /// `80/TCP`.
    port: String,
    http: Option<HttpRequest>,
    dns: Option<String>,
    verdict: Verdict,
    /// Why, in one sentence (the verdict line).
    reason: String,
    self_traffic: bool,
    egress: Option<Side>,
    ingress: Option<Side>,
    /// Set when a side denies at L4: no proxy is reached.
    l4_denied: bool,
    l7: Vec<L7Step>,
}

/// One end of the flow.
struct End {
    peer: String,
    kind: &'static str,
    identities: Vec<(Identity, String)>,
    /// A workload's pod labels (`app=web, tier=frontend`).
    labels: Option<String>,
}

/// One judged side: the source's egress or the destination's ingress.
struct Side {
    direction: Dir,
    endpoint: String,
    enforced: bool,
    verdict: Verdict,
    reason: SideReason,
    reason_text: String,
    /// The reason in a few words, for the verdict line.
    summary: String,
    selecting_policies: Vec<String>,
    allows: Vec<Origin>,
    denies: Vec<Origin>,
    peer_identities: Vec<Identity>,
    /// The policy keys the datapath looked up, named.
    keys: Vec<String>,
    entries: Vec<EntryView>,
}

/// A policy entry the lookup hit, with its rules.
struct EntryView {
    direction: Dir,
    peer: Identity,
    peer_name: String,
    protocol: &'static str,
    port: String,
    verdict: String,
    rules: Vec<Origin>,
}

/// A rule location with the text there (`method: GET, path: /api/.*`).
struct Snippet {
    file: String,
    line: u32,
    column: u32,
    text: String,
}

/// One L7 check, on one side.
struct L7Step {
    direction: Direction,
    endpoint: String,
    protocol: &'static str,
    /// `GET /admin` or the query name; `None` when the flow carries no request.
    request: Option<String>,
    /// `allowed`, `denied` or `not_checked`.
    outcome: &'static str,
    /// The HTTP rule or DNS matcher that allowed the request.
    matched: Option<Snippet>,
    /// The policy rule it belongs to (from the bundle's L7 set).
    rule: Option<Origin>,
    candidates: Vec<Snippet>,
}

struct Cx<'a> {
    bundle: &'a Bundle,
    inventory: &'a Inventory,
    sources: &'a SourceMap,
    evaluator: &'a Evaluator<'a>,
    names: IdentityNames,
    flow: &'a Flow,
}

impl Cx<'_> {
    fn trace(&self, decision: &Decision, explanation: &Explanation) -> Trace {
        let egress = decision
            .egress
            .as_ref()
            .map(|b| self.side(b, explanation.egress.as_ref()));
        let ingress = decision
            .ingress
            .as_ref()
            .map(|b| self.side(b, explanation.ingress.as_ref()));
        let l4_denied = egress
            .iter()
            .chain(ingress.iter())
            .any(|s| s.verdict == Verdict::Denied);
        let l7 = if l4_denied {
            Vec::new()
        } else {
            self.l7_steps(decision, explanation)
        };
        let mut trace = Trace {
            from: self.end(&self.flow.from),
            to: self.end(&self.flow.to),
            port: format!("{}/{}", self.flow.port, self.flow.protocol.as_str()),
            http: self.flow.http.clone(),
            dns: self.flow.dns.clone(),
            verdict: decision.verdict,
            reason: String::new(),
            self_traffic: decision.self_traffic,
            egress,
            ingress,
            l4_denied,
            l7,
        };
        trace.reason = verdict_reason(&trace);
        trace
    }

    fn end(&self, peer: &Peer) -> End {
        let kind = match peer {
            Peer::Workload(_) => "workload",
            Peer::Ip(_) => "ip",
            Peer::Entity(_) => "entity",
            Peer::Fqdn(_) => "fqdn",
        };
        let labels = match peer {
            Peer::Workload(i) => self
                .inventory
                .workloads
                .get(*i)
                .map(|w| pod_labels(&w.labels)),
            _ => None,
        };
        End {
            peer: peer.display(self.inventory),
            kind,
            identities: self
                .evaluator
                .peer_identities(peer)
                .into_iter()
                .map(|id| (id, self.names.name(id).to_owned()))
                .collect(),
            labels,
        }
    }

    fn rule(&self, index: u32) -> Option<Origin> {
        self.bundle.rules.get(index as usize).cloned()
    }

    fn side(&self, b: &SideDecision, r: Option<&SideResult>) -> Side {
        let endpoint = self
            .bundle
            .endpoints
            .get(b.endpoint)
            .map(|e| e.name.clone())
            .unwrap_or_default();
        let origins = |rules: Option<&Vec<reference::RuleRef>>| -> Vec<Origin> {
            rules
                .map(|v| {
                    v.iter()
                        .map(|rr| origin_of(rr, self.sources, &self.bundle.rules))
                        .collect()
                })
                .unwrap_or_default()
        };
        let allows = origins(r.map(|r| &r.matched_allows));
        let denies = origins(r.map(|r| &r.matched_denies));
        let selecting_policies = r.map(|r| r.selecting_policies.clone()).unwrap_or_default();
        let entries = b.matched.iter().map(|e| self.entry(e)).collect();
        let dir = b.direction.as_str();
        let names = |rules: &[Origin]| {
            let v: Vec<String> = rules.iter().map(rule_name).collect();
            v.join(", ")
        };
        let reason_text = match b.reason {
            SideReason::Denied => {
                let mut t = format!("denied by {} (deny wins", names(&denies));
                if !allows.is_empty() {
                    t.push_str(&format!(" over {}", names(&allows)));
                }
                t.push(')');
                t
            }
            SideReason::Allowed => format!("allowed by {}", names(&allows)),
            SideReason::Redirected => format!(
                "allowed at L4 by {}; the connection goes through the {} proxy",
                names(&allows),
                self.proxy_kind(b)
            ),
            SideReason::DefaultDeny => format!(
                "denied by default deny: {} select{} {endpoint} for {dir} and no rule allows the flow",
                selecting_policies.join(", "),
                if selecting_policies.len() == 1 { "s" } else { "" },
            ),
            SideReason::NotEnforced => {
                format!("allowed because no policy enforces {dir} on {endpoint} (no default deny)")
            }
            SideReason::HostAllowed => {
                "allowed because traffic from the host to its endpoints passes (allow_host_ingress)"
                    .to_owned()
            }
        };
        let summary = match b.reason {
            SideReason::Denied => format!("denied by {}", names(&denies)),
            SideReason::Allowed => format!("allowed by {}", names(&allows)),
            SideReason::Redirected => format!(
                "allowed by {} into the {} proxy",
                names(&allows),
                self.proxy_kind(b)
            ),
            SideReason::DefaultDeny => "denied by default deny".to_owned(),
            SideReason::NotEnforced => "allowed, not enforced".to_owned(),
            SideReason::HostAllowed => "allowed from the host (allow_host_ingress)".to_owned(),
        };
        Side {
            direction: b.direction,
            summary,
            endpoint,
            enforced: b.enforced,
            verdict: b.verdict(),
            reason: b.reason,
            reason_text,
            selecting_policies,
            allows,
            denies,
            peer_identities: b.peer_identities.clone(),
            keys: b.keys.iter().map(|k| self.names.label(*k)).collect(),
            entries,
        }
    }

    /// `HTTP`, `DNS`, or both, for a redirect's L7 sets.
    fn proxy_kind(&self, b: &SideDecision) -> &'static str {
        let (mut http, mut dns) = (false, false);
        for s in &b.l7 {
            match self.bundle.l7.get(*s as usize) {
                Some(L7Set::Http(_)) => http = true,
                Some(L7Set::Dns(_)) => dns = true,
                None => {}
            }
        }
        match (http, dns) {
            (true, true) => "HTTP and DNS",
            (false, true) => "DNS",
            _ => "HTTP",
        }
    }

    fn entry(&self, e: &Entry) -> EntryView {
        EntryView {
            direction: e.key.direction,
            peer: e.key.peer,
            peer_name: self.names.name(e.key.peer).to_owned(),
            protocol: proto::name(e.key.protocol),
            port: entry_port(e),
            verdict: entry_verdict(e),
            rules: e.rules.iter().filter_map(|r| self.rule(*r)).collect(),
        }
    }

    fn snippet(&self, span: Span) -> Snippet {
        match self.sources.locate(span) {
            Some((file, start, _)) => Snippet {
                file: file.path.display().to_string(),
                line: start.line,
                column: start.column,
                text: compact(file.slice(span)),
            },
            None => Snippet {
                file: self.sources.path(span.file).display().to_string(),
                line: 0,
                column: 0,
                text: String::new(),
            },
        }
    }

    /// The L7 checks of the reference evaluator, each paired with the bundle's decision on
    /// the same side (which names the policy rule).
    fn l7_steps(&self, decision: &Decision, explanation: &Explanation) -> Vec<L7Step> {
        let Some(result) = &explanation.l7 else {
            return Vec::new();
        };
        let bundle_checks = self.bundle_l7(decision);
        result
            .checks
            .iter()
            .map(|c| {
                let protocol = match c.protocol {
                    L7Protocol::Http => "HTTP",
                    L7Protocol::Dns => "DNS",
                };
                let request = match c.protocol {
                    L7Protocol::Http => self
                        .flow
                        .http
                        .as_ref()
                        .map(|h| format!("{} {}", h.method, h.path)),
                    L7Protocol::Dns => self.flow.dns.clone(),
                };
                let (outcome, matched) = match c.outcome {
                    L7Outcome::NotChecked => ("not_checked", None),
                    L7Outcome::Allowed { by } => ("allowed", Some(self.snippet(by))),
                    L7Outcome::Denied => ("denied", None),
                };
                let dir = Dir::from(c.direction);
                let rule = bundle_checks
                    .iter()
                    .find(|(d, l)| *d == dir && l.protocol == protocol)
                    .and_then(|(_, l)| l.matched_rule)
                    .and_then(|r| self.rule(r));
                let endpoint = match dir {
                    Dir::Egress => decision.egress.as_ref(),
                    Dir::Ingress => decision.ingress.as_ref(),
                }
                .and_then(|s| self.bundle.endpoints.get(s.endpoint))
                .map(|e| e.name.clone())
                .unwrap_or_default();
                L7Step {
                    direction: c.direction,
                    endpoint,
                    protocol,
                    request,
                    outcome,
                    matched,
                    rule,
                    candidates: c.candidates.iter().map(|s| self.snippet(*s)).collect(),
                }
            })
            .collect()
    }

    /// The bundle's L7 decisions with the side each was taken on: the evaluator checks the
    /// redirected sides in order (egress, then ingress) and returns one decision per side
    /// whose L7 sets and request meet (HTTP first).
    fn bundle_l7<'d>(&self, decision: &'d Decision) -> Vec<(Dir, &'d L7Decision)> {
        let mut sides = Vec::new();
        for side in decision.egress.iter().chain(decision.ingress.iter()) {
            if side.reason != SideReason::Redirected {
                continue;
            }
            let has = |want_http: bool| {
                side.l7.iter().any(|s| {
                    matches!(
                        (self.bundle.l7.get(*s as usize), want_http),
                        (Some(L7Set::Http(_)), true) | (Some(L7Set::Dns(_)), false)
                    )
                })
            };
            let checked =
                (self.flow.http.is_some() && has(true)) || (self.flow.dns.is_some() && has(false));
            if checked {
                sides.push(side.direction);
            }
        }
        sides.into_iter().zip(decision.l7.iter()).collect()
    }
}

/// A YAML snippet on one line: `method: GET, path: "/api/.*", headers: "X-A: 1"`.
fn compact(text: &str) -> String {
    let mut joined = String::new();
    let parts = text
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .filter(|l| !l.is_empty());
    for part in parts {
        if !joined.is_empty() {
            // A key that opens a block is followed by its items.
            joined.push_str(if joined.ends_with(':') { " " } else { ", " });
        }
        joined.push_str(part);
    }
    if joined.chars().count() > 100 {
        let cut: String = joined.chars().take(97).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

fn side_title(s: &Side) -> String {
    format!("{} of {}", s.direction.as_str(), s.endpoint)
}

/// The verdict line's reason.
fn verdict_reason(t: &Trace) -> String {
    if t.self_traffic {
        return "a workload reaching itself is always allowed".to_owned();
    }
    let sides: Vec<&Side> = t.egress.iter().chain(t.ingress.iter()).collect();
    if sides.is_empty() {
        return "neither end is a workload: no policy judges this flow".to_owned();
    }
    let denied: Vec<String> = sides
        .iter()
        .filter(|s| s.verdict == Verdict::Denied)
        .map(|s| format!("{} {}", side_title(s), s.summary))
        .collect();
    if !denied.is_empty() {
        return denied.join("; ");
    }
    if let Some(step) = t.l7.iter().find(|s| s.outcome == "denied") {
        let answer = if step.protocol == "HTTP" {
            "403 Forbidden"
        } else {
            "REFUSED"
        };
        return format!(
            "the {} proxy on {} of {} answers {answer} to {}: no {} rule matches",
            step.protocol,
            step.direction.as_str(),
            step.endpoint,
            step.request.as_deref().unwrap_or("the request"),
            step.protocol
        );
    }
    let mut parts: Vec<String> = sides
        .iter()
        .map(|s| format!("{} {}", side_title(s), s.summary))
        .collect();
    for step in t.l7.iter().filter(|s| s.outcome == "allowed") {
        let by = step
            .rule
            .as_ref()
            .map(|o| format!(" by {}", rule_name(o)))
            .unwrap_or_default();
        parts.push(format!(
            "{} {} allowed{by}",
            step.protocol,
            step.request.as_deref().unwrap_or_default()
        ));
    }
    parts.join("; ")
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allowed => "allowed",
        Verdict::Denied => "denied",
    }
}

fn reason_key(r: SideReason) -> &'static str {
    match r {
        SideReason::Denied => "denied",
        SideReason::Allowed => "allowed",
        SideReason::Redirected => "redirected",
        SideReason::DefaultDeny => "default_deny",
        SideReason::NotEnforced => "not_enforced",
        SideReason::HostAllowed => "host_allowed",
    }
}

// ------------------------------------------------------------------------------------------------
// Human
// ------------------------------------------------------------------------------------------------

fn identities_text(e: &End) -> String {
    let ids: Vec<String> = e
        .identities
        .iter()
        .map(|(id, name)| format!("{id} ({name})"))
        .collect();
    format!(
        "{} {}",
        if ids.len() == 1 {
            "identity"
        } else {
            "identities"
        },
        ids.join(", ")
    )
}

fn write_human(out: &mut dyn Write, t: &Trace, color: bool) -> io::Result<()> {
    let bold = |s: &str| Paint::Bold.apply(s, color);
    let mut request = String::new();
    if let Some(h) = &t.http {
        request = format!(", HTTP {} {}", h.method, h.path);
        if let Some(host) = &h.host {
            request.push_str(&format!(" (Host {host})"));
        }
        for (n, v) in &h.headers {
            request.push_str(&format!(" [{n}: {v}]"));
        }
    }
    if let Some(d) = &t.dns {
        request.push_str(&format!(", DNS query {d}"));
    }
    writeln!(
        out,
        "{} {} -> {} {}{request}",
        bold("flow"),
        t.from.peer,
        t.to.peer,
        t.port
    )?;
    for (what, e) in [("from", &t.from), ("to", &t.to)] {
        let labels = match &e.labels {
            Some(l) if !l.is_empty() => format!(", labels {l}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {what:<4} {} ({}): {}{labels}",
            e.peer,
            e.kind,
            identities_text(e)
        )?;
    }
    if t.self_traffic {
        writeln!(
            out,
            "\nA workload reaching itself is always allowed: no policy is consulted."
        )?;
    }
    let mut step = 0;
    for (side, end) in [(&t.egress, &t.from), (&t.ingress, &t.to)] {
        if t.self_traffic {
            break;
        }
        step += 1;
        let dir = if step == 1 { "egress" } else { "ingress" };
        match side {
            Some(s) => write_side(out, step, s, color)?,
            None => writeln!(
                out,
                "\n{}. {dir}: not judged ({} is not a workload)",
                step, end.peer
            )?,
        }
    }
    if !t.self_traffic {
        step += 1;
        write_l7(out, step, t)?;
    }
    let word = match t.verdict {
        Verdict::Allowed => Paint::Green.apply("ALLOWED", color),
        Verdict::Denied => Paint::Red.apply("DENIED", color),
    };
    writeln!(out, "\n{word}: {}", t.reason)
}

fn write_side(out: &mut dyn Write, step: usize, s: &Side, color: bool) -> io::Result<()> {
    let dir = s.direction.as_str();
    writeln!(
        out,
        "\n{step}. {}",
        Paint::Bold.apply(&format!("{dir} of {}", s.endpoint), color)
    )?;
    let selecting = if s.selecting_policies.is_empty() {
        "none".to_owned()
    } else {
        s.selecting_policies.join(", ")
    };
    writeln!(out, "   policies selecting it for {dir}: {selecting}")?;
    writeln!(
        out,
        "   default deny: {}",
        if s.enforced { "on" } else { "off" }
    )?;
    if s.allows.is_empty() && s.denies.is_empty() {
        writeln!(out, "   rules matching the flow: none")?;
    } else {
        writeln!(out, "   rules matching the flow:")?;
        for o in &s.denies {
            writeln!(out, "     deny   {}", rule_line(o))?;
        }
        for o in &s.allows {
            writeln!(out, "     allow  {}", rule_line(o))?;
        }
    }
    if s.entries.is_empty() {
        writeln!(
            out,
            "   datapath lookup under {}: no entry",
            s.keys.join(", ")
        )?;
    } else {
        writeln!(
            out,
            "   datapath lookup under {}, longest prefix per key:",
            s.keys.join(", ")
        )?;
        let mut rows = Vec::new();
        for e in &s.entries {
            rows.push(vec![
                e.direction.as_str().to_owned(),
                format!("{} ({})", e.peer, e.peer_name),
                e.protocol.to_owned(),
                e.port.clone(),
                e.verdict.clone(),
                e.rules
                    .first()
                    .map(|o| format!("<- {}", rule_line(o)))
                    .unwrap_or_default(),
            ]);
            for o in e.rules.iter().skip(1) {
                let mut row = vec![String::new(); 5];
                row.push(format!("<- {}", rule_line(o)));
                rows.push(row);
            }
        }
        out.write_all(columns(&rows, "     ").as_bytes())?;
    }
    // Every reason starts with the verdict word: colour it.
    let (word, paint) = match s.verdict {
        Verdict::Allowed => ("allowed", Paint::Green),
        Verdict::Denied => ("denied", Paint::Red),
    };
    let rest = s.reason_text.strip_prefix(word).unwrap_or(&s.reason_text);
    writeln!(out, "   => {}{rest}", paint.apply(word, color))
}

fn write_l7(out: &mut dyn Write, step: usize, t: &Trace) -> io::Result<()> {
    if t.l4_denied {
        if t.http.is_some() || t.dns.is_some() {
            writeln!(
                out,
                "\n{step}. L7: not reached (the connection is denied at L4)"
            )?;
        }
        return Ok(());
    }
    if t.l7.is_empty() {
        let what = if t.http.is_some() {
            "the HTTP request"
        } else if t.dns.is_some() {
            "the DNS query"
        } else {
            // Nothing to check and nothing asked: no step.
            return Ok(());
        };
        return writeln!(
            out,
            "\n{step}. L7: no L7 rule applies, {what} passes unchecked"
        );
    }
    for (i, s) in t.l7.iter().enumerate() {
        let n = if t.l7.len() == 1 {
            format!("{step}")
        } else {
            format!("{step}.{}", i + 1)
        };
        writeln!(
            out,
            "\n{n}. L7: {} proxy on {} of {}",
            s.protocol,
            s.direction.as_str(),
            s.endpoint
        )?;
        writeln!(
            out,
            "   {}: {}",
            if s.protocol == "HTTP" {
                "request"
            } else {
                "query"
            },
            s.request
                .as_deref()
                .unwrap_or("none given (the L4 verdict stands)")
        )?;
        writeln!(out, "   {} rules:", s.protocol)?;
        for c in &s.candidates {
            writeln!(out, "     {}:{}  {}", c.file, c.line, c.text)?;
        }
        match s.outcome {
            "allowed" => {
                let at = s
                    .matched
                    .as_ref()
                    .map(|m| format!("{}:{} ({})", m.file, m.line, m.text))
                    .unwrap_or_default();
                let of = s
                    .rule
                    .as_ref()
                    .map(|o| format!(" of {}", rule_name(o)))
                    .unwrap_or_default();
                writeln!(out, "   => allowed by {at}{of}")?;
            }
            "denied" => {
                let answer = if s.protocol == "HTTP" {
                    "the proxy answers 403 Forbidden"
                } else {
                    "the proxy answers REFUSED"
                };
                writeln!(
                    out,
                    "   => denied: no {} rule matches; {answer}",
                    s.protocol
                )?;
            }
            _ => writeln!(
                out,
                "   => not checked: give --{} to check a request",
                if s.protocol == "HTTP" { "http" } else { "dns" }
            )?,
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// JSON
// ------------------------------------------------------------------------------------------------

/// `--format json`: field order is part of the format, so these are structs, not maps.
#[derive(Serialize)]
struct TraceJson<'a> {
    verdict: &'static str,
    reason: &'a str,
    flow: FlowJson<'a>,
    from: EndJson<'a>,
    to: EndJson<'a>,
    self_traffic: bool,
    egress: Option<SideJson<'a>>,
    ingress: Option<SideJson<'a>>,
    l7: Vec<L7Json<'a>>,
}

#[derive(Serialize)]
struct FlowJson<'a> {
    from: &'a str,
    to: &'a str,
    port: &'a str,
    http: Option<HttpJson<'a>>,
    dns: Option<&'a str>,
}

#[derive(Serialize)]
struct HttpJson<'a> {
    method: &'a str,
    path: &'a str,
    host: Option<&'a str>,
    headers: Vec<String>,
}

#[derive(Serialize)]
struct EndJson<'a> {
    peer: &'a str,
    kind: &'static str,
    /// The first identity (a DNS name also carries `world`).
    identity: Option<u32>,
    identities: Vec<IdentityJson<'a>>,
}

#[derive(Serialize)]
struct IdentityJson<'a> {
    id: u32,
    name: &'a str,
}

#[derive(Serialize)]
struct SideJson<'a> {
    endpoint: &'a str,
    enforced: bool,
    verdict: &'static str,
    reason: &'static str,
    reason_text: &'a str,
    selecting_policies: &'a [String],
    matched_rules: Vec<MatchedJson<'a>>,
    peer_identities: Vec<u32>,
    entries: Vec<EntryJson<'a>>,
}

#[derive(Serialize)]
struct MatchedJson<'a> {
    action: &'static str,
    #[serde(flatten)]
    rule: &'a Origin,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    direction: &'static str,
    peer: u32,
    peer_name: &'a str,
    protocol: &'static str,
    port: &'a str,
    verdict: &'a str,
    rules: &'a [Origin],
}

#[derive(Serialize)]
struct SnippetJson<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    text: &'a str,
}

#[derive(Serialize)]
struct L7Json<'a> {
    direction: &'static str,
    endpoint: &'a str,
    protocol: &'static str,
    request: Option<&'a str>,
    outcome: &'static str,
    matched: Option<SnippetJson<'a>>,
    rule: Option<&'a Origin>,
    candidates: Vec<SnippetJson<'a>>,
}

impl Trace {
    fn json(&self) -> TraceJson<'_> {
        TraceJson {
            verdict: verdict_word(self.verdict),
            reason: &self.reason,
            flow: FlowJson {
                from: &self.from.peer,
                to: &self.to.peer,
                port: &self.port,
                http: self.http.as_ref().map(|h| HttpJson {
                    method: &h.method,
                    path: &h.path,
                    host: h.host.as_deref(),
                    headers: h.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect(),
                }),
                dns: self.dns.as_deref(),
            },
            from: end_json(&self.from),
            to: end_json(&self.to),
            self_traffic: self.self_traffic,
            egress: self.egress.as_ref().map(side_json),
            ingress: self.ingress.as_ref().map(side_json),
            l7: self.l7.iter().map(l7_json).collect(),
        }
    }
}

fn end_json(e: &End) -> EndJson<'_> {
    EndJson {
        peer: &e.peer,
        kind: e.kind,
        identity: e.identities.first().map(|(id, _)| id.0),
        identities: e
            .identities
            .iter()
            .map(|(id, name)| IdentityJson { id: id.0, name })
            .collect(),
    }
}

fn side_json(s: &Side) -> SideJson<'_> {
    let mut matched = Vec::new();
    for (action, rules) in [("deny", &s.denies), ("allow", &s.allows)] {
        matched.extend(rules.iter().map(|rule| MatchedJson { action, rule }));
    }
    SideJson {
        endpoint: &s.endpoint,
        enforced: s.enforced,
        verdict: verdict_word(s.verdict),
        reason: reason_key(s.reason),
        reason_text: &s.reason_text,
        selecting_policies: &s.selecting_policies,
        matched_rules: matched,
        peer_identities: s.peer_identities.iter().map(|i| i.0).collect(),
        entries: s
            .entries
            .iter()
            .map(|e| EntryJson {
                direction: e.direction.as_str(),
                peer: e.peer.0,
                peer_name: &e.peer_name,
                protocol: e.protocol,
                port: &e.port,
                verdict: &e.verdict,
                rules: &e.rules,
            })
            .collect(),
    }
}

fn snippet_json(s: &Snippet) -> SnippetJson<'_> {
    SnippetJson {
        file: &s.file,
        line: s.line,
        column: s.column,
        text: &s.text,
    }
}

fn l7_json(s: &L7Step) -> L7Json<'_> {
    L7Json {
        direction: s.direction.as_str(),
        endpoint: &s.endpoint,
        protocol: s.protocol,
        request: s.request.as_deref(),
        outcome: s.outcome,
        matched: s.matched.as_ref().map(snippet_json),
        rule: s.rule.as_ref(),
        candidates: s.candidates.iter().map(snippet_json).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_header_flags_parse() {
        assert_eq!(
            parse_http("GET:/api/v1/items"),
            Ok(("GET".into(), "/api/v1/items".into()))
        );
        assert!(parse_http("GET /x").is_err());
        assert!(parse_http("GET:x").is_err());
        assert_eq!(
            parse_header("X-Token:  abc "),
            Ok(("X-Token".into(), "abc".into()))
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn snippets_fold_onto_one_line() {
        assert_eq!(
            compact("- method: GET\n  path: \"/api/.*\"\n"),
            "method: GET, path: \"/api/.*\""
        );
        assert_eq!(
            compact("method: GET\n  headers:\n    - \"X-A: 1\"\n    - \"X-B: 2\""),
            "method: GET, headers: \"X-A: 1\", \"X-B: 2\""
        );
    }

    fn side(direction: Dir, reason: SideReason) -> SideDecision {
        SideDecision {
            endpoint: 0,
            direction,
            enforced: true,
            peer_identities: Vec::new(),
            keys: Vec::new(),
            matched: Vec::new(),
            reason,
            l7: Vec::new(),
        }
    }

    fn reference_side(direction: Direction, verdict: Verdict) -> SideResult {
        SideResult {
            endpoint: 0,
            direction,
            enforced: true,
            verdict,
            reason: reference::Reason::DefaultDeny,
            matched_allows: Vec::new(),
            matched_denies: Vec::new(),
            selecting_policies: Vec::new(),
        }
    }

    #[test]
    fn disagreements_are_found() {
        let decision = Decision {
            verdict: Verdict::Denied,
            self_traffic: false,
            egress: Some(side(Dir::Egress, SideReason::DefaultDeny)),
            ingress: None,
            l7: Vec::new(),
        };
        let mut explanation = Explanation {
            verdict: Verdict::Denied,
            egress: Some(reference_side(Direction::Egress, Verdict::Denied)),
            ingress: None,
            l7: None,
        };
        assert_eq!(disagreement(&decision, &explanation), None);
        explanation.verdict = Verdict::Allowed;
        assert!(disagreement(&decision, &explanation).is_some());
        explanation.verdict = Verdict::Denied;
        explanation.egress = Some(reference_side(Direction::Egress, Verdict::Allowed));
        assert!(disagreement(&decision, &explanation).is_some());
        explanation.egress = None;
        assert!(disagreement(&decision, &explanation).is_some());
    }
}
