//! The reference evaluator: a direct reading of `docs/semantics.md` over the typed policies.
//!
//! Nothing here is clever on purpose. For every flow it walks every policy of the tree, every
//! rule of every policy, and decides each rule by re-reading its selectors, CIDRs and ports
//! against the two peers of the flow. There are no identities, no precomputed tables and no
//! caches, so that each step can be checked against one sentence of the spec. Property tests
//! compare the optimised compiler against it.
//!
//! Where the spec is silent this module picks one reading and says so in a comment marked
//! `Spec gap:`. One applies everywhere: a `hostNetwork` workload is judged, selected and
//! matched like any other workload (the spec does not single it out; Cilium would treat its
//! pods as the host).

use crate::flow::{Flow, HttpRequest, Peer, Verdict};
use crate::inventory::{Inventory, Workload};
use policy_lang::formats;
use policy_lang::model::{
    CiliumPeerRule, CiliumPolicy, CiliumRule, Direction, Entity, FqdnMatch, HttpRule, IpBlock,
    NetworkPolicy, NpPeer, NpRule, Policy, PolicyKind, Port, PortRule, PortSpec, Protocol,
    Selector, ServiceRef, Subject, Tree,
};
use policy_lang::selector::{self, Source};
use policy_lang::Span;
use std::collections::BTreeMap;
use std::net::IpAddr;

// ------------------------------------------------------------------------------------------------
// The answer
// ------------------------------------------------------------------------------------------------

/// Everything the reference evaluator decided about one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The final verdict: both judged sides allow at L4, and no L7 proxy refuses the request.
    pub verdict: Verdict,
    /// The source's egress, when the source is a workload.
    pub egress: Option<SideResult>,
    /// The destination's ingress, when the destination is a workload.
    pub ingress: Option<SideResult>,
    /// Present when L7 rules (HTTP or DNS) apply to the flow on an allowing side.
    pub l7: Option<L7Result>,
}

/// Why one side decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A workload reaching itself (always allowed).
    Self_,
    /// No policy enforces the endpoint in this direction and no allow rule matched: allowed.
    NoPolicy,
    /// The endpoint is enforced in this direction and no rule matched: denied.
    DefaultDeny,
    /// An allow rule matched (and no deny rule did).
    AllowedBy,
    /// A deny rule matched (deny wins over every allow).
    DeniedBy,
    /// Traffic from `host` to a workload, allowed by the `allow_host_ingress` switch although
    /// no allow rule matched.
    HostAllowed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Self_ => "a workload reaching itself is always allowed",
            Reason::NoPolicy => "no policy enforces this direction",
            Reason::DefaultDeny => "default deny: policies select the endpoint, none allows",
            Reason::AllowedBy => "allowed by a rule",
            Reason::DeniedBy => "denied by a deny rule",
            Reason::HostAllowed => "traffic from the host is allowed (allow_host_ingress)",
        }
    }
}

/// The judgement of one endpoint in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideResult {
    /// The judged endpoint (index in [`Inventory::workloads`]).
    pub endpoint: usize,
    pub direction: Direction,
    /// Whether a policy puts the endpoint in default deny for this direction.
    pub enforced: bool,
    /// The L4 verdict of this side (L7 outcomes are in [`Explanation::l7`]).
    pub verdict: Verdict,
    pub reason: Reason,
    /// Every allow rule selecting the endpoint for this direction that matches the flow.
    pub matched_allows: Vec<RuleRef>,
    /// Every deny rule selecting the endpoint for this direction that matches the flow.
    pub matched_denies: Vec<RuleRef>,
    /// `Kind ns/name` (clusterwide: `Kind name`) of every policy that has rules for the
    /// endpoint in this direction or puts it in default deny, in tree order.
    pub selecting_policies: Vec<String>,
}

/// One rule of one policy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    pub policy_kind: PolicyKind,
    /// Empty for a clusterwide policy.
    pub namespace: String,
    pub name: String,
    /// Position of the rule among all rules of the policy (NetworkPolicy: every `ingress` and
    /// `egress` entry; Cilium: every `ingress`, `ingressDeny`, `egress`, `egressDeny` entry of
    /// `spec` and `specs`), in document order (by span; ties keep model order).
    pub rule_index: usize,
    /// The rule's span.
    pub span: Span,
}

/// The L7 protocols whose rules the evaluator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L7Protocol {
    Http,
    Dns,
}

/// What an L7 proxy decided (or would decide).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L7Outcome {
    /// The flow carries no request (`flow.http` / `flow.dns` is `None`): the L4 verdict stands.
    NotChecked,
    /// The request matched the HTTP rule or DNS matcher with this span.
    Allowed { by: Span },
    /// No rule allows the request: HTTP 403, or DNS REFUSED.
    Denied,
}

