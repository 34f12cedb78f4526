//! One rule IR for every policy kind: subject, direction, peer, L4, L7, allow or deny, and the
//! YAML it came from.

use policy_lang::model::{self, *};
use policy_lang::selector::{self, Source};
use policy_lang::{SourceMap, Span};

/// A requirement on an identity's labels (bare keys of source `k8s`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelReq {
    pub key: String,
    pub op: Operator,
    pub values: Vec<String>,
}

impl LabelReq {
    pub fn matches(&self, labels: &crate::identity::LabelSet) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Operator::In => v.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => !v.is_some_and(|v| self.values.contains(v)),
            Operator::Exists => v.is_some(),
            Operator::DoesNotExist => v.is_none(),
        }
    }

    /// `key In [value]`: what the lowering's label index answers without looking at labels.
    pub fn single_value(&self) -> Option<&str> {
        match (self.op, self.values.as_slice()) {
            (Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

/// A conjunction of requirements: selects workload identities. Sorted, so equal selectors
/// compare equal and the selector cache shares them.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointSelector {
    pub reqs: Vec<LabelReq>,
    /// A requirement no identity can meet (a `reserved:` or `cidr:` key): selects nothing.
    pub impossible: bool,
}

impl EndpointSelector {
    fn push(&mut self, key: String, op: Operator, values: Vec<String>) {
        self.reqs.push(LabelReq { key, op, values });
    }

    fn canonical(mut self) -> Self {
        for r in &mut self.reqs {
            r.values.sort();
            r.values.dedup();
        }
        self.reqs.sort();
        self.reqs.dedup();
        self
    }

    /// A Kubernetes pod selector: its keys are pod labels, never the labels Cilium derives
    /// (namespace, service account, cluster), which a NetworkPolicy cannot see.
    fn add_pod_selector(&mut self, sel: &Selector) {
        let derived = |k: &str| {
            k == selector::NAMESPACE_LABEL
                || k == selector::SERVICE_ACCOUNT_LABEL
                || k == selector::CLUSTER_LABEL
                || k.starts_with(selector::NAMESPACE_LABELS_PREFIX)
        };
        for (k, v) in &sel.match_labels {
            if derived(&k.value) {
                self.impossible = true;
            } else {
                self.push(k.value.clone(), Operator::In, vec![v.value.clone()]);
            }
        }
        for r in &sel.match_expressions {
            let values = r.values.iter().map(|v| v.value.clone()).collect();
            match (derived(&r.key.value), r.operator.value) {
                (false, op) => self.push(r.key.value.clone(), op, values),
                // No pod carries such a label: only the negative operators hold.
                (true, Operator::NotIn | Operator::DoesNotExist) => {}
                (true, _) => self.impossible = true,
            }
        }
    }

    /// A selector's requirements, keys prefixed (for namespace labels), sources stripped.
    fn add_selector(&mut self, sel: &Selector, key_prefix: &str) {
        for (k, v) in &sel.match_labels {
            match bare_key(&k.value) {
                Some(key) => self.push(
                    format!("{key_prefix}{key}"),
                    Operator::In,
                    vec![v.value.clone()],
                ),
                None => self.impossible = true,
            }
        }
        for r in &sel.match_expressions {
            let values = r.values.iter().map(|v| v.value.clone()).collect();
            match bare_key(&r.key.value) {
                Some(key) => self.push(format!("{key_prefix}{key}"), r.operator.value, values),
                // A key no pod label can have: only the negative operators hold.
                None if matches!(r.operator.value, Operator::NotIn | Operator::DoesNotExist) => {}
                None => self.impossible = true,
            }
        }
    }

    /// Whether an identity's labels satisfy every requirement.
    pub fn matches(&self, labels: &crate::identity::LabelSet) -> bool {
        !self.impossible && self.reqs.iter().all(|r| r.matches(labels))
    }
}

/// The key a selector names among pod labels, or `None` for a source pods never carry.
fn bare_key(key: &str) -> Option<&str> {
    match selector::split_source(key) {
        (Source::Any | Source::K8s, bare) => Some(bare),
        _ => None,
    }
}

fn in_namespace(ns: &str) -> (String, Operator, Vec<String>) {
    (
        selector::NAMESPACE_LABEL.to_owned(),
        Operator::In,
        vec![ns.to_owned()],
    )
}

/// An L4 match as written (resolved to numbers per endpoint at lowering).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    /// Every protocol and port.
    All,
    /// A protocol (ANY = TCP, UDP, SCTP) and ports: every port, a range, or a named port.
    Port { protocol: Protocol, port: PortMatch },
    /// ICMP (`V4`) or ICMPv6 of one type.
    Icmp { family: IcmpFamily, icmp_type: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortMatch {
    Any,
    Range(u16, u16),
    Named(String),
}

/// L7 rules of one `toPorts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L7 {
    Http(Vec<HttpRule>),
    Dns(Vec<FqdnMatch>),
}

/// Who a rule is about on the other side.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// Every peer (an empty NetworkPolicy peer list, a Cilium rule with only L4).
    All,
    /// No peer (an empty Cilium rule: it only turns default deny on).
    Nothing,
    Endpoints(EndpointSelector),
    Entity(Entity),
    /// Addresses in `cidr` but in no `except`; `pods` also selects workloads whose pod IPs all
    /// lie inside (Kubernetes ipBlock), `world` whether the unspecified Internet address counts
    /// (a /0 prefix).
    Cidr {
        cidr: ipnet::IpNet,
        except: Vec<ipnet::IpNet>,
        pods: bool,
    },
    Fqdn(FqdnMatch),
}

/// Where a rule comes from, for `trace`, `explain` and every bundle entry.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Origin {
    /// `NetworkPolicy`, `CiliumNetworkPolicy` or `CiliumClusterwideNetworkPolicy`.
    pub kind: String,
    /// Empty for clusterwide policies.
    pub namespace: String,
    pub name: String,
    /// Position of the rule in its policy, counting every section in document order.
    pub rule_index: usize,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub description: String,
}

