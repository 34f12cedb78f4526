//! Checks across objects: duplicate policies, subjects that select nothing, allows that a deny
//! makes dead, and egress open to the whole Internet.

use crate::diagnostic::{Code, Diagnostic};
use crate::model::*;
use crate::selector::{self, Source};
use crate::source::{SourceMap, Span};
use std::collections::{HashMap, HashSet};

pub fn validate(tree: &Tree, sources: &mut SourceMap, diags: &mut Vec<Diagnostic>) {
    duplicates(tree, sources, diags);
    // A policy that already has an error gets no semantic warnings: they would only repeat
    // the same mistake in other words.
    let errors: Vec<Span> = diags
        .iter()
        .filter(|d| d.severity == crate::Severity::Error)
        .filter_map(|d| d.span())
        .collect();
    let clean = |meta: &Meta| {
        !errors.iter().any(|e| {
            e.file == meta.span.file && e.start >= meta.span.start && e.end <= meta.span.end
        })
    };
    let sound: Vec<&Policy> = tree.policies.iter().filter(|p| clean(p.meta())).collect();
    if !tree.workloads.is_empty() {
        selects_nothing(&sound, tree, diags);
    }
    for policy in &sound {
        match policy {
            Policy::Kubernetes(np) => np_egress_to_world(np, diags),
            Policy::Cilium(cp) => {
                for rule in &cp.rules {
                    cilium_egress_to_world(rule, diags);
                }
            }
        }
    }
    shadowed_by_deny(&sound, sources, diags);
}

/// `file:line` of a span, reading the file's text again if it was not kept.
fn line_of(sources: &mut SourceMap, span: Span) -> String {
    sources.load_text(span.file);
    match sources.locate(span) {
        Some((f, start, _)) => format!("{}:{}", f.path.display(), start.line),
        None => String::from("?"),
    }
}

fn duplicates(tree: &Tree, sources: &mut SourceMap, diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(PolicyKind, &str, &str), Span> = HashMap::new();
    for p in &tree.policies {
        let meta = p.meta();
        let key = (
            p.kind(),
            meta.namespace.value.as_str(),
            meta.name.value.as_str(),
        );
        match seen.get(&key) {
            Some(first) => {
                let scope = if meta.namespace.value.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace `{}`", meta.namespace.value)
                };
                diags.push(
                    Diagnostic::new(
                        Code::DuplicatePolicy,
                        meta.name.span,
                        format!(
                            "{} `{}`{scope} is defined twice",
                            p.kind().as_str(),
                            meta.name.value
                        ),
                    )
                    .with_help(format!(
                        "the first definition is at {}; rename one of them or merge their rules",
                        line_of(sources, *first)
                    )),
                );
            }
            None => {
                seen.insert(key, meta.name.span);
            }
        }
    }
}

/// A workload with what Cilium derives its labels from.
struct Endpoint<'t> {
    namespace: &'t str,
    pod: &'t Labels,
    namespace_labels: Option<&'t Labels>,
    service_account: &'t str,
}

impl<'t> Endpoint<'t> {
    /// The value of a bare key among the labels Cilium gives the pod (all of source `k8s`).
    fn cilium_label(&self, key: &str) -> Option<&'t str> {
        match key {
            selector::NAMESPACE_LABEL => Some(self.namespace),
            selector::SERVICE_ACCOUNT_LABEL => Some(self.service_account),
            selector::CLUSTER_LABEL => Some("default"),
            _ => match key.strip_prefix(selector::NAMESPACE_LABELS_PREFIX) {
                Some(selector::NAMESPACE_NAME_LABEL) => Some(self.namespace),
                Some(ns_key) => self.namespace_labels?.get(ns_key).map(|v| v.value.as_str()),
                None => self.pod.get(key).map(|v| v.value.as_str()),
            },
        }
    }
}

fn endpoints(tree: &Tree) -> Vec<Endpoint<'_>> {
    let ns_labels: HashMap<&str, &Labels> = tree
        .namespaces
        .iter()
        .map(|n| (n.meta.name.value.as_str(), &n.meta.labels))
        .collect();
    tree.workloads
        .iter()
        .filter(|w| !w.host_network)
        .map(|w| {
            let namespace = w.meta.namespace.value.as_str();
            Endpoint {
                namespace,
                pod: &w.pod_labels,
                namespace_labels: ns_labels.get(namespace).copied(),
                service_account: w.service_account.as_deref().unwrap_or("default"),
            }
        })
        .collect()
}