/// L7 rules that apply on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L7Check {
    pub direction: Direction,
    pub protocol: L7Protocol,
    /// The allow rules through whose L7-carrying `toPorts` entries the flow matched.
    pub rules: Vec<RuleRef>,
    /// Spans of the HTTP rules (or DNS matchers) a request may match, in rule order.
    pub candidates: Vec<Span>,
    pub outcome: L7Outcome,
}

/// The L7 part of an explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L7Result {
    /// `Denied` when a proxy refuses the request; `Allowed` otherwise.
    pub verdict: Verdict,
    /// `denied at L7 (HTTP 403)`, `denied at L7 (DNS REFUSED)`, or what applies.
    pub reason: String,
    pub checks: Vec<L7Check>,
}

// ------------------------------------------------------------------------------------------------
// Entry point
// ------------------------------------------------------------------------------------------------

/// Judges one flow against a tree. `inventory` must be `Inventory::from_tree(tree)`.
pub fn evaluate(
    tree: &Tree,
    inventory: &Inventory,
    flow: &Flow,
    allow_host_ingress: bool,
) -> Explanation {
    let cx = Cx {
        tree,
        inventory,
        flow,
    };
    let from = cx.peer(&flow.from);
    let to = cx.peer(&flow.to);

    // Rule 1: a workload reaching itself is always allowed.
    if let (PeerRef::Workload(a), PeerRef::Workload(b)) = (&from, &to) {
        if a.index == b.index {
            let side = |direction| SideResult {
                endpoint: a.index,
                direction,
                enforced: cx.enforced(a, direction),
                verdict: Verdict::Allowed,
                reason: Reason::Self_,
                matched_allows: Vec::new(),
                matched_denies: Vec::new(),
                selecting_policies: cx.selecting_policies(a, direction),
            };
            return Explanation {
                verdict: Verdict::Allowed,
                egress: Some(side(Direction::Egress)),
                ingress: Some(side(Direction::Ingress)),
                l7: None,
            };
        }
    }

    // Rule 2: the source's egress when it is a workload, the destination's ingress when it is
    // one. Rule 3: traffic from `host` to a workload, by the switch.
    let mut checks = Vec::new();
    let egress = match &from {
        PeerRef::Workload(w) => {
            let (side, allows) = cx.judge(w, Direction::Egress, &to, false);
            if side.reason == Reason::AllowedBy {
                checks.extend(l7_checks(Direction::Egress, &allows, flow));
            }
            Some(side)
        }
        _ => None,
    };
    let ingress = match &to {
        PeerRef::Workload(w) => {
            let host = allow_host_ingress && from == PeerRef::Entity(Entity::Host);
            let (side, allows) = cx.judge(w, Direction::Ingress, &from, host);
            if side.reason == Reason::AllowedBy {
                checks.extend(l7_checks(Direction::Ingress, &allows, flow));
            }
            Some(side)
        }
        _ => None,
    };
    let l4_denied = [&egress, &ingress]
        .iter()
        .any(|s| s.as_ref().is_some_and(|s| s.verdict == Verdict::Denied));
    let l7 = l7_result(checks);
    let l7_denied = l7.as_ref().is_some_and(|l| l.verdict == Verdict::Denied);
    Explanation {
        verdict: if l4_denied || l7_denied {
            Verdict::Denied
        } else {
            Verdict::Allowed
        },
        egress,
        ingress,
        l7,
    }
}

/// The [`RuleRef`] of a policy's rule, by its position in the model: for a NetworkPolicy in
/// `ingress` followed by `egress`; for a Cilium policy in the flattened
/// `rules[0].rules ++ rules[1].rules ++ ...`. `None` when there is no such rule.
pub fn rule_ref(policy: &Policy, model_position: usize) -> Option<RuleRef> {
    let spans = rule_spans(policy);
    let span = *spans.get(model_position)?;
    let mut order: Vec<usize> = (0..spans.len()).collect();
    // Stable: rules without real spans (trees built in code) keep model order.
    order.sort_by_key(|&i| spans[i]);
    let rule_index = order.iter().position(|&i| i == model_position)?;
    let meta = policy.meta();
    Some(RuleRef {
        policy_kind: policy.kind(),
        namespace: meta.namespace.value.clone(),
        name: meta.name.value.clone(),
        rule_index,
        span,
    })
}

