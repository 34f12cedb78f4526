//! `policyc inspect`: lists a compiled bundle the way `cilium-dbg bpf ... list` dumps kernel
//! maps: identities, ipcache, each endpoint's policy entries with their rules, L7 sets and
//! DNS-name selectors.

use super::layout::columns;
use super::tree::{plural, rule_line};
use super::{emit, log, EXIT_ERROR, EXIT_OK};
use clap::{Args, ValueEnum};
use compiler::bundle::{
    proto, Bundle, Endpoint, Entry, EntryVerdict, IdentityInfo, IdentityKind, L7Set,
};
use compiler::identity::Identity;
use compiler::ir::Origin;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Human output has one section per map: IDENTITIES (number, kind, name), IPCACHE (prefix ->
identity), one ENDPOINT section per endpoint (identity, IPs, enforced directions, named ports,
and its policy entries: direction, peer identity, protocol, port or port range, verdict and
the rules behind the entry as `file:line (Kind namespace/name rule #i)`), L7 SETS (the HTTP
rules or DNS names behind each redirect) and FQDN SELECTORS. Peer identity 0 means any peer.

Examples:
  policyc compile examples/online-shop -o shop.bundle
  policyc inspect shop.bundle
  policyc inspect shop.bundle --endpoint shop-frontend/storefront
  policyc inspect shop.bundle --format json | jq '.endpoints[0].entries'

Exit status:
  0  the bundle was listed
  2  usage error, FILE cannot be read or is no bundle of this version, or no such endpoint";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct InspectArgs {
    /// The bundle written by `policyc compile`; `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Human)]
    pub format: Format,

    /// Only this endpoint (`namespace/name`) and the L7 sets its entries use.
    #[arg(long, value_name = "NS/NAME")]
    pub endpoint: Option<String>,
}

/// The `--format` setting of `inspect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables, one section per map.
    #[default]
    Human,
    /// One JSON object: `version`, `options`, `identities`, `ipcache`, `endpoints` (with their
    /// entries and rules spelled out), `l7`, `fqdn_selectors`. With `--endpoint`: `version`,
    /// `endpoints` (that one) and the `l7` sets it uses.
    Json,
}

/// Runs `policyc inspect` and returns the exit status.
pub fn run(args: &InspectArgs) -> u8 {
    let bytes = match read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            log(format_args!(
                "error: cannot read `{}`: {e}",
                args.file.display()
            ));
            return EXIT_ERROR;
        }
    };
    let bundle = match Bundle::from_bytes(&bytes) {
        Ok(b) => b,
        Err(e) => {
            log(format_args!("error: `{}`: {e}", args.file.display()));
            return EXIT_ERROR;
        }
    };
    let only = match &args.endpoint {
        Some(name) => match bundle.endpoints.iter().position(|e| &e.name == name) {
            Some(i) => Some(i),
            None => {
                log(format_args!(
                    "error: the bundle has no endpoint `{name}` (endpoints are named `namespace/name`)"
                ));
                return EXIT_ERROR;
            }
        },
        None => None,
    };
    let view = View::new(&bundle);
    emit(EXIT_OK, |out| match args.format {
        Format::Human => {
            let mut text = Vec::new();
            write_human(&mut text, &view, only)?;
            // One endpoint alone: no blank line above its section.
            let start = text.iter().take_while(|b| **b == b'\n').count();
            out.write_all(text.get(start..).unwrap_or_default())
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &view.json(only))?;
            writeln!(out)
        }
    })
}

fn read(path: &PathBuf) -> io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        io::stdin().lock().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

/// Names of identities, computed once per bundle: `shop/web` for a workload identity (every
/// endpoint carrying it), the reserved name, `cidr 10.0.0.0/8`, `fqdn api.example.com`.
pub struct IdentityNames {
    names: BTreeMap<Identity, String>,
}

