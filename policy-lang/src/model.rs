//! Typed Kubernetes and Cilium objects: policies and the workload inventory, with spans.

use crate::source::{Span, Spanned};
use std::collections::BTreeMap;

pub type Str = Spanned<String>;

/// The identity of an object as the API server keys it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: Str,
    /// `default` when the object names none (cluster-scoped kinds keep it empty).
    pub namespace: Str,
    pub labels: Labels,
    pub owner_references: Vec<OwnerReference>,
    /// The whole object.
    pub span: Span,
    /// The `kind` value.
    pub kind_span: Span,
}

/// Labels in key order, each value with its span. A sorted vector: workloads have a handful
/// of labels, and tens of thousands of workloads would pay a B-tree node each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Vec<(String, Str)>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&Str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Str)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Str)> for Labels {
    /// Later duplicates win, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, Str)>>(iter: I) -> Self {
        let mut v: Vec<(String, Str)> = iter.into_iter().collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v.shrink_to_fit();
        Labels(v)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub controller: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: Str,
    pub operator: Spanned<Operator>,
    pub values: Vec<Str>,
}

/// A Kubernetes `LabelSelector` (Cilium's `EndpointSelector` has the same shape).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub match_labels: Vec<(Str, Str)>,
    pub match_expressions: Vec<Requirement>,
    pub span: Span,
}