fn rule_spans(policy: &Policy) -> Vec<Span> {
    match policy {
        Policy::Kubernetes(np) => np
            .ingress
            .iter()
            .chain(&np.egress)
            .map(|r| r.span)
            .collect(),
        Policy::Cilium(cp) => cp
            .rules
            .iter()
            .flat_map(|r| r.rules.iter().map(|p| p.span))
            .collect(),
    }
}

fn policy_label(policy: &Policy) -> String {
    let meta = policy.meta();
    if policy.kind() == PolicyKind::CiliumClusterwideNetworkPolicy {
        format!("{} {}", policy.kind().as_str(), meta.name.value)
    } else {
        format!(
            "{} {}/{}",
            policy.kind().as_str(),
            meta.namespace.value,
            meta.name.value
        )
    }
}

// ------------------------------------------------------------------------------------------------
// Peers
// ------------------------------------------------------------------------------------------------

/// A peer with its workload looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PeerRef<'a> {
    Workload(&'a Workload),
    /// An address that belongs to no workload.
    Ip(IpAddr),
    /// A reserved entity; `world-ipv4` and `world-ipv6` are read as `world`.
    Entity(Entity),
    /// A DNS name (lower case, no trailing dot).
    Fqdn(String),
    /// `Peer::Workload` with an index outside the inventory: matched only by rules that match
    /// every peer.
    Unknown,
}

impl PeerRef<'_> {
    fn workload(&self) -> Option<&Workload> {
        match self {
            PeerRef::Workload(w) => Some(w),
            _ => None,
        }
    }
}

struct Cx<'a> {
    tree: &'a Tree,
    inventory: &'a Inventory,
    flow: &'a Flow,
}

/// The workloads that share `w`'s identity (the same Cilium labels), `w` included. The
/// datapath sees identities, not workloads: an ipBlock holds a peer, and a named port is
/// resolved on a peer, for all workloads of its identity at once (docs/semantics.md).
fn identity_mates<'a>(inventory: &'a Inventory, w: &Workload) -> Vec<&'a Workload> {
    let labels = inventory.cilium_labels(w);
    inventory
        .workloads
        .iter()
        .filter(|o| o.namespace == w.namespace && inventory.cilium_labels(o) == labels)
        .collect()
}

/// One matching allow rule and the ways the flow matched it at L4 (for the L7 decision).
struct AllowMatch<'a> {
    rule: RuleRef,
    entries: Vec<Entry<'a>>,
}

/// How a flow matched an allow rule at L4.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// Without a `toPorts` entry (NetworkPolicy rules, Cilium rules without L4, `icmps`).
    Plain,
    /// Through this `toPorts` entry.
    PortRule(&'a PortRule),
}