/// The bare key of a `matchLabels` key that `selects_nothing` looks up in its label index: a
/// bare or `k8s:` key that Cilium does not derive from the namespace or service account.
fn indexed_key(key: &str) -> Option<&str> {
    let (source, bare) = selector::split_source(key);
    let derived = bare.starts_with(selector::NAMESPACE_LABELS_PREFIX)
        || bare == selector::SERVICE_ACCOUNT_LABEL
        || bare == selector::CLUSTER_LABEL;
    match source {
        Source::Any | Source::K8s if !derived => Some(bare),
        _ => None,
    }
}

/// The selectors that `selects_nothing` checks.
fn subject_selectors<'p>(policies: &[&'p Policy]) -> Vec<&'p Selector> {
    let mut selectors = Vec::new();
    for policy in policies {
        match policy {
            Policy::Kubernetes(np) => selectors.push(&np.pod_selector),
            Policy::Cilium(cp) => {
                selectors.extend(cp.rules.iter().filter_map(|rule| match &rule.subject {
                    Some(Subject::Endpoints(sel)) => Some(sel),
                    _ => None,
                }))
            }
        }
    }
    selectors
}

/// The shortest candidate list a selector's `matchLabels` allows, else the whole scope
/// (borrowed: a cluster-wide scope holds every workload).
fn narrowest<'x>(
    sel: &Selector,
    scope: &'x [usize],
    by_label: &'x HashMap<&str, HashMap<&str, Vec<usize>>>,
) -> &'x [usize] {
    let mut best: Option<&[usize]> = None;
    for (k, v) in &sel.match_labels {
        let (source, bare) = selector::split_source(&k.value);
        // Keys derived from the namespace or service account are not indexed: no pruning.
        let derived = bare.starts_with(selector::NAMESPACE_LABELS_PREFIX)
            || bare == selector::SERVICE_ACCOUNT_LABEL
            || bare == selector::CLUSTER_LABEL;
        let list: &[usize] = match source {
            _ if derived => continue,
            Source::Any | Source::K8s => by_label
                .get(bare)
                .and_then(|values| values.get(v.value.as_str()))
                .map_or(&[], Vec::as_slice),
            _ => &[],
        };
        if best.is_none_or(|b| list.len() < b.len()) {
            best = Some(list);
        }
    }
    match best {
        Some(list) if list.len() < scope.len() => list,
        _ => scope,
    }
}

fn selects_nothing(policies: &[&Policy], tree: &Tree, diags: &mut Vec<Diagnostic>) {
    let eps = endpoints(tree);
    // Candidate lists so that a selector is tried against a few workloads, not all of them.
    // Only label keys that some selector can narrow by are indexed.
    let keys: HashSet<&str> = subject_selectors(policies)
        .into_iter()
        .flat_map(|sel| sel.match_labels.iter())
        .filter_map(|(k, _)| indexed_key(&k.value))
        .collect();
    let mut by_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
    // Label key, then value, to workloads.
    let mut by_label: HashMap<&str, HashMap<&str, Vec<usize>>> = HashMap::new();
    let namespace_indexed = keys.contains(selector::NAMESPACE_LABEL);
    for (i, e) in eps.iter().enumerate() {
        by_namespace.entry(e.namespace).or_default().push(i);
        for (k, v) in e.pod.iter() {
            if keys.contains(k.as_str()) {
                by_label
                    .entry(k.as_str())
                    .or_default()
                    .entry(v.value.as_str())
                    .or_default()
                    .push(i);
            }
        }
        if namespace_indexed {
            by_label
                .entry(selector::NAMESPACE_LABEL)
                .or_default()
                .entry(e.namespace)
                .or_default()
                .push(i);
        }
    }
    let all: Vec<usize> = (0..eps.len()).collect();
    let empty: Vec<usize> = Vec::new();
    for policy in policies {
        match policy {
            Policy::Kubernetes(np) => {
                let ns = np.meta.namespace.value.as_str();
                let scope = by_namespace.get(ns).unwrap_or(&empty);
                let any = narrowest(&np.pod_selector, scope, &by_label)
                    .iter()
                    .any(|&i| {
                        let e = &eps[i];
                        e.namespace == ns
                            && selector::matches(&np.pod_selector, |src, k| match src {
                                Source::K8s => e.pod.get(k).map(|v| v.value.as_str()),
                                _ => None,
                            })
                    });
                if !any {
                    diags.push(nothing_selected(
                        np.pod_selector.span,
                        "podSelector",
                        &np.meta,
                        policy.kind(),
                    ));
                }
            }
            Policy::Cilium(cp) => {
                let ns = cp.meta.namespace.value.as_str();
                let namespaced = cp.kind == PolicyKind::CiliumNetworkPolicy;
                let scope = if namespaced {
                    by_namespace.get(ns).unwrap_or(&empty)
                } else {
                    &all
                };
                for rule in &cp.rules {
                    let Some(Subject::Endpoints(sel)) = &rule.subject else {
                        continue;
                    };
                    let any = narrowest(sel, scope, &by_label).iter().any(|&i| {
                        let e = &eps[i];
                        (!namespaced || e.namespace == ns)
                            && selector::matches(sel, |src, k| match src {
                                Source::K8s => e.cilium_label(k),
                                _ => None,
                            })
                    });
                    if !any {
                        diags.push(nothing_selected(
                            sel.span,
                            "endpointSelector",
                            &cp.meta,
                            policy.kind(),
                        ));
                    }
                }
            }
        }
    }
}

