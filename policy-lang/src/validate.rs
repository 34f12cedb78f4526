//! Checks across objects: duplicate policies, subjects that select nothing, allows that a deny
//! makes dead, and egress open to the whole Internet.

use crate::diagnostic::{Code, Diagnostic};
use crate::model::*;
use crate::selector::{self, Source};
use crate::source::{SourceMap, Span};
use std::collections::{BTreeMap, HashMap};

pub fn validate(tree: &Tree, sources: &SourceMap, diags: &mut Vec<Diagnostic>) {
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

fn line_of(sources: &SourceMap, span: Span) -> String {
    match sources.locate(span) {
        Some((f, start, _)) => format!("{}:{}", f.path.display(), start.line),
        None => String::from("?"),
    }
}

fn duplicates(tree: &Tree, sources: &SourceMap, diags: &mut Vec<Diagnostic>) {
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

/// A workload's labels as Cilium sees them, plus its namespace.
struct Endpoint<'t> {
    namespace: &'t str,
    pod: &'t Labels,
    cilium: BTreeMap<String, String>,
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
            let ns = w.meta.namespace.value.as_str();
            let mut cilium: BTreeMap<String, String> = w
                .pod_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            cilium.insert(selector::NAMESPACE_LABEL.into(), ns.into());
            if let Some(labels) = ns_labels.get(ns) {
                for (k, v) in labels.iter() {
                    cilium.insert(
                        format!("{}{k}", selector::NAMESPACE_LABELS_PREFIX),
                        v.value.clone(),
                    );
                }
            }
            cilium.insert(
                format!(
                    "{}{}",
                    selector::NAMESPACE_LABELS_PREFIX,
                    selector::NAMESPACE_NAME_LABEL
                ),
                ns.into(),
            );
            cilium.insert(
                selector::SERVICE_ACCOUNT_LABEL.into(),
                w.service_account
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            );
            cilium.insert(selector::CLUSTER_LABEL.into(), "default".into());
            Endpoint {
                namespace: ns,
                pod: &w.pod_labels,
                cilium,
            }
        })
        .collect()
}

fn selects_nothing(policies: &[&Policy], tree: &Tree, diags: &mut Vec<Diagnostic>) {
    let eps = endpoints(tree);
    for policy in policies {
        match policy {
            Policy::Kubernetes(np) => {
                let ns = np.meta.namespace.value.as_str();
                let any = eps.iter().any(|e| {
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
                for rule in &cp.rules {
                    let Some(Subject::Endpoints(sel)) = &rule.subject else {
                        continue;
                    };
                    let ns = cp.meta.namespace.value.as_str();
                    let namespaced = cp.kind == PolicyKind::CiliumNetworkPolicy;
                    let any = eps.iter().any(|e| {
                        (!namespaced || e.namespace == ns)
                            && selector::matches(sel, |src, k| match src {
                                Source::K8s => e.cilium.get(k).map(String::as_str),
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

fn shadowed_by_deny(policies: &[&Policy], sources: &SourceMap, diags: &mut Vec<Diagnostic>) {
    // Rules with the same subject in the same scope apply to the same endpoints.
    let mut by_subject: Vec<(&str, &Selector, Vec<&CiliumPeerRule>)> = Vec::new();
    for p in policies {
        let Policy::Cilium(cp) = p else { continue };
        let scope = cp.meta.namespace.value.as_str();
        for rule in &cp.rules {
            let Some(Subject::Endpoints(sel)) = &rule.subject else {
                continue;
            };
            match by_subject.iter_mut().find(|(s, x, _)| {
                *s == scope
                    && x.match_labels == sel.match_labels
                    && x.match_expressions == sel.match_expressions
            }) {
                Some((_, _, rules)) => rules.extend(rule.rules.iter()),
                None => by_subject.push((scope, sel, rule.rules.iter().collect())),
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