impl<'a> Cx<'a> {
    fn peer(&self, peer: &Peer) -> PeerRef<'a> {
        match peer {
            Peer::Workload(i) => match self.inventory.workloads.get(*i) {
                Some(w) => PeerRef::Workload(w),
                None => PeerRef::Unknown,
            },
            // Callers never pass a workload's address as an IP; if one does, it stands for the
            // workload (as `flow.rs` documents).
            Peer::Ip(ip) => match self.inventory.by_ip(*ip) {
                Some(w) => PeerRef::Workload(w),
                None => PeerRef::Ip(*ip),
            },
            // Spec gap: the spec names `world-ipv4`/`world-ipv6` only as selector entities; as
            // peers they are read as `world`.
            Peer::Entity(Entity::WorldIpv4 | Entity::WorldIpv6) => PeerRef::Entity(Entity::World),
            Peer::Entity(e) => PeerRef::Entity(*e),
            Peer::Fqdn(name) => PeerRef::Fqdn(name.trim_end_matches('.').to_ascii_lowercase()),
        }
    }

    // --------------------------------------------------------------------------- selection

    /// A NetworkPolicy selects E for D: its `podSelector` selects E in its own namespace and
    /// its policy types include D.
    fn np_selects(&self, np: &NetworkPolicy, e: &Workload, d: Direction) -> bool {
        np.meta.namespace.value == e.namespace
            && pod_labels_match(&np.pod_selector, e)
            && np.directions().contains(&d)
    }

    /// A Cilium rule's subject selects E: `endpointSelector` against E's Cilium labels, and a
    /// namespaced policy only selects endpoints of its own namespace. `nodeSelector` selects
    /// nodes, never a workload.
    fn cilium_subject_selects(&self, cp: &CiliumPolicy, rule: &CiliumRule, e: &Workload) -> bool {
        match &rule.subject {
            Some(Subject::Endpoints(sel)) => {
                (cp.kind != PolicyKind::CiliumNetworkPolicy
                    || cp.meta.namespace.value == e.namespace)
                    && self.cilium_labels_match(sel, e)
            }
            Some(Subject::Nodes(_)) | None => false,
        }
    }

    /// Selector against a workload's Cilium labels (all of source `k8s`; `reserved:` keys never
    /// match pods).
    fn cilium_labels_match(&self, sel: &Selector, w: &Workload) -> bool {
        let labels = self.inventory.cilium_labels(w);
        selector::matches(sel, |source, key| match source {
            Source::K8s => labels.get(key).map(String::as_str),
            _ => None,
        })
    }

    /// E is enforced in D (see the spec's first bullet list).
    fn enforced(&self, e: &Workload, d: Direction) -> bool {
        self.tree.policies.iter().any(|p| match p {
            Policy::Kubernetes(np) => self.np_selects(np, e, d),
            Policy::Cilium(cp) => cp.rules.iter().any(|rule| {
                let dd = match d {
                    Direction::Ingress => rule.default_deny_ingress,
                    Direction::Egress => rule.default_deny_egress,
                };
                self.cilium_subject_selects(cp, rule, e)
                    && rule.rules.iter().any(|r| r.direction == d)
                    && dd != Some(false)
            }),
        })
    }

    fn selecting_policies(&self, e: &Workload, d: Direction) -> Vec<String> {
        self.tree
            .policies
            .iter()
            .filter(|p| match p {
                Policy::Kubernetes(np) => self.np_selects(np, e, d),
                Policy::Cilium(cp) => cp.rules.iter().any(|rule| {
                    self.cilium_subject_selects(cp, rule, e)
                        && rule.rules.iter().any(|r| r.direction == d)
                }),
            })
            .map(policy_label)
            .collect()
    }

    // --------------------------------------------------------------------------- one side

    /// Judges endpoint `e` in direction `d` against peer `p`. `host_allowed`: rule 3 applies.
    fn judge(
        &self,
        e: &Workload,
        d: Direction,
        p: &PeerRef<'a>,
        host_allowed: bool,
    ) -> (SideResult, Vec<AllowMatch<'a>>) {
        let mut allows: Vec<AllowMatch<'a>> = Vec::new();
        let mut denies: Vec<RuleRef> = Vec::new();
        // The workloads a named port is resolved on: E for ingress; for egress, every workload
        // of the peer's identity.
        let mates: Vec<&Workload> = match d {
            Direction::Ingress => vec![e],
            Direction::Egress => p
                .workload()
                .map(|w| identity_mates(self.inventory, w))
                .unwrap_or_default(),
        };
        let destination: &[&Workload] = &mates;
        for policy in &self.tree.policies {
            match policy {
                Policy::Kubernetes(np) => {
                    if !self.np_selects(np, e, d) {
                        continue;
                    }
                    // Spec gap: the spec states the policy-types condition for enforcement
                    // only; like Kubernetes, rules of a direction the policy types leave out
                    // are ignored too (np_selects checks the direction).
                    let (rules, offset) = match d {
                        Direction::Ingress => (&np.ingress, 0),
                        Direction::Egress => (&np.egress, np.ingress.len()),
                    };
                    for (i, rule) in rules.iter().enumerate() {
                        if self.np_rule_matches(np, rule, p, destination) {
                            if let Some(r) = rule_ref(policy, offset + i) {
                                allows.push(AllowMatch {
                                    rule: r,
                                    entries: vec![Entry::Plain],
                                });
                            }
                        }
                    }
                }
                Policy::Cilium(cp) => {
                    let mut position = 0;
                    for rule in &cp.rules {
                        let selects = self.cilium_subject_selects(cp, rule, e);
                        for r in &rule.rules {
                            let here = position;
                            position += 1;
                            if !selects || r.direction != d {
                                continue;
                            }
                            if !self.cilium_l3_matches(cp, r, p) {
                                continue;
                            }
                            let Some(entries) = self.cilium_l4_matches(r, destination) else {
                                continue;
                            };
                            let Some(rr) = rule_ref(policy, here) else {
                                continue;
                            };
                            if r.deny {
                                denies.push(rr);
                            } else {
                                allows.push(AllowMatch { rule: rr, entries });
                            }
                        }
                    }
                }
            }
        }
        let enforced = self.enforced(e, d);
        // Spec gap: the spec does not order rule 3 against deny rules and allow rules. Here a
        // deny still wins over the host switch, and a matching allow rule decides (with its L7
        // rules) before the switch; the switch only replaces the default deny.
        let (verdict, reason) = if !denies.is_empty() {
            (Verdict::Denied, Reason::DeniedBy)
        } else if !allows.is_empty() {
            (Verdict::Allowed, Reason::AllowedBy)
        } else if host_allowed {
            (Verdict::Allowed, Reason::HostAllowed)
        } else if enforced {
            (Verdict::Denied, Reason::DefaultDeny)
        } else {
            (Verdict::Allowed, Reason::NoPolicy)
        };
        let side = SideResult {
            endpoint: e.index,
            direction: d,
            enforced,
            verdict,
            reason,
            matched_allows: allows.iter().map(|a| a.rule.clone()).collect(),
            matched_denies: denies,
            selecting_policies: self.selecting_policies(e, d),
        };
        (side, allows)
    }

    // --------------------------------------------------------------------------- NetworkPolicy

    fn np_rule_matches(
        &self,
        np: &NetworkPolicy,
        rule: &NpRule,
        p: &PeerRef<'_>,
        destination: &[&Workload],
    ) -> bool {
        // `from`/`to` absent or empty: every peer.
        // Spec gap: the spec says both "every peer" and "`host` and `world` are matched by an
        // empty peer list"; "every peer" is read literally (every entity, IP and DNS name).
        let peers_ok = match &rule.peers {
            None => true,
            Some(peers) if peers.is_empty() => true,
            Some(peers) => peers.iter().any(|peer| self.np_peer_matches(np, peer, p)),
        };
        // `ports` absent or empty: every port and protocol (ICMP included).
        let ports_ok = match &rule.ports {
            None => true,
            Some(ports) if ports.is_empty() => true,
            Some(ports) => ports
                .iter()
                .any(|spec| port_spec_matches(spec, self.flow, destination)),
        };
        peers_ok && ports_ok
    }

    fn np_peer_matches(&self, np: &NetworkPolicy, peer: &NpPeer, p: &PeerRef<'_>) -> bool {
        if let Some(block) = &peer.ip_block {
            // A DNS name's addresses are unknown here: only a /0 block surely holds them.
            return match p {
                PeerRef::Fqdn(_) => block.cidr.value.prefix_len() == 0,
                PeerRef::Ip(ip) => in_ip_block(block, ip),
                PeerRef::Workload(w) => identity_mates(self.inventory, w)
                    .iter()
                    .all(|m| !m.ips.is_empty() && m.ips.iter().all(|ip| in_ip_block(block, ip))),
                PeerRef::Entity(Entity::World) => block.cidr.value.prefix_len() == 0,
                _ => false,
            };
        }
        // Entities, IPs and names never match a selector peer.
        let PeerRef::Workload(w) = p else {
            return false;
        };
        match (&peer.pod_selector, &peer.namespace_selector) {
            (Some(pods), None) => {
                w.namespace == np.meta.namespace.value && pod_labels_match(pods, w)
            }
            (None, Some(namespaces)) => self.namespace_labels_match(namespaces, w),
            (Some(pods), Some(namespaces)) => {
                self.namespace_labels_match(namespaces, w) && pod_labels_match(pods, w)
            }
            // The decoder refuses an empty peer.
            (None, None) => false,
        }
    }

    fn namespace_labels_match(&self, sel: &Selector, w: &Workload) -> bool {
        let empty = BTreeMap::new();
        let labels = self
            .inventory
            .namespace_labels(&w.namespace)
            .unwrap_or(&empty);
        selector::matches(sel, |source, key| match source {
            Source::K8s => labels.get(key).map(String::as_str),
            _ => None,
        })
    }

    // --------------------------------------------------------------------------- Cilium

    /// The L3 part of a Cilium rule (at most one kind of peer per rule; should a tree hold
    /// several, any of them matching is enough).
    fn cilium_l3_matches(&self, cp: &CiliumPolicy, r: &CiliumPeerRule, p: &PeerRef<'_>) -> bool {
        if r.has_no_l3_peer() {
            // No L3 field: with `toPorts` or `icmps` every peer; an entirely empty rule
            // matches nothing.
            return r.to_ports.is_some() || r.icmps.is_some();
        }
        // The decoder reads an empty list (`toEndpoints: []`) as an absent field, as Cilium.
        let endpoints = r.endpoints.as_ref().is_some_and(|sels| {
            sels.iter()
                .any(|sel| self.cilium_endpoint_peer_matches(cp, sel, p))
        });
        let entities = r
            .entities
            .as_ref()
            .is_some_and(|es| es.iter().any(|e| entity_matches(e.value, p)));
        let cidrs = r.cidrs.as_ref().is_some_and(|cs| {
            cs.iter().any(|c| match p {
                // Cilium's CIDR peers never select pods (workload addresses never reach here).
                PeerRef::Ip(ip) => {
                    c.cidr.value.contains(ip) && !c.except.iter().any(|x| x.value.contains(ip))
                }
                // Spec gap: excepts are ignored for the `world` entity (as for ipBlock). A DNS
                // name's addresses are unknown here: only a /0 CIDR surely holds them.
                PeerRef::Entity(Entity::World) | PeerRef::Fqdn(_) => c.cidr.value.prefix_len() == 0,
                _ => false,
            })
        });
        let fqdns = r.fqdns.as_ref().is_some_and(|fs| match p {
            PeerRef::Fqdn(name) => fs.iter().any(|f| fqdn_matches(&f.value, name)),
            _ => false,
        });
        let services = r
            .services
            .as_ref()
            .is_some_and(|ss| ss.iter().any(|s| self.service_matches(cp, s, p)));
        endpoints || entities || cidrs || fqdns || services
    }

    /// `fromEndpoints`/`toEndpoints`: workloads matching the selector; in a namespaced policy
    /// a selector that names no namespace label is limited to the policy's namespace.
    fn cilium_endpoint_peer_matches(
        &self,
        cp: &CiliumPolicy,
        sel: &Selector,
        p: &PeerRef<'_>,
    ) -> bool {
        // Spec gap: `reserved:` selectors (e.g. `reserved:host`) select entities in Cilium; the
        // spec says these fields select workloads only, so they match nothing here.
        let PeerRef::Workload(w) = p else {
            return false;
        };
        let scoped = cp.kind == PolicyKind::CiliumNetworkPolicy && !selector::names_namespace(sel);
        (!scoped || w.namespace == cp.meta.namespace.value) && self.cilium_labels_match(sel, w)
    }

    /// `toServices`: the workloads a Service selects, or for a Service without selector the
    /// addresses of its EndpointSlices.
    fn service_matches(&self, cp: &CiliumPolicy, sref: &ServiceRef, p: &PeerRef<'_>) -> bool {
        let policy_ns = cp.meta.namespace.value.as_str();
        let services: Vec<&policy_lang::model::Service> = match sref {
            // Spec gap: in a clusterwide policy the policy's namespace is empty, so a
            // `k8sService` without `namespace` names no Service.
            ServiceRef::Name { name, namespace } => {
                let ns = namespace.as_ref().map_or(policy_ns, |n| n.value.as_str());
                self.tree
                    .services
                    .iter()
                    .filter(|s| s.meta.name.value == name.value && s.meta.namespace.value == ns)
                    .collect()
            }
            // Spec gap: the spec only describes named Services. Here `k8sServiceSelector`
            // picks the Services whose labels match, in `namespace`, else the policy's
            // namespace (clusterwide: every namespace).
            ServiceRef::Selector {
                selector: sel,
                namespace,
            } => self
                .tree
                .services
                .iter()
                .filter(|s| match namespace {
                    Some(n) => s.meta.namespace.value == n.value,
                    None if cp.kind == PolicyKind::CiliumNetworkPolicy => {
                        s.meta.namespace.value == policy_ns
                    }
                    None => true,
                })
                .filter(|s| {
                    selector::matches(sel, |source, key| match source {
                        Source::K8s => s.meta.labels.get(key).map(|v| v.value.as_str()),
                        _ => None,
                    })
                })
                .collect(),
        };
        services.iter().any(|s| {
            let ns = s.meta.namespace.value.as_str();
            match &s.selector {
                // Spec gap: `selector: {}` is read as a selector that selects every workload of
                // the Service's namespace.
                Some(sel) => p.workload().is_some_and(|w| {
                    w.namespace == ns && sel.iter().all(|(k, v)| w.labels.get(k) == Some(v))
                }),
                // Spec gap: an EndpointSlice address that is a workload's pod IP arrives as that
                // workload; like Cilium's CIDR peers it does not match it.
                None => match p {
                    PeerRef::Ip(ip) => self.tree.endpoint_slices.iter().any(|e| {
                        e.meta.namespace.value == ns
                            && e.service_name.as_deref() == Some(s.meta.name.value.as_str())
                            && e.addresses.contains(ip)
                    }),
                    _ => false,
                },
            }
        })
    }

    /// The L4 part of a Cilium rule: `None` when the flow's protocol and port do not match,
    /// else how they matched.
    fn cilium_l4_matches(
        &self,
        r: &'a CiliumPeerRule,
        destination: &[&Workload],
    ) -> Option<Vec<Entry<'a>>> {
        if r.to_ports.is_none() && r.icmps.is_none() {
            // No `toPorts` and no `icmps`: every port and protocol.
            return Some(vec![Entry::Plain]);
        }
        let mut entries = Vec::new();
        if let Some(icmps) = &r.icmps {
            let hit = icmps.iter().any(|f| {
                f.family.protocol() == self.flow.protocol
                    && u16::from(f.icmp_type.value) == self.flow.port
            });
            if hit {
                entries.push(Entry::Plain);
            }
        }
        // Spec gap: `toPorts: []` is read literally as no port (the rule matches nothing);
        // Cilium treats an empty list like an absent field.
        for pr in r.to_ports.iter().flatten() {
            if port_rule_matches(pr, self.flow, destination) {
                entries.push(Entry::PortRule(pr));
            }
        }
        (!entries.is_empty()).then_some(entries)
    }
}