impl IdentityNames {
    pub fn new(bundle: &Bundle) -> IdentityNames {
        let mut endpoints: BTreeMap<Identity, Vec<&str>> = BTreeMap::new();
        for e in &bundle.endpoints {
            endpoints.entry(e.identity).or_default().push(&e.name);
        }
        let mut names = BTreeMap::new();
        names.insert(Identity::ANY, "any".to_owned());
        names.insert(Identity::CLUSTER_CLASS, "cluster".to_owned());
        names.insert(
            Identity::WORLD_CLASS,
            "world (outside the cluster)".to_owned(),
        );
        for (i, ns) in bundle.namespaces.iter().enumerate() {
            names.insert(Identity::namespace(i as u32), format!("namespace {ns}"));
        }
        for info in &bundle.identities {
            let name = match &info.kind {
                IdentityKind::Reserved { name } => name.clone(),
                IdentityKind::Workload { labels } => match endpoints.get(&info.id) {
                    Some(eps) => eps.join(", "),
                    None => pod_labels(labels),
                },
                IdentityKind::Cidr { prefix } => format!("cidr {prefix}"),
                IdentityKind::Fqdn { selector } => format!("fqdn {selector}"),
            };
            names.insert(info.id, name);
        }
        IdentityNames { names }
    }

    /// `shop/web`, `world`, ... (`?` for a number the bundle does not know).
    pub fn name(&self, id: Identity) -> &str {
        self.names.get(&id).map(String::as_str).unwrap_or("?")
    }

    /// `256 (shop/web)`.
    pub fn label(&self, id: Identity) -> String {
        format!("{id} ({})", self.name(id))
    }
}

/// The labels a user put on the pods (`app=web, tier=frontend`), without the ones Cilium adds.
pub fn pod_labels(labels: &BTreeMap<String, String>) -> String {
    let own: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("io.cilium.k8s.") && !k.starts_with("io.kubernetes."))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    own.join(", ")
}

/// A port as entries key it: `*` for every port, `8080`, or `8000-8063`.
pub fn entry_port(e: &Entry) -> String {
    if e.key.protocol == proto::ANY {
        "*".to_owned()
    } else {
        e.key.port.to_string()
    }
}

/// `allow`, `deny` or `redirect L7 #0`.
pub fn entry_verdict(e: &Entry) -> String {
    match e.verdict {
        EntryVerdict::Allow => "allow".to_owned(),
        EntryVerdict::Deny => "deny".to_owned(),
        EntryVerdict::Redirect(set) => format!("redirect L7 #{set}"),
    }
}

/// A bundle with its identity names, ready to print.
struct View<'b> {
    bundle: &'b Bundle,
    names: IdentityNames,
}