impl Origin {
    pub fn policy(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }

    /// `file:line (Kind ns/name rule #i)`, as events, traces and explanations name a rule.
    pub fn location(&self) -> String {
        format!(
            "{}:{} ({} rule #{})",
            self.file,
            self.line,
            self.policy(),
            self.rule_index
        )
    }
}

/// One rule of the IR. A policy rule with several peers and ports becomes one `Rule` whose
/// peers and L4 lists are unions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub subject: EndpointSelector,
    pub direction: Direction,
    pub deny: bool,
    /// Whether the rule puts its subject in default deny for its direction.
    pub enforces: bool,
    pub peers: Vec<Peer>,
    /// Each L4 match with the L7 rules that its `toPorts` entry carries.
    pub ports: Vec<(L4, Option<L7>)>,
    pub origin: Origin,
    pub span: Span,
}

fn origin(
    policy: &Policy,
    rule_index: usize,
    span: Span,
    sources: &SourceMap,
    description: &str,
) -> Origin {
    let meta = policy.meta();
    let (file, line, column) = match sources.locate(span) {
        Some((f, start, _)) => (f.path.display().to_string(), start.line, start.column),
        None => (sources.path(span.file).display().to_string(), 0, 0),
    };
    Origin {
        kind: policy.kind().as_str().to_owned(),
        namespace: if policy.kind() == PolicyKind::CiliumClusterwideNetworkPolicy {
            String::new()
        } else {
            meta.namespace.value.clone()
        },
        name: meta.name.value.clone(),
        rule_index,
        file,
        line,
        column,
        description: description.to_owned(),
    }
}