// ------------------------------------------------------------------------------------------------
// Labels, addresses, entities, ports
// ------------------------------------------------------------------------------------------------

/// A Kubernetes selector against a workload's pod labels.
fn pod_labels_match(sel: &Selector, w: &Workload) -> bool {
    selector::matches(sel, |source, key| match source {
        Source::K8s => w.labels.get(key).map(String::as_str),
        _ => None,
    })
}

fn in_ip_block(block: &IpBlock, ip: &IpAddr) -> bool {
    block.cidr.value.contains(ip) && !block.except.iter().any(|x| x.value.contains(ip))
}

fn fqdn_matches(m: &FqdnMatch, name: &str) -> bool {
    m.matches(name)
}

/// `fromEntities`/`toEntities`.
fn entity_matches(selector_entity: Entity, p: &PeerRef<'_>) -> bool {
    match selector_entity {
        Entity::All => true,
        Entity::Cluster => matches!(
            p,
            PeerRef::Workload(_)
                | PeerRef::Entity(
                    Entity::Host
                        | Entity::RemoteNode
                        | Entity::Health
                        | Entity::Init
                        | Entity::KubeApiserver
                        | Entity::Ingress
                        | Entity::Unmanaged
                )
        ),
        // Spec gap: `world-ipv4` and `world-ipv6` match exactly what `world` matches (IP peers
        // of both families), as the spec lists them together.
        Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 => {
            // A DNS name's addresses are Internet addresses too.
            matches!(
                p,
                PeerRef::Ip(_) | PeerRef::Entity(Entity::World) | PeerRef::Fqdn(_)
            )
        }
        Entity::None => false,
        other => *p == PeerRef::Entity(other),
    }
}