impl Selector {
    /// `{}`: selects everything in scope.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

pub use crate::formats::{Entity, IcmpFamily, Protocol};

/// A port as written: a number, a name resolved per destination pod, or every port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    Any,
    Number(u16),
    Name(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub protocol: Spanned<Protocol>,
    /// False when the protocol is the kind's default (TCP upstream, ANY in Cilium).
    pub protocol_given: bool,
    pub port: Spanned<Port>,
    pub end_port: Option<Spanned<u16>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpBlock {
    pub cidr: Spanned<ipnet::IpNet>,
    pub except: Vec<Spanned<ipnet::IpNet>>,
    pub span: Span,
}

// ---------------------------------------------------------------- NetworkPolicy

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One `from`/`to` entry of a NetworkPolicy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpPeer {
    pub pod_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    pub ip_block: Option<IpBlock>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpRule {
    /// `None`: the field is absent (all peers); `Some(vec![])`: also all peers, as upstream.
    pub peers: Option<Vec<NpPeer>>,
    /// `None` or empty: all ports.
    pub ports: Option<Vec<PortSpec>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub meta: Meta,
    pub pod_selector: Selector,
    /// Explicit `policyTypes`, or `None` for the upstream default.
    pub policy_types: Option<Vec<Spanned<Direction>>>,
    pub ingress: Vec<NpRule>,
    pub egress: Vec<NpRule>,
    /// Whether the `egress` key is present (decides the default policy types).
    pub has_egress_key: bool,
}

impl NetworkPolicy {
    /// The directions this policy makes default-deny for the pods it selects.
    pub fn directions(&self) -> Vec<Direction> {
        match &self.policy_types {
            Some(types) => {
                let mut d: Vec<Direction> = types.iter().map(|t| t.value).collect();
                d.sort();
                d.dedup();
                d
            }
            None if self.has_egress_key => vec![Direction::Ingress, Direction::Egress],
            None => vec![Direction::Ingress],
        }
    }
}

// ---------------------------------------------------------------- Cilium

/// `matchName` or `matchPattern` of `toFQDNs` and `rules.dns`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FqdnMatch {
    Name(String),
    Pattern(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    pub method: Option<Str>,
    pub path: Option<Str>,
    pub host: Option<Str>,
    /// `Name` (must be present) or `Name: value`.
    pub headers: Vec<Str>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    pub ports: Vec<PortSpec>,
    pub http: Option<Vec<HttpRule>>,
    pub dns: Option<Vec<Spanned<FqdnMatch>>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpField {
    pub family: IcmpFamily,
    pub icmp_type: Spanned<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrRule {
    pub cidr: Spanned<ipnet::IpNet>,
    pub except: Vec<Spanned<ipnet::IpNet>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceRef {
    Name {
        name: Str,
        namespace: Option<Str>,
    },
    Selector {
        selector: Selector,
        namespace: Option<Str>,
    },
}

/// One entry of `ingress`, `ingressDeny`, `egress` or `egressDeny`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumPeerRule {
    pub direction: Direction,
    pub deny: bool,
    pub endpoints: Option<Vec<Selector>>,
    pub entities: Option<Vec<Spanned<Entity>>>,
    /// `fromCIDR`/`toCIDR` (no except) and `fromCIDRSet`/`toCIDRSet`.
    pub cidrs: Option<Vec<CidrRule>>,
    pub fqdns: Option<Vec<Spanned<FqdnMatch>>>,
    pub services: Option<Vec<ServiceRef>>,
    pub to_ports: Option<Vec<PortRule>>,
    pub icmps: Option<Vec<IcmpField>>,
    pub span: Span,
}

impl CiliumPeerRule {
    /// True when the rule names no L3 peer at all (then it applies to every peer for
    /// its ports, as upstream).
    pub fn has_no_l3_peer(&self) -> bool {
        self.endpoints.is_none()
            && self.entities.is_none()
            && self.cidrs.is_none()
            && self.fqdns.is_none()
            && self.services.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Endpoints(Selector),
    Nodes(Selector),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumRule {
    pub subject: Option<Subject>,
    pub rules: Vec<CiliumPeerRule>,
    pub default_deny_ingress: Option<bool>,
    pub default_deny_egress: Option<bool>,
    pub description: Option<String>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumPolicy {
    pub kind: PolicyKind,
    pub meta: Meta,
    /// `spec` first, then each of `specs`.
    pub rules: Vec<CiliumRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    Kubernetes(NetworkPolicy),
    Cilium(CiliumPolicy),
}

impl Policy {
    pub fn meta(&self) -> &Meta {
        match self {
            Policy::Kubernetes(p) => &p.meta,
            Policy::Cilium(p) => &p.meta,
        }
    }

    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Kubernetes(_) => PolicyKind::NetworkPolicy,
            Policy::Cilium(p) => p.kind,
        }
    }
}

// ---------------------------------------------------------------- inventory

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub meta: Meta,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        Some(match kind {
            "Pod" => WorkloadKind::Pod,
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

/// A Pod, or a controller's pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub meta: Meta,
    /// The labels its pods carry (the Pod's own, or the template's).
    pub pod_labels: Labels,
    pub ports: Vec<ContainerPort>,
    /// `status.podIP` / `status.podIPs` of a Pod.
    pub ips: Vec<std::net::IpAddr>,
    pub host_network: bool,
    pub service_account: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: Option<Port>,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub meta: Meta,
    /// `None`: a service without selector (endpoints managed by hand).
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<ServicePort>,
    pub cluster_ips: Vec<std::net::IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    pub meta: Meta,
    pub service_name: Option<String>,
    pub addresses: Vec<std::net::IpAddr>,
    pub ports: Vec<ServicePort>,
}

/// Every object of a tree that the compiler reads.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub policies: Vec<Policy>,
    pub namespaces: Vec<Namespace>,
    pub workloads: Vec<Workload>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
}

impl FqdnMatch {
    /// Whether a DNS name (any case, optional trailing dot) is selected. `*` stands for zero or
    /// more DNS characters within one label; a leading `**.` for one or more whole labels; a
    /// pattern of stars alone for every name.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            FqdnMatch::Name(n) => n.trim_end_matches('.') == name,
            FqdnMatch::Pattern(p) => {
                let p = p.trim_end_matches('.');
                if p.chars().all(|c| c == '*' || c == '.') {
                    return true;
                }
                if let Some(rest) = p.strip_prefix("**.") {
                    // One or more labels, then the rest.
                    return name
                        .char_indices()
                        .filter(|(_, c)| *c == '.')
                        .any(|(i, _)| {
                            i > 0 && glob_label_match(rest.as_bytes(), &name.as_bytes()[i + 1..])
                        });
                }
                glob_label_match(p.as_bytes(), name.as_bytes())
            }
        }
    }
}

/// `*` matches zero or more bytes other than `.`.
fn glob_label_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob_label_match(rest, &text[i..]) {
                    return true;
                }
                match text.get(i) {
                    Some(b'.') | None => return false,
                    Some(_) => i += 1,
                }
            }
        }
        Some((c, rest)) => text.first() == Some(c) && glob_label_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod fqdn_tests {
    use super::FqdnMatch;

    #[test]
    fn patterns_match_within_labels() {
        let p = |s: &str| FqdnMatch::Pattern(s.into());
        assert!(p("*.example.com").matches("api.example.com"));
        assert!(p("*.example.com").matches("API.Example.com."));
        assert!(!p("*.example.com").matches("a.b.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(p("**.example.com").matches("a.b.example.com"));
        assert!(!p("**.example.com").matches("example.com"));
        assert!(p("api-*.example.com").matches("api-v2.example.com"));
        assert!(p("*").matches("anything.at.all"));
        assert!(FqdnMatch::Name("example.com".into()).matches("example.com."));
        assert!(!FqdnMatch::Name("example.com".into()).matches("www.example.com"));
    }
}