fn np_l4(ports: &Option<Vec<PortSpec>>) -> Vec<L4> {
    match ports {
        None => vec![L4::All],
        Some(p) if p.is_empty() => vec![L4::All],
        Some(p) => p.iter().map(port_l4).collect(),
    }
}

fn port_l4(p: &PortSpec) -> L4 {
    let port = match &p.port.value {
        Port::Any => PortMatch::Any,
        Port::Number(n) => PortMatch::Range(*n, p.end_port.map(|e| e.value).unwrap_or(*n)),
        Port::Name(n) => PortMatch::Named(n.clone()),
    };
    L4::Port {
        protocol: p.protocol.value,
        port,
    }
}

/// A NetworkPolicy peer as IR peers.
fn np_peer(ns: &str, peer: &NpPeer) -> Peer {
    if let Some(ip) = &peer.ip_block {
        return Peer::Cidr {
            cidr: ip.cidr.value,
            except: ip.except.iter().map(|e| e.value).collect(),
            pods: true,
        };
    }
    let mut sel = EndpointSelector::default();
    match (&peer.pod_selector, &peer.namespace_selector) {
        (Some(pods), None) => {
            sel.add_pod_selector(pods);
            let (k, op, v) = in_namespace(ns);
            sel.push(k, op, v);
        }
        (pods, Some(namespaces)) => {
            if let Some(pods) = pods {
                sel.add_pod_selector(pods);
            }
            sel.add_selector(namespaces, selector::NAMESPACE_LABELS_PREFIX);
            // Only pods have a namespace.
            sel.push(
                selector::NAMESPACE_LABEL.to_owned(),
                Operator::Exists,
                Vec::new(),
            );
        }
        (None, None) => sel.impossible = true,
    }
    Peer::Endpoints(sel.canonical())
}

/// A Cilium endpoint selector, scoped as Cilium scopes it.
fn cilium_selector(kind: PolicyKind, ns: &str, sel: &Selector, subject: bool) -> EndpointSelector {
    let mut out = EndpointSelector::default();
    out.add_selector(sel, "");
    // A namespaced policy's subject is always its own namespace's pods (Cilium overrides any
    // namespace the selector names); its peers are, unless the selector names a namespace.
    if kind == PolicyKind::CiliumNetworkPolicy && (subject || !selector::names_namespace(sel)) {
        let (k, op, v) = in_namespace(ns);
        out.push(k, op, v);
    } else {
        out.push(
            selector::NAMESPACE_LABEL.to_owned(),
            Operator::Exists,
            Vec::new(),
        );
    }
    out.canonical()
}

/// Lowers every policy of a tree into IR rules, policies in (kind, namespace, name) order so
/// that the result does not depend on file order.
pub fn normalize(tree: &Tree, sources: &SourceMap) -> Vec<Rule> {
    let mut policies: Vec<&Policy> = tree.policies.iter().collect();
    policies.sort_by(|a, b| {
        (a.kind(), &a.meta().namespace.value, &a.meta().name.value).cmp(&(
            b.kind(),
            &b.meta().namespace.value,
            &b.meta().name.value,
        ))
    });
    let mut rules = Vec::new();
    for policy in policies {
        normalize_into(policy, tree, sources, &mut rules);
    }
    rules
}

/// Lowers one policy of a tree into IR rules (what [`normalize`] gives for it, in order).
/// `tree` is read for the Services that `toServices` names.
pub fn normalize_policy(policy: &Policy, tree: &Tree, sources: &SourceMap) -> Vec<Rule> {
    let mut rules = Vec::new();
    normalize_into(policy, tree, sources, &mut rules);
    rules
}

fn normalize_into(policy: &Policy, tree: &Tree, sources: &SourceMap, out: &mut Vec<Rule>) {
    match policy {
        Policy::Kubernetes(np) => normalize_np(policy, np, sources, out),
        Policy::Cilium(cp) => normalize_cilium(policy, cp, tree, sources, out),
    }
}