impl<'b> View<'b> {
    fn new(bundle: &'b Bundle) -> View<'b> {
        View {
            bundle,
            names: IdentityNames::new(bundle),
        }
    }

    fn rule(&self, index: u32) -> Option<&Origin> {
        self.bundle.rules.get(index as usize)
    }

    fn rule_text(&self, index: u32) -> String {
        self.rule(index)
            .map(rule_line)
            .unwrap_or_else(|| format!("rule #{index} (not in the bundle)"))
    }

    /// The L7 sets the entries of these endpoints redirect to.
    fn l7_sets_of(&self, endpoints: &[&Endpoint]) -> BTreeSet<u32> {
        endpoints
            .iter()
            .filter_map(|e| self.bundle.policies.get(e.policy as usize))
            .flat_map(|p| p.entries.iter())
            .filter_map(|e| match e.verdict {
                EntryVerdict::Redirect(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn endpoints(&self, only: Option<usize>) -> Vec<&'b Endpoint> {
        match only {
            Some(i) => self.bundle.endpoints.get(i).into_iter().collect(),
            None => self.bundle.endpoints.iter().collect(),
        }
    }

    fn json(&self, only: Option<usize>) -> InspectJson<'_> {
        let b = self.bundle;
        let endpoints = self.endpoints(only);
        let sets: Vec<u32> = match only {
            Some(_) => self.l7_sets_of(&endpoints).into_iter().collect(),
            None => (0..b.l7.len() as u32).collect(),
        };
        let all = only.is_none();
        InspectJson {
            version: b.version,
            options: all.then_some(&b.options),
            identities: all.then(|| b.identities.iter().map(|i| self.identity_json(i)).collect()),
            ipcache: all.then(|| {
                b.ipcache
                    .iter()
                    .map(|e| IpcacheJson {
                        prefix: e.prefix.to_string(),
                        identity: e.identity.0,
                        name: self.names.name(e.identity),
                    })
                    .collect()
            }),
            endpoints: endpoints.iter().map(|e| self.endpoint_json(e)).collect(),
            l7: sets.iter().filter_map(|s| self.l7_json(*s)).collect(),
            fqdn_selectors: all.then_some(b.fqdn_selectors.as_slice()),
        }
    }

    fn identity_json(&self, i: &'b IdentityInfo) -> IdentityJson<'_> {
        let mut v = IdentityJson {
            id: i.id.0,
            kind: "",
            name: self.names.name(i.id),
            labels: None,
            prefix: None,
            selector: None,
        };
        match &i.kind {
            IdentityKind::Reserved { .. } => v.kind = "reserved",
            IdentityKind::Workload { labels } => {
                v.kind = "workload";
                v.labels = Some(labels);
            }
            IdentityKind::Cidr { prefix } => {
                v.kind = "cidr";
                v.prefix = Some(prefix.to_string());
            }
            IdentityKind::Fqdn { selector } => {
                v.kind = "fqdn";
                v.selector = Some(selector);
            }
        }
        v
    }

    fn endpoint_json(&self, e: &'b Endpoint) -> EndpointJson<'_> {
        let policy = self.bundle.policies.get(e.policy as usize);
        let entries = policy
            .map(|p| p.entries.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|entry| EntryJson {
                direction: entry.key.direction.as_str(),
                peer: entry.key.peer.0,
                peer_name: self.names.name(entry.key.peer),
                protocol: proto::name(entry.key.protocol),
                port: entry_port(entry),
                port_prefix: entry.key.port,
                verdict: match entry.verdict {
                    EntryVerdict::Allow => "allow",
                    EntryVerdict::Deny => "deny",
                    EntryVerdict::Redirect(_) => "redirect",
                },
                l7: match entry.verdict {
                    EntryVerdict::Redirect(s) => Some(s),
                    _ => None,
                },
                rules: entry.rules.iter().filter_map(|r| self.rule(*r)).collect(),
            })
            .collect();
        EndpointJson {
            name: &e.name,
            identity: e.identity.0,
            ips: e.ips.iter().map(|ip| ip.to_string()).collect(),
            policy: e.policy,
            ingress_enforced: policy.is_some_and(|p| p.ingress_enforced),
            egress_enforced: policy.is_some_and(|p| p.egress_enforced),
            named_ports: e
                .named_ports
                .iter()
                .map(|n| NamedPortJson {
                    name: &n.name,
                    protocol: proto::name(n.protocol),
                    port: n.port,
                })
                .collect(),
            entries,
        }
    }

    fn l7_json(&self, index: u32) -> Option<L7Json<'_>> {
        let (kind, rules) = match self.bundle.l7.get(index as usize)? {
            L7Set::Http(rules) => (
                "http",
                rules
                    .iter()
                    .map(|h| L7RuleJson::Http {
                        method: h.method.as_deref(),
                        path: h.path.as_deref(),
                        host: h.host.as_deref(),
                        headers: &h.headers,
                        rule: self.rule(h.rule),
                    })
                    .collect(),
            ),
            L7Set::Dns(names) => (
                "dns",
                names
                    .iter()
                    .map(|d| L7RuleJson::Dns {
                        name: d.name.as_deref(),
                        pattern: d.pattern.as_deref(),
                        rule: self.rule(d.rule),
                    })
                    .collect(),
            ),
        };
        Some(L7Json { index, kind, rules })
    }
}

/// `--format json`: field order is part of the format, so these are structs, not maps.
#[derive(Serialize)]
struct InspectJson<'a> {
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a compiler::bundle::Options>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identities: Option<Vec<IdentityJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipcache: Option<Vec<IpcacheJson<'a>>>,
    endpoints: Vec<EndpointJson<'a>>,
    l7: Vec<L7Json<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fqdn_selectors: Option<&'a [compiler::bundle::FqdnSelector]>,
}

#[derive(Serialize)]
struct IdentityJson<'a> {
    id: u32,
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<&'a str>,
}

#[derive(Serialize)]
struct IpcacheJson<'a> {
    prefix: String,
    identity: u32,
    name: &'a str,
}

#[derive(Serialize)]
struct EndpointJson<'a> {
    name: &'a str,
    identity: u32,
    ips: Vec<String>,
    policy: u32,
    ingress_enforced: bool,
    egress_enforced: bool,
    named_ports: Vec<NamedPortJson<'a>>,
    entries: Vec<EntryJson<'a>>,
}