/// A protocol as written covers the flow's protocol (`ANY` = TCP, UDP and SCTP).
fn protocol_covers(written: Protocol, flow: Protocol) -> bool {
    match written {
        Protocol::Any => matches!(flow, Protocol::Tcp | Protocol::Udp | Protocol::Sctp),
        p => p == flow,
    }
}

/// One `ports` entry: protocol, and every port, a number or range, or a named port resolved on
/// the destination workload (never matching a non-workload destination).
fn port_spec_matches(spec: &PortSpec, flow: &Flow, destination: &[&Workload]) -> bool {
    if !protocol_covers(spec.protocol.value, flow.protocol) {
        return false;
    }
    match &spec.port.value {
        Port::Any => true,
        Port::Number(start) => {
            let end = spec.end_port.map_or(*start, |e| e.value);
            (*start..=end).contains(&flow.port)
        }
        // Spec gap: the container port must also carry the flow's protocol (for `ANY`, the
        // name is resolved for the flow's protocol).
        Port::Name(name) => destination
            .iter()
            .any(|w| w.has_named_port(name, flow.protocol, flow.port)),
    }
}

/// One `toPorts` entry.
fn port_rule_matches(pr: &PortRule, flow: &Flow, destination: &[&Workload]) -> bool {
    if pr.ports.is_empty() {
        // Spec gap: a `toPorts` entry without `ports` (only `rules`) is read as every port of
        // TCP, UDP and SCTP.
        return protocol_covers(Protocol::Any, flow.protocol);
    }
    pr.ports
        .iter()
        .any(|spec| port_spec_matches(spec, flow, destination))
}