fn nothing_selected(span: Span, field: &str, meta: &Meta, kind: PolicyKind) -> Diagnostic {
    let scope = if kind == PolicyKind::CiliumClusterwideNetworkPolicy {
        "in the tree".to_owned()
    } else {
        format!("in namespace `{}`", meta.namespace.value)
    };
    Diagnostic::new(
        Code::SelectsNothing,
        span,
        format!(
            "`{field}` of {} `{}` selects no workload {scope}",
            kind.as_str(),
            meta.name.value
        ),
    )
    .with_help(
        "check the labels against the workloads' pod template labels, and the policy's namespace",
    )
}

fn is_all_addresses(net: &ipnet::IpNet) -> bool {
    net.prefix_len() == 0
}

fn all_ports(ports: &Option<Vec<PortSpec>>) -> bool {
    ports.as_ref().is_none_or(|p| {
        p.is_empty()
            || p.iter()
                .any(|s| s.port.value == Port::Any && s.protocol.value == Protocol::Any)
    })
}

fn world_warning(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(Code::EgressToWorld, span, format!("egress to {what} is allowed on every port"))
        .with_help("restrict it with `toPorts`/`ports` (for example 443/TCP), or name the destinations with `toFQDNs` or narrower CIDRs")
}

fn np_egress_to_world(np: &NetworkPolicy, diags: &mut Vec<Diagnostic>) {
    for rule in &np.egress {
        let ports_open = rule.ports.as_ref().is_none_or(|p| p.is_empty());
        if !ports_open {
            continue;
        }
        for peer in rule.peers.iter().flatten() {
            if let Some(ip) = &peer.ip_block {
                if is_all_addresses(&ip.cidr.value) && ip.except.is_empty() {
                    diags.push(world_warning(
                        ip.cidr.span,
                        &format!("`{}` (the whole Internet)", ip.cidr.value),
                    ));
                }
            }
        }
    }
}