#[derive(Serialize)]
struct NamedPortJson<'a> {
    name: &'a str,
    protocol: &'static str,
    port: u16,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    direction: &'static str,
    peer: u32,
    peer_name: &'a str,
    protocol: &'static str,
    port: String,
    port_prefix: compiler::ports::PortPrefix,
    verdict: &'static str,
    l7: Option<u32>,
    rules: Vec<&'a Origin>,
}

#[derive(Serialize)]
struct L7Json<'a> {
    index: u32,
    kind: &'static str,
    rules: Vec<L7RuleJson<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum L7RuleJson<'a> {
    Http {
        method: Option<&'a str>,
        path: Option<&'a str>,
        host: Option<&'a str>,
        headers: &'a [String],
        rule: Option<&'a Origin>,
    },
    Dns {
        name: Option<&'a str>,
        pattern: Option<&'a str>,
        rule: Option<&'a Origin>,
    },
}

fn write_human(out: &mut dyn Write, view: &View<'_>, only: Option<usize>) -> io::Result<()> {
    let b = view.bundle;
    let endpoints = view.endpoints(only);
    if only.is_none() {
        writeln!(
            out,
            "bundle version {}: {}, {}, {}, {}; allow_host_ingress: {}",
            b.version,
            plural(b.endpoints.len(), "endpoint", "endpoints"),
            plural(b.identities.len(), "identity", "identities"),
            plural(b.entry_count(), "entry", "entries"),
            plural(b.ipcache.len(), "ipcache entry", "ipcache entries"),
            b.options.allow_host_ingress
        )?;
        writeln!(out, "\nIDENTITIES")?;
        let mut rows = vec![vec!["ID".to_owned(), "KIND".into(), "NAME".into()]];
        for i in &b.identities {
            let (kind, extra) = match &i.kind {
                IdentityKind::Reserved { .. } => ("reserved", String::new()),
                IdentityKind::Workload { labels } => ("workload", pod_labels(labels)),
                IdentityKind::Cidr { .. } => ("cidr", String::new()),
                IdentityKind::Fqdn { .. } => ("fqdn", String::new()),
            };
            let name = if extra.is_empty() {
                view.names.name(i.id).to_owned()
            } else {
                format!("{} [{extra}]", view.names.name(i.id))
            };
            rows.push(vec![i.id.to_string(), kind.into(), name]);
        }
        out.write_all(columns(&rows, "  ").as_bytes())?;
        writeln!(out, "\nIPCACHE")?;
        let mut rows = vec![vec!["PREFIX".to_owned(), "IDENTITY".into()]];
        for e in &b.ipcache {
            rows.push(vec![e.prefix.to_string(), view.names.label(e.identity)]);
        }
        out.write_all(columns(&rows, "  ").as_bytes())?;
    }
    for e in &endpoints {
        write_endpoint(out, view, e)?;
    }
    let sets: Vec<u32> = match only {
        Some(_) => view.l7_sets_of(&endpoints).into_iter().collect(),
        None => (0..b.l7.len() as u32).collect(),
    };
    if !sets.is_empty() {
        writeln!(out, "\nL7 SETS")?;
    }
    for s in sets {
        match b.l7.get(s as usize) {
            Some(L7Set::Http(rules)) => {
                writeln!(out, "  #{s} http")?;
                let mut rows = Vec::new();
                for h in rules {
                    let mut what = vec![
                        h.method.as_deref().unwrap_or("*").to_owned(),
                        h.path.as_deref().unwrap_or("*").to_owned(),
                    ];
                    if let Some(host) = &h.host {
                        what.push(format!("host {host}"));
                    }
                    for header in &h.headers {
                        what.push(format!("header `{header}`"));
                    }
                    rows.push(vec![what.join(" "), view.rule_text(h.rule)]);
                }
                out.write_all(columns(&rows, "     ").as_bytes())?;
            }
            Some(L7Set::Dns(names)) => {
                writeln!(out, "  #{s} dns")?;
                let mut rows = Vec::new();
                for d in names {
                    let what = match (&d.name, &d.pattern) {
                        (Some(n), _) => format!("name {n}"),
                        (_, Some(p)) => format!("pattern {p}"),
                        _ => "nothing".to_owned(),
                    };
                    rows.push(vec![what, view.rule_text(d.rule)]);
                }
                out.write_all(columns(&rows, "     ").as_bytes())?;
            }
            None => {}
        }
    }
    if only.is_none() && !b.fqdn_selectors.is_empty() {
        writeln!(out, "\nFQDN SELECTORS")?;
        let mut rows = vec![vec!["IDENTITY".to_owned(), "SELECTOR".into()]];
        for f in &b.fqdn_selectors {
            let what = match (&f.name, &f.pattern) {
                (Some(n), _) => format!("matchName {n}"),
                (_, Some(p)) => format!("matchPattern {p}"),
                _ => "nothing".to_owned(),
            };
            rows.push(vec![f.identity.to_string(), what]);
        }
        out.write_all(columns(&rows, "  ").as_bytes())?;
    }
    Ok(())
}