// ------------------------------------------------------------------------------------------------
// L7
// ------------------------------------------------------------------------------------------------

/// HTTP and DNS rules that apply on one allowing side. They apply when every way the flow
/// matched every matching allow rule goes through a `toPorts` entry carrying them; a plain L4
/// allow of the same port wins (all requests pass).
fn l7_checks(direction: Direction, allows: &[AllowMatch<'_>], flow: &Flow) -> Vec<L7Check> {
    let mut checks = Vec::new();
    for protocol in [L7Protocol::Http, L7Protocol::Dns] {
        // Spec gap: `rules: {http: []}` (an empty list) carries no HTTP rule: it is plain.
        let carries = |pr: &PortRule| match protocol {
            L7Protocol::Http => pr.http.as_ref().is_some_and(|h| !h.is_empty()),
            L7Protocol::Dns => pr.dns.as_ref().is_some_and(|d| !d.is_empty()),
        };
        let all_through_l7 = !allows.is_empty()
            && allows.iter().all(|a| {
                a.entries
                    .iter()
                    .all(|e| matches!(e, Entry::PortRule(pr) if carries(pr)))
            });
        if !all_through_l7 {
            continue;
        }
        let rules: Vec<RuleRef> = allows.iter().map(|a| a.rule.clone()).collect();
        let port_rules: Vec<&PortRule> = allows
            .iter()
            .flat_map(|a| a.entries.iter())
            .filter_map(|e| match e {
                Entry::PortRule(pr) => Some(*pr),
                Entry::Plain => None,
            })
            .collect();
        let (candidates, outcome) = match protocol {
            L7Protocol::Http => {
                let http: Vec<&HttpRule> = port_rules
                    .iter()
                    .flat_map(|pr| pr.http.iter().flatten())
                    .collect();
                let outcome = match &flow.http {
                    None => L7Outcome::NotChecked,
                    Some(req) => match http.iter().find(|h| http_rule_matches(h, req)) {
                        Some(h) => L7Outcome::Allowed { by: h.span },
                        None => L7Outcome::Denied,
                    },
                };
                (http.iter().map(|h| h.span).collect(), outcome)
            }
            L7Protocol::Dns => {
                let dns: Vec<&policy_lang::Spanned<FqdnMatch>> = port_rules
                    .iter()
                    .flat_map(|pr| pr.dns.iter().flatten())
                    .collect();
                let outcome = match &flow.dns {
                    None => L7Outcome::NotChecked,
                    Some(name) => match dns.iter().find(|m| m.value.matches(name)) {
                        Some(m) => L7Outcome::Allowed { by: m.span },
                        None => L7Outcome::Denied,
                    },
                };
                (dns.iter().map(|m| m.span).collect(), outcome)
            }
        };
        checks.push(L7Check {
            direction,
            protocol,
            rules,
            candidates,
            outcome,
        });
    }
    checks
}

fn l7_result(checks: Vec<L7Check>) -> Option<L7Result> {
    if checks.is_empty() {
        return None;
    }
    let denied = |p| {
        checks
            .iter()
            .any(|c| c.protocol == p && c.outcome == L7Outcome::Denied)
    };
    let (verdict, reason) = if denied(L7Protocol::Http) {
        (Verdict::Denied, "denied at L7 (HTTP 403)".to_owned())
    } else if denied(L7Protocol::Dns) {
        (Verdict::Denied, "denied at L7 (DNS REFUSED)".to_owned())
    } else {
        let parts: Vec<String> = checks
            .iter()
            .map(|c| {
                let what = match c.protocol {
                    L7Protocol::Http => "HTTP",
                    L7Protocol::Dns => "DNS",
                };
                match c.outcome {
                    L7Outcome::NotChecked => format!(
                        "{what} rules apply on {}; the flow carries no request, so the L4 verdict stands",
                        c.direction.as_str()
                    ),
                    _ => format!("allowed at L7 ({what} rule matched on {})", c.direction.as_str()),
                }
            })
            .collect();
        (Verdict::Allowed, parts.join("; "))
    };
    Some(L7Result {
        verdict,
        reason,
        checks,
    })
}

/// `^(?:pattern)$` against the whole value; a pattern that does not compile matches nothing.
fn full_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

/// One HTTP rule: method, path and host are regular expressions over the whole value; each
/// `headers` entry `Name` must be present and `Name: value` must be equal.
fn http_rule_matches(rule: &HttpRule, req: &HttpRequest) -> bool {
    let method = rule
        .method
        .as_ref()
        .is_none_or(|m| full_match(&m.value, &req.method));
    let path = rule
        .path
        .as_ref()
        .is_none_or(|p| full_match(&p.value, &req.path));
    let host = rule
        .host
        .as_ref()
        .is_none_or(|h| req.host.as_deref().is_some_and(|v| full_match(&h.value, v)));
    // Spec gap: header names compare case-insensitively (HTTP), values exactly. An entry
    // parses as `formats::http_header` does (split at the first space, trailing ':' dropped).
    let headers = rule
        .headers
        .iter()
        .all(|entry| match formats::http_header(&entry.value) {
            Ok(h) => req
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(h.name) && h.value.is_none_or(|x| v == x)),
            Err(_) => false,
        });
    method && path && host && headers
}