fn cilium_egress_to_world(rule: &CiliumRule, diags: &mut Vec<Diagnostic>) {
    for r in rule
        .rules
        .iter()
        .filter(|r| r.direction == Direction::Egress && !r.deny)
    {
        if r.icmps.is_some() {
            continue;
        }
        let ports_open = match &r.to_ports {
            None => true,
            Some(rules) => {
                rules.is_empty()
                    || rules.iter().any(|pr| {
                        all_ports(&Some(pr.ports.clone())) && pr.http.is_none() && pr.dns.is_none()
                    })
            }
        };
        if !ports_open {
            continue;
        }
        for e in r.entities.iter().flatten() {
            if matches!(
                e.value,
                Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 | Entity::All
            ) {
                diags.push(world_warning(
                    e.span,
                    &format!("the `{}` entity", e.value.as_str()),
                ));
            }
        }
        for c in r.cidrs.iter().flatten() {
            if is_all_addresses(&c.cidr.value) && c.except.is_empty() {
                diags.push(world_warning(
                    c.cidr.span,
                    &format!("`{}` (the whole Internet)", c.cidr.value),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- shadowed allows

/// A port range on one protocol, or a named port.
fn port_covers(deny: &PortSpec, allow: &PortSpec) -> bool {
    let proto_ok =
        deny.protocol.value == Protocol::Any || deny.protocol.value == allow.protocol.value;
    if !proto_ok {
        return false;
    }
    let range = |p: &PortSpec| match &p.port.value {
        Port::Any => Some((0u16, u16::MAX)),
        Port::Number(n) => Some((*n, p.end_port.map(|e| e.value).unwrap_or(*n))),
        Port::Name(_) => None,
    };
    match (range(deny), range(allow)) {
        (Some((ds, de)), Some((a_s, ae))) => ds <= a_s && ae <= de,
        (Some((0, u16::MAX)), None) => true,
        (None, None) => deny.port.value == allow.port.value,
        _ => false,
    }
}

fn l4_covers(deny: &CiliumPeerRule, allow: &CiliumPeerRule) -> bool {
    let deny_ports: Vec<&PortSpec> = deny
        .to_ports
        .iter()
        .flatten()
        .flat_map(|r| r.ports.iter())
        .collect();
    let deny_all = deny.icmps.is_none() && (deny.to_ports.is_none() || deny_ports.is_empty());
    if deny_all {
        return true;
    }
    if allow.icmps.is_some() {
        let denied: Vec<&IcmpField> = deny.icmps.iter().flatten().collect();
        return allow.icmps.iter().flatten().all(|a| {
            denied
                .iter()
                .any(|d| d.family == a.family && d.icmp_type.value == a.icmp_type.value)
        });
    }
    let allow_ports: Vec<&PortSpec> = allow
        .to_ports
        .iter()
        .flatten()
        .flat_map(|r| r.ports.iter())
        .collect();
    if allow_ports.is_empty() {
        return false;
    }
    allow_ports
        .iter()
        .all(|a| deny_ports.iter().any(|d| port_covers(d, a)))
}

fn l3_covers(deny: &CiliumPeerRule, allow: &CiliumPeerRule) -> bool {
    let deny_entities: Vec<Entity> = deny.entities.iter().flatten().map(|e| e.value).collect();
    if deny_entities.contains(&Entity::All) || (deny.has_no_l3_peer() && deny.to_ports.is_some()) {
        return true;
    }
    if allow.has_no_l3_peer() {
        return false;
    }
    let endpoints_ok = allow.endpoints.iter().flatten().all(|a| {
        deny.endpoints.iter().flatten().any(|d| {
            d.is_empty()
                || d.match_labels == a.match_labels && d.match_expressions == a.match_expressions
        }) || deny_entities.contains(&Entity::Cluster)
    });
    let entities_ok = allow.entities.iter().flatten().all(|a| {
        deny_entities.contains(&a.value)
            || (deny_entities.contains(&Entity::World)
                && matches!(a.value, Entity::WorldIpv4 | Entity::WorldIpv6))
    });
    let cidrs_ok = allow.cidrs.iter().flatten().all(|a| {
        deny.cidrs.iter().flatten().any(|d| {
            crate::formats::cidr_contains(&d.cidr.value, &a.cidr.value)
                && d.except.iter().all(|e| {
                    !crate::formats::cidr_contains(&e.value, &a.cidr.value)
                        && !crate::formats::cidr_contains(&a.cidr.value, &e.value)
                })
        })
    });
    let fqdns_ok = allow.fqdns.is_none();
    let services_ok = allow.services.is_none();
    endpoints_ok && entities_ok && cidrs_ok && fqdns_ok && services_ok
}

/// A rule subject's scope and `matchLabels`.
type SubjectKey<'p> = (&'p str, &'p [(Str, Str)]);

fn shadowed_by_deny(policies: &[&Policy], sources: &mut SourceMap, diags: &mut Vec<Diagnostic>) {
    // Rules with the same subject in the same scope apply to the same endpoints.
    let mut by_subject: Vec<(&str, &Selector, Vec<&CiliumPeerRule>)> = Vec::new();
    // Positions in `by_subject` by scope and `matchLabels`: a linear search would be
    // quadratic in the number of Cilium policies.
    let mut index: HashMap<SubjectKey<'_>, Vec<usize>> = HashMap::new();
    for p in policies {
        let Policy::Cilium(cp) = p else { continue };
        let scope = cp.meta.namespace.value.as_str();
        for rule in &cp.rules {
            let Some(Subject::Endpoints(sel)) = &rule.subject else {
                continue;
            };
            let same = index
                .entry((scope, sel.match_labels.as_slice()))
                .or_default();
            match same
                .iter()
                .find(|&&i| by_subject[i].1.match_expressions == sel.match_expressions)
            {
                Some(&i) => by_subject[i].2.extend(rule.rules.iter()),
                None => {
                    same.push(by_subject.len());
                    by_subject.push((scope, sel, rule.rules.iter().collect()));
                }
            }
        }
    }
    for (_, _, rules) in by_subject {
        for allow in rules.iter().filter(|r| !r.deny) {
            let empty = allow.has_no_l3_peer() && allow.to_ports.is_none() && allow.icmps.is_none();
            if empty {
                continue;
            }
            if let Some(deny) = rules.iter().find(|d| {
                d.deny
                    && d.direction == allow.direction
                    && l3_covers(d, allow)
                    && l4_covers(d, allow)
            }) {
                sources.load_text(allow.span.file);
                diags.push(
                    Diagnostic::new(
                        Code::ShadowedByDeny,
                        crate::decode::head_span(allow.span, sources),
                        format!("this {} allow rule can never match: a deny rule covers all of it", allow.direction.as_str()),
                    )
                    .with_help(format!(
                        "deny wins over every allow; the deny rule is at {}. Narrow the deny, or remove this rule",
                        line_of(sources, deny.span)
                    )),
                );
            }
        }
    }
}