fn write_endpoint(out: &mut dyn Write, view: &View<'_>, e: &Endpoint) -> io::Result<()> {
    let b = view.bundle;
    let policy = b.policies.get(e.policy as usize);
    writeln!(out, "\nENDPOINT {}", e.name)?;
    writeln!(out, "  identity: {}", view.names.label(e.identity))?;
    let ips: Vec<String> = e.ips.iter().map(|ip| ip.to_string()).collect();
    writeln!(
        out,
        "  ips: {}",
        if ips.is_empty() {
            "(none)".to_owned()
        } else {
            ips.join(", ")
        }
    )?;
    let mut enforced = Vec::new();
    if policy.is_some_and(|p| p.ingress_enforced) {
        enforced.push("ingress");
    }
    if policy.is_some_and(|p| p.egress_enforced) {
        enforced.push("egress");
    }
    writeln!(
        out,
        "  enforced: {}",
        if enforced.is_empty() {
            "none (everything not denied is allowed)".to_owned()
        } else {
            enforced.join(", ")
        }
    )?;
    if !e.named_ports.is_empty() {
        let named: Vec<String> = e
            .named_ports
            .iter()
            .map(|n| format!("{}={}/{}", n.name, n.port, proto::name(n.protocol)))
            .collect();
        writeln!(out, "  named ports: {}", named.join(", "))?;
    }
    let sharing: Vec<&str> = b
        .endpoints
        .iter()
        .filter(|o| o.policy == e.policy && o.name != e.name)
        .map(|o| o.name.as_str())
        .collect();
    if !sharing.is_empty() {
        writeln!(
            out,
            "  policy #{} (shared with {})",
            e.policy,
            sharing.join(", ")
        )?;
    } else {
        writeln!(out, "  policy #{}", e.policy)?;
    }
    let entries = policy.map(|p| p.entries.as_slice()).unwrap_or_default();
    if entries.is_empty() {
        writeln!(out, "  entries: (none)")?;
        return Ok(());
    }
    let mut rows = vec![["DIRECTION", "PEER", "PROTO", "PORT", "VERDICT", "RULES"]
        .map(str::to_owned)
        .to_vec()];
    for entry in entries {
        let mut rules = entry.rules.iter();
        let first = rules.next().map(|r| view.rule_text(*r)).unwrap_or_default();
        rows.push(vec![
            entry.key.direction.as_str().to_owned(),
            view.names.label(entry.key.peer),
            proto::name(entry.key.protocol).to_owned(),
            entry_port(entry),
            entry_verdict(entry),
            first,
        ]);
        for r in rules {
            rows.push(vec![
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                view.rule_text(*r),
            ]);
        }
    }
    out.write_all(columns(&rows, "  ").as_bytes())
}