fn normalize_np(policy: &Policy, np: &NetworkPolicy, sources: &SourceMap, out: &mut Vec<Rule>) {
    let ns = np.meta.namespace.value.as_str();
    let mut subject = EndpointSelector::default();
    subject.add_pod_selector(&np.pod_selector);
    let (k, op, v) = in_namespace(ns);
    subject.push(k, op, v);
    let subject = subject.canonical();
    // Rules are numbered in document order across both sections.
    let mut sections: Vec<(Direction, &NpRule)> = np
        .ingress
        .iter()
        .map(|r| (Direction::Ingress, r))
        .chain(np.egress.iter().map(|r| (Direction::Egress, r)))
        .collect();
    sections.sort_by_key(|(_, r)| r.span.start);
    let directions = np.directions();
    for direction in &directions {
        // The policy type alone turns default deny on, with or without rules.
        out.push(Rule {
            subject: subject.clone(),
            direction: *direction,
            deny: false,
            enforces: true,
            peers: vec![Peer::Nothing],
            ports: vec![],
            origin: origin(
                policy,
                usize::MAX,
                np.meta.name.span,
                sources,
                "policyTypes",
            ),
            span: np.meta.name.span,
        });
    }
    for (index, (direction, rule)) in sections.into_iter().enumerate() {
        // Rules of a direction the policy types leave out are ignored, as upstream.
        if !directions.contains(&direction) {
            continue;
        }
        let peers = match &rule.peers {
            None => vec![Peer::All],
            Some(p) if p.is_empty() => vec![Peer::All],
            Some(p) => p.iter().map(|peer| np_peer(ns, peer)).collect(),
        };
        out.push(Rule {
            subject: subject.clone(),
            direction,
            deny: false,
            enforces: true,
            peers,
            ports: np_l4(&rule.ports).into_iter().map(|l| (l, None)).collect(),
            origin: origin(policy, index, rule.span, sources, ""),
            span: rule.span,
        });
    }
}

fn normalize_cilium(
    policy: &Policy,
    cp: &CiliumPolicy,
    tree: &Tree,
    sources: &SourceMap,
    out: &mut Vec<Rule>,
) {
    let ns = cp.meta.namespace.value.as_str();
    let mut flat: Vec<(&CiliumRule, &CiliumPeerRule)> = cp
        .rules
        .iter()
        .flat_map(|r| r.rules.iter().map(move |p| (r, p)))
        .collect();
    flat.sort_by_key(|(_, p)| p.span.start);
    for (index, (rule, peer_rule)) in flat.into_iter().enumerate() {
        let Some(Subject::Endpoints(sel)) = &rule.subject else {
            continue;
        };
        let subject = cilium_selector(cp.kind, ns, sel, true);
        let enforces = match peer_rule.direction {
            Direction::Ingress => rule.default_deny_ingress != Some(false),
            Direction::Egress => rule.default_deny_egress != Some(false),
        };
        let peers = cilium_peers(cp, peer_rule, tree, ns);
        let ports = cilium_l4(peer_rule);
        out.push(Rule {
            subject,
            direction: peer_rule.direction,
            deny: peer_rule.deny,
            enforces,
            peers,
            ports,
            origin: origin(
                policy,
                index,
                peer_rule.span,
                sources,
                rule.description.as_deref().unwrap_or(""),
            ),
            span: peer_rule.span,
        });
    }
}

fn cilium_peers(cp: &CiliumPolicy, r: &CiliumPeerRule, tree: &Tree, ns: &str) -> Vec<Peer> {
    if r.has_no_l3_peer() {
        return if r.to_ports.is_some() || r.icmps.is_some() {
            vec![Peer::All]
        } else {
            vec![Peer::Nothing]
        };
    }
    let mut peers = Vec::new();
    for sel in r.endpoints.iter().flatten() {
        peers.push(Peer::Endpoints(cilium_selector(cp.kind, ns, sel, false)));
    }
    for e in r.entities.iter().flatten() {
        peers.push(Peer::Entity(e.value));
    }
    for c in r.cidrs.iter().flatten() {
        peers.push(Peer::Cidr {
            cidr: c.cidr.value,
            except: c.except.iter().map(|e| e.value).collect(),
            pods: false,
        });
    }
    for f in r.fqdns.iter().flatten() {
        peers.push(Peer::Fqdn(f.value.clone()));
    }
    for s in r.services.iter().flatten() {
        peers.extend(service_peers(cp, s, tree, ns));
    }
    if peers.is_empty() {
        peers.push(Peer::Nothing);
    }
    peers
}

/// `toServices`: the Service's selected workloads, or its EndpointSlices' addresses.
fn service_peers(cp: &CiliumPolicy, s: &ServiceRef, tree: &Tree, ns: &str) -> Vec<Peer> {
    let services: Vec<&model::Service> = match s {
        ServiceRef::Name { name, namespace } => {
            let want_ns = namespace.as_ref().map(|n| n.value.as_str()).unwrap_or(ns);
            tree.services
                .iter()
                .filter(|svc| {
                    svc.meta.name.value == name.value && svc.meta.namespace.value == want_ns
                })
                .collect()
        }
        ServiceRef::Selector {
            selector: sel,
            namespace,
        } => {
            let want_ns = namespace
                .as_ref()
                .map(|n| n.value.as_str())
                .or((!ns.is_empty()).then_some(ns));
            tree.services
                .iter()
                .filter(|svc| want_ns.is_none_or(|w| svc.meta.namespace.value == w))
                .filter(|svc| {
                    selector::matches(sel, |src, k| match src {
                        Source::K8s => svc.meta.labels.get(k).map(|v| v.value.as_str()),
                        _ => None,
                    })
                })
                .collect()
        }
    };
    let _ = cp;
    let mut peers = Vec::new();
    for svc in services {
        match &svc.selector {
            Some(labels) => {
                let mut sel = EndpointSelector::default();
                for (k, v) in labels {
                    sel.push(k.clone(), Operator::In, vec![v.clone()]);
                }
                let (k, op, v) = in_namespace(&svc.meta.namespace.value);
                sel.push(k, op, v);
                peers.push(Peer::Endpoints(sel.canonical()));
            }
            None => {
                for slice in tree.endpoint_slices.iter().filter(|e| {
                    e.meta.namespace.value == svc.meta.namespace.value
                        && e.service_name.as_deref() == Some(svc.meta.name.value.as_str())
                }) {
                    for ip in &slice.addresses {
                        peers.push(Peer::Cidr {
                            cidr: ipnet::IpNet::from(*ip),
                            except: vec![],
                            pods: false,
                        });
                    }
                }
            }
        }
    }
    peers
}

fn cilium_l4(r: &CiliumPeerRule) -> Vec<(L4, Option<L7>)> {
    if let Some(icmps) = &r.icmps {
        return icmps
            .iter()
            .map(|i| {
                (
                    L4::Icmp {
                        family: i.family,
                        icmp_type: i.icmp_type.value,
                    },
                    None,
                )
            })
            .collect();
    }
    let Some(port_rules) = &r.to_ports else {
        return vec![(L4::All, None)];
    };
    let mut out = Vec::new();
    for pr in port_rules {
        let l7 = match (&pr.http, &pr.dns) {
            (Some(h), _) if !h.is_empty() => Some(L7::Http(h.clone())),
            (_, Some(d)) if !d.is_empty() => {
                Some(L7::Dns(d.iter().map(|d| d.value.clone()).collect()))
            }
            _ => None,
        };
        if pr.ports.is_empty() {
            out.push((
                L4::Port {
                    protocol: Protocol::Any,
                    port: PortMatch::Any,
                },
                l7,
            ));
        } else {
            out.extend(pr.ports.iter().map(|p| (port_l4(p), l7.clone())));
        }
    }
    out
}
