//! Decoders for each object kind: NetworkPolicy, Cilium policies and the workload inventory.

use crate::decode::{head, At, Cx, Fields};
use crate::diagnostic::Code;
use crate::formats;
use crate::load::RawObject;
use crate::model::*;
use crate::source::{Span, Spanned};
use crate::yaml::{Node, Resolved};
use std::collections::BTreeMap;

/// A typed object, or the reason it was skipped.
pub enum Decoded {
    Policy(Policy),
    Namespace(Namespace),
    Workload(Workload),
    Service(Service),
    EndpointSlice(EndpointSlice),
    /// A kind nothing here reads.
    Skipped,
    /// A kind we read, too broken to use (already reported).
    Broken,
}

pub fn decode(cx: &mut Cx<'_>, raw: &RawObject) -> Decoded {
    let group = raw.api_version.split('/').next().unwrap_or("");
    let group = if raw.api_version.contains('/') {
        group
    } else {
        ""
    };
    let at = At::item(&raw.node);
    let result = match (group, raw.kind.as_str()) {
        ("networking.k8s.io", "NetworkPolicy") => {
            network_policy(cx, raw, at).map(|p| Decoded::Policy(Policy::Kubernetes(p)))
        }
        ("cilium.io", "CiliumNetworkPolicy") => {
            cilium_policy(cx, raw, at, PolicyKind::CiliumNetworkPolicy)
                .map(|p| Decoded::Policy(Policy::Cilium(p)))
        }
        ("cilium.io", "CiliumClusterwideNetworkPolicy") => {
            cilium_policy(cx, raw, at, PolicyKind::CiliumClusterwideNetworkPolicy)
                .map(|p| Decoded::Policy(Policy::Cilium(p)))
        }
        ("", "Namespace") => {
            meta_only(cx, raw, at, false).map(|meta| Decoded::Namespace(Namespace { meta }))
        }
        ("", "Pod") => pod(cx, raw, at).map(Decoded::Workload),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job" | "CronJob") => controller(cx, raw, at).map(Decoded::Workload),
        ("", "Service") => service(cx, raw, at).map(Decoded::Service),
        ("discovery.k8s.io", "EndpointSlice") => {
            endpoint_slice(cx, raw, at).map(Decoded::EndpointSlice)
        }
        _ => return Decoded::Skipped,
    };
    result.unwrap_or(Decoded::Broken)
}

fn kind_span(node: &Node) -> Span {
    node.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.scalar_text() == Some("kind")))
        .map(|(_, v)| v.span)
        .unwrap_or(node.span)
}

/// `metadata`, with name and namespace checked. `namespaced` decides the `default` namespace.
fn metadata(
    cx: &mut Cx<'_>,
    obj: &mut Fields<'_>,
    raw: &RawObject,
    namespaced: bool,
    strict: bool,
) -> Option<Meta> {
    let context = format!("{} metadata", raw.kind);
    let at = obj.require(cx, "metadata", &raw.kind)?;
    let mut m = cx.map(at, "metadata")?;
    let name = match m.require(cx, "name", &context) {
        Some(n) => cx.string(n.node, "name"),
        None => None,
    };
    let namespace = match m.get("namespace") {
        Some(n) => cx.string(n.node, "namespace"),
        None => None,
    };
    let labels = match m.get("labels") {
        Some(l) => cx.labels(l.node, "labels").unwrap_or_default(),
        None => Vec::new(),
    };
    let owner_references = match m.get("ownerReferences") {
        Some(o) => cx
            .each(o.node, "ownerReferences", owner_reference)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if let Some(a) = m.get("annotations") {
        if let Some(entries) = cx.map(a, "annotations") {
            let _ = entries;
        }
    }
    m.ignore(&[
        "generateName",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "managedFields",
    ]);
    if strict {
        m.finish(cx, &context);
    }
    let name = name?;
    if let Err(reason) = formats::dns1123_subdomain(&name.value) {
        cx.error(
            Code::InvalidName,
            name.span,
            format!("invalid name `{}`: {reason}", name.value),
            "names are lowercase RFC 1123 subdomains: [a-z0-9.-], at most 253 characters, alphanumeric at both ends",
        );
    }
    let namespace = match namespace {
        Some(ns) => {
            if let Err(reason) = formats::dns1123_label(&ns.value) {
                cx.error(
                    Code::InvalidNamespace,
                    ns.span,
                    format!("invalid namespace `{}`: {reason}", ns.value),
                    "namespaces are lowercase RFC 1123 labels: [a-z0-9-], at most 63 characters, alphanumeric at both ends",
                );
            }
            ns
        }
        None if namespaced => Spanned::new("default".to_owned(), name.span),
        None => Spanned::new(String::new(), name.span),
    };
    let labels = labels.into_iter().map(|(k, v)| (k.value, v)).collect();
    Some(Meta {
        name,
        namespace,
        labels,
        owner_references,
        span: raw.node.span,
        kind_span: kind_span(&raw.node),
    })
}

fn owner_reference(cx: &mut Cx<'_>, at: At<'_>) -> Option<OwnerReference> {
    let mut m = cx.map(at, "ownerReferences")?;
    let kind = m.get("kind").and_then(|k| cx.string(k.node, "kind"));
    let name = m.get("name").and_then(|k| cx.string(k.node, "name"));
    let controller = m
        .get("controller")
        .and_then(|k| cx.bool(k.node, "controller"))
        .unwrap_or(false);
    Some(OwnerReference {
        kind: kind?.value,
        name: name?.value,
        controller,
    })
}

fn meta_only(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>, namespaced: bool) -> Option<Meta> {
    let mut obj = cx.map(at, &raw.kind)?;
    metadata(cx, &mut obj, raw, namespaced, false)
}

// ---------------------------------------------------------------- selectors

pub fn selector(cx: &mut Cx<'_>, at: At<'_>, field: &str) -> Option<Selector> {
    let span = at.node.span;
    if at.node.as_map().is_some_and(|m| m.is_empty()) {
        return Some(Selector {
            span,
            ..Default::default()
        });
    }
    let mut m = cx.map(at, field)?;
    let match_labels = match m.get("matchLabels") {
        Some(l) => cx.labels(l.node, "matchLabels").unwrap_or_default(),
        None => Vec::new(),
    };
    let match_expressions = match m.get("matchExpressions") {
        Some(e) => cx
            .each(e.node, "matchExpressions", requirement)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    m.finish(cx, &format!("`{field}`"));
    Some(Selector {
        match_labels,
        match_expressions,
        span,
    })
}

fn requirement(cx: &mut Cx<'_>, at: At<'_>) -> Option<Requirement> {
    let mut m = cx.map(at, "matchExpressions")?;
    let key = m
        .require(cx, "key", "a match expression")
        .and_then(|k| cx.string(k.node, "key"));
    let op_at = m.require(cx, "operator", "a match expression");
    let values_at = m.get("values");
    let has_values_key = m.has("values");
    m.finish(cx, "a match expression");
    let key = key?;
    let key_ok = cx.label_key(&key);
    let op_str = op_at.and_then(|o| cx.string(o.node, "operator"))?;
    let op = match op_str.value.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            let help =
                match formats::did_you_mean(other, &["In", "NotIn", "Exists", "DoesNotExist"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "use one of In, NotIn, Exists, DoesNotExist".to_owned(),
                };
            cx.error(
                Code::InvalidSelectorOperator,
                op_str.span,
                format!("unknown operator `{other}`"),
                help,
            );
            return None;
        }
    };
    let values = match values_at {
        Some(v) => cx.strings(v.node, "values").unwrap_or_default(),
        None => Vec::new(),
    };
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => {
            let span = values_at.map(|v| v.key).unwrap_or(op_str.span);
            cx.error(
                Code::InvalidSelectorValues,
                span,
                format!("operator `{}` needs at least one value", op_str.value),
                "add `values: [...]`, or use `Exists`/`DoesNotExist`",
            );
            return None;
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            let span = values_at.map(|v| v.key).unwrap_or(op_str.span);
            cx.error(
                Code::InvalidSelectorValues,
                span,
                format!("operator `{}` takes no values", op_str.value),
                "remove `values`, or use `In`/`NotIn`",
            );
            return None;
        }
        _ => {}
    }
    let _ = has_values_key;
    if key_ok {
        for v in &values {
            cx.label_value(v);
        }
    }
    Some(Requirement {
        key,
        operator: Spanned::new(op, op_str.span),
        values,
    })
}

// ---------------------------------------------------------------- ports, CIDRs

fn cidr_value(
    cx: &mut Cx<'_>,
    s: &Spanned<String>,
    allow_bare_ip: bool,
) -> Option<Spanned<ipnet::IpNet>> {
    match formats::cidr(&s.value, allow_bare_ip) {
        Ok(c) => {
            if c.host_bits_set {
                cx.error(
                    Code::CidrHostBits,
                    s.span,
                    format!(
                        "`{}` has host bits set; it means `{}`",
                        s.value,
                        c.net.trunc()
                    ),
                    format!(
                        "write `{}`, or a longer prefix if a smaller range was meant",
                        c.net.trunc()
                    ),
                );
            }
            Some(Spanned::new(c.net.trunc(), s.span))
        }
        Err(reason) => {
            cx.error(
                Code::InvalidCidr,
                s.span,
                format!("invalid CIDR `{}`: {reason}", s.value),
                "write an address and a prefix length, such as `10.0.0.0/8` or `2001:db8::/32`",
            );
            None
        }
    }
}

/// `cidr` plus `except`, with each except checked to lie inside the CIDR.
fn cidr_with_except(
    cx: &mut Cx<'_>,
    cidr: Option<Spanned<ipnet::IpNet>>,
    except: Vec<Str>,
    strict_subset: bool,
) -> (Option<Spanned<ipnet::IpNet>>, Vec<Spanned<ipnet::IpNet>>) {
    let mut out = Vec::new();
    for e in except {
        let Some(net) = cidr_value(cx, &e, false) else {
            continue;
        };
        if let Some(c) = &cidr {
            // Kubernetes wants a strict subset; Cilium accepts the CIDR itself.
            let inside = formats::cidr_contains(&c.value, &net.value)
                && !(strict_subset && c.value == net.value);
            if !inside {
                cx.error(
                    Code::ExceptOutsideCidr,
                    e.span,
                    format!("except `{}` is not inside `{}`", e.value, c.value),
                    if strict_subset {
                        "an except entry must be a strict subset of the CIDR it carves from"
                    } else {
                        "an except entry must lie inside the CIDR it carves from"
                    },
                );
                continue;
            }
        }
        out.push(net);
    }
    (cidr, out)
}

fn protocol(cx: &mut Cx<'_>, node: &Node, cilium: bool) -> Option<Spanned<Protocol>> {
    let s = cx.string(node, "protocol")?;
    let parsed = if cilium {
        Protocol::parse_cilium(&s.value)
    } else {
        Protocol::parse_kubernetes(&s.value)
    };
    match parsed {
        Ok(p) => Some(Spanned::new(p, s.span)),
        Err(reason) => {
            let help = if cilium {
                "use TCP, UDP, SCTP, ICMP, ICMPv6 or ANY; L7 protocols go in `rules`"
            } else {
                "use TCP, UDP or SCTP"
            };
            cx.error(
                Code::InvalidProtocol,
                s.span,
                format!("invalid protocol `{}`: {reason}", s.value),
                help,
            );
            None
        }
    }
}

fn port_number(cx: &mut Cx<'_>, value: i64, span: Span, field: &str) -> Option<u16> {
    match formats::port_number(value) {
        Ok(p) => Some(p),
        Err(reason) => {
            cx.error(
                Code::InvalidPort,
                span,
                format!("invalid `{field}` {value}: {reason}"),
                "ports are 1 to 65535",
            );
            None
        }
    }
}

fn named_port(cx: &mut Cx<'_>, name: &str, span: Span) -> Option<Port> {
    match formats::iana_svc_name(name) {
        Ok(()) => Some(Port::Name(name.to_owned())),
        Err(reason) => {
            cx.error(
                Code::InvalidNamedPort,
                span,
                format!("invalid named port `{name}`: {reason}"),
                "a named port is at most 15 lowercase letters, digits and `-`, with at least one letter; quote numbers only in Cilium policies",
            );
            None
        }
    }
}

/// A port and optional end port; `cilium` reads Cilium's string ports ("80", "0" = any).
fn port_spec(cx: &mut Cx<'_>, at: At<'_>, cilium: bool) -> Option<PortSpec> {
    let context = if cilium {
        "a `ports` entry"
    } else {
        "a NetworkPolicy port"
    };
    let mut m = cx.map(at, "ports")?;
    let proto_at = m.get("protocol");
    let port_at = m.get("port");
    let end_at = m.get("endPort");
    m.finish(cx, context);
    let default_proto = if cilium { Protocol::Any } else { Protocol::Tcp };
    let protocol = match proto_at {
        Some(p) => protocol(cx, p.node, cilium)?,
        None => Spanned::new(default_proto, at.key),
    };
    let port = match port_at {
        None => Spanned::new(Port::Any, at.key),
        Some(p) => {
            let port = match (p.node.resolve(), cilium) {
                (Some(Resolved::Int(0)), true) => Port::Any,
                (Some(Resolved::Int(i)), _) => {
                    Port::Number(port_number(cx, i, p.node.span, "port")?)
                }
                (Some(Resolved::Str(s)), true) => match formats::port_or_name(s) {
                    Ok(formats::PortSpec::Any) => Port::Any,
                    Ok(formats::PortSpec::Number(n)) => Port::Number(n),
                    Ok(formats::PortSpec::Name(n)) => named_port(cx, &n, p.node.span)?,
                    Err(reason) => {
                        let (code, help) = if s.bytes().all(|b| b.is_ascii_digit()) {
                            (
                                Code::InvalidPort,
                                "ports are 1 to 65535 (\"0\" means every port)",
                            )
                        } else {
                            (Code::InvalidNamedPort, "a named port is at most 15 lowercase letters, digits and `-`, with at least one letter")
                        };
                        cx.error(
                            code,
                            p.node.span,
                            format!("invalid port `{s}`: {reason}"),
                            help,
                        );
                        return None;
                    }
                },
                (Some(Resolved::Str(s)), false) => named_port(cx, s, p.node.span)?,
                _ => {
                    cx.error(
                        Code::WrongType,
                        p.node.span,
                        format!(
                            "`port` must be a number or a port name, found {}",
                            p.node.kind_name()
                        ),
                        "write a number such as `8080` or a container port's name such as `http`",
                    );
                    return None;
                }
            };
            Spanned::new(port, p.node.span)
        }
    };
    let end_port = match end_at {
        None => None,
        Some(e) => {
            let value = cx.int(e.node, "endPort")?;
            let end = port_number(cx, value, e.node.span, "endPort")?;
            match &port.value {
                Port::Number(start) if end < *start => {
                    cx.error(
                        Code::InvalidEndPort,
                        e.node.span,
                        format!("`endPort` {end} is below `port` {start}"),
                        "`endPort` must be at least `port`: the range is port..=endPort",
                    );
                    return None;
                }
                Port::Name(name) => {
                    cx.error(
                        Code::InvalidEndPort,
                        e.key,
                        format!("`endPort` cannot be used with the named port `{name}`"),
                        "use a numeric `port` to give a range",
                    );
                    return None;
                }
                Port::Any => {
                    cx.error(
                        Code::InvalidEndPort,
                        e.key,
                        "`endPort` needs a numeric `port`",
                        "set `port` to the first port of the range",
                    );
                    return None;
                }
                Port::Number(_) => Some(Spanned::new(end, e.node.span)),
            }
        }
    };
    Some(PortSpec {
        protocol,
        protocol_given: proto_at.is_some(),
        port,
        end_port,
        span: at.node.span,
    })
}

// ---------------------------------------------------------------- NetworkPolicy

fn network_policy(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>) -> Option<NetworkPolicy> {
    let mut obj = cx.map(at, "NetworkPolicy")?;
    obj.ignore(&["apiVersion", "kind", "status"]);
    let meta = metadata(cx, &mut obj, raw, true, true);
    let spec_at = obj.require(cx, "spec", "NetworkPolicy");
    obj.finish(cx, "NetworkPolicy");
    let meta = meta?;
    let mut spec = cx.map(spec_at?, "spec")?;
    let pod_selector = spec
        .require(cx, "podSelector", "NetworkPolicy spec")
        .and_then(|s| selector(cx, s, "podSelector"));
    let policy_types = spec.get("policyTypes").and_then(|p| {
        let list = cx.strings(p.node, "policyTypes")?;
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for t in list {
            let d = match t.value.as_str() {
                "Ingress" => Direction::Ingress,
                "Egress" => Direction::Egress,
                other => {
                    let help = match formats::did_you_mean(other, &["Ingress", "Egress"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "use `Ingress` and/or `Egress`".to_owned(),
                    };
                    cx.error(
                        Code::InvalidPolicyType,
                        t.span,
                        format!("invalid policy type `{other}`"),
                        help,
                    );
                    continue;
                }
            };
            if seen.contains(&d) {
                cx.error(
                    Code::InvalidPolicyType,
                    t.span,
                    format!("policy type `{}` is listed twice", t.value),
                    "list each policy type once",
                );
                continue;
            }
            seen.push(d);
            out.push(Spanned::new(d, t.span));
        }
        Some(out)
    });
    let has_egress_key = spec.has("egress");
    let ingress = spec
        .get("ingress")
        .and_then(|i| cx.each(i.node, "ingress", |cx, r| np_rule(cx, r, "from")))
        .unwrap_or_default();
    let egress = spec
        .get("egress")
        .and_then(|e| cx.each(e.node, "egress", |cx, r| np_rule(cx, r, "to")))
        .unwrap_or_default();
    spec.finish(cx, "NetworkPolicy spec");
    Some(NetworkPolicy {
        meta,
        pod_selector: pod_selector?,
        policy_types,
        ingress,
        egress,
        has_egress_key,
    })
}

fn np_rule(cx: &mut Cx<'_>, at: At<'_>, peers_key: &'static str) -> Option<NpRule> {
    let span = at.node.span;
    if at.node.as_map().is_some_and(|m| m.is_empty()) {
        return Some(NpRule {
            peers: None,
            ports: None,
            span,
        });
    }
    let context = if peers_key == "from" {
        "an ingress rule"
    } else {
        "an egress rule"
    };
    let mut m = cx.map(at, context)?;
    let peers = m
        .get(peers_key)
        .and_then(|p| cx.each(p.node, peers_key, np_peer));
    let ports = m
        .get("ports")
        .and_then(|p| cx.each(p.node, "ports", |cx, a| port_spec(cx, a, false)));
    m.finish(cx, context);
    Some(NpRule { peers, ports, span })
}

fn np_peer(cx: &mut Cx<'_>, at: At<'_>) -> Option<NpPeer> {
    let mut m = cx.map(at, "peer")?;
    let pod = m.get("podSelector");
    let ns = m.get("namespaceSelector");
    let ip = m.get("ipBlock");
    m.finish(cx, "a NetworkPolicy peer");
    if pod.is_none() && ns.is_none() && ip.is_none() {
        cx.error(
            Code::MissingField,
            at.key,
            "a peer needs `podSelector`, `namespaceSelector` or `ipBlock`",
            "an empty peer is rejected by the API server; use `podSelector: {}` to mean every pod of the namespace",
        );
        return None;
    }
    if let (Some(ip), true) = (&ip, pod.is_some() || ns.is_some()) {
        cx.error(
            Code::ConflictingFields,
            ip.key,
            "`ipBlock` cannot be combined with `podSelector` or `namespaceSelector` in one peer",
            "write the ipBlock as a separate peer (`- ipBlock: ...`)",
        );
        return None;
    }
    let pod_selector = match pod {
        Some(p) => Some(selector(cx, p, "podSelector")?),
        None => None,
    };
    let namespace_selector = match ns {
        Some(n) => Some(selector(cx, n, "namespaceSelector")?),
        None => None,
    };
    let ip_block = match ip {
        Some(i) => Some(ip_block(cx, i)?),
        None => None,
    };
    Some(NpPeer {
        pod_selector,
        namespace_selector,
        ip_block,
        span: at.node.span,
    })
}

fn ip_block(cx: &mut Cx<'_>, at: At<'_>) -> Option<IpBlock> {
    let mut m = cx.map(at, "ipBlock")?;
    let cidr = m
        .require(cx, "cidr", "`ipBlock`")
        .and_then(|c| cx.string(c.node, "cidr"));
    let except = m
        .get("except")
        .and_then(|e| cx.strings(e.node, "except"))
        .unwrap_or_default();
    m.finish(cx, "`ipBlock`");
    let cidr = cidr_value(cx, &cidr?, false);
    let (cidr, except) = cidr_with_except(cx, cidr, except, true);
    Some(IpBlock {
        cidr: cidr?,
        except,
        span: at.node.span,
    })
}

// ---------------------------------------------------------------- Cilium

fn cilium_policy(
    cx: &mut Cx<'_>,
    raw: &RawObject,
    at: At<'_>,
    kind: PolicyKind,
) -> Option<CiliumPolicy> {
    let mut obj = cx.map(at, kind.as_str())?;
    obj.ignore(&["apiVersion", "kind", "status"]);
    let namespaced = kind == PolicyKind::CiliumNetworkPolicy;
    let meta = metadata(cx, &mut obj, raw, namespaced, true);
    let spec = obj.get("spec");
    let specs = obj.get("specs");
    if spec.is_none() && specs.is_none() {
        cx.error(
            Code::MissingField,
            kind_span(&raw.node),
            format!("{} needs `spec` or `specs`", kind.as_str()),
            "add a `spec` with an `endpointSelector` and rules",
        );
    }
    obj.finish(cx, kind.as_str());
    let meta = meta?;
    let mut rules = Vec::new();
    if let Some(s) = spec {
        rules.extend(cilium_rule(cx, s, kind));
    }
    if let Some(s) = specs {
        rules.extend(
            cx.each(s.node, "specs", |cx, r| cilium_rule(cx, r, kind))
                .unwrap_or_default(),
        );
    }
    Some(CiliumPolicy { kind, meta, rules })
}

fn cilium_rule(cx: &mut Cx<'_>, at: At<'_>, kind: PolicyKind) -> Option<CiliumRule> {
    let mut m = cx.map(at, "spec")?;
    let endpoint = m.get("endpointSelector");
    let node = m.get("nodeSelector");
    let ctx = "a Cilium rule";
    let mut rules = Vec::new();
    for (key, dir, deny) in [
        ("ingress", Direction::Ingress, false),
        ("ingressDeny", Direction::Ingress, true),
        ("egress", Direction::Egress, false),
        ("egressDeny", Direction::Egress, true),
    ] {
        if let Some(r) = m.get(key) {
            rules.extend(
                cx.each(r.node, key, |cx, a| peer_rule(cx, a, dir, deny))
                    .unwrap_or_default(),
            );
        }
    }
    let has_section = ["ingress", "ingressDeny", "egress", "egressDeny"]
        .iter()
        .any(|k| m.has(k));
    let (mut dd_in, mut dd_eg) = (None, None);
    if let Some(d) = m.get("enableDefaultDeny") {
        if let Some(mut dm) = cx.map(d, "enableDefaultDeny") {
            dd_in = dm.get("ingress").and_then(|v| cx.bool(v.node, "ingress"));
            dd_eg = dm.get("egress").and_then(|v| cx.bool(v.node, "egress"));
            dm.finish(cx, "`enableDefaultDeny`");
        }
    }
    let description = m
        .get("description")
        .and_then(|d| cx.string(d.node, "description"))
        .map(|s| s.value);
    // Rule labels name the rule for tooling; they carry no enforcement meaning.
    m.ignore(&["labels"]);
    m.not_enforced(
        cx,
        "log",
        "policy verdict logging is not implemented; flows are still observable",
    );
    m.finish(cx, ctx);

    if !has_section {
        cx.error(
            Code::MissingField,
            at.key,
            "a Cilium rule needs at least one of `ingress`, `ingressDeny`, `egress`, `egressDeny`",
            "add rules; for a default deny, write `ingress: [{}]` (an empty rule allows nothing)",
        );
    }
    let subject = match (endpoint, node) {
        (Some(_), Some(n)) => {
            cx.error(
                Code::ConflictingFields,
                n.key,
                "a rule cannot have both `endpointSelector` and `nodeSelector`",
                "keep `endpointSelector` to select pods, or `nodeSelector` (clusterwide policies only) to select nodes",
            );
            return None;
        }
        (Some(e), None) => Subject::Endpoints(selector(cx, e, "endpointSelector")?),
        (None, Some(n)) => {
            if kind == PolicyKind::CiliumNetworkPolicy {
                cx.error(
                    Code::ConflictingFields,
                    n.key,
                    "`nodeSelector` is only allowed in a CiliumClusterwideNetworkPolicy",
                    "use `endpointSelector` in a namespaced policy",
                );
                return None;
            }
            cx.error(
                Code::NotEnforced,
                n.key,
                "`nodeSelector` (host policy) is not enforced by this version",
                "host firewall policies are accepted and checked but have no effect on pod traffic",
            );
            Subject::Nodes(selector(cx, n, "nodeSelector")?)
        }
        (None, None) => {
            cx.error(
                Code::MissingField,
                at.key,
                "a Cilium rule needs `endpointSelector` or `nodeSelector`",
                "add `endpointSelector: {}` to select every pod in scope",
            );
            return None;
        }
    };
    Some(CiliumRule {
        subject: Some(subject),
        rules,
        default_deny_ingress: dd_in,
        default_deny_egress: dd_eg,
        description,
        span: at.node.span,
    })
}

fn peer_rule(
    cx: &mut Cx<'_>,
    at: At<'_>,
    direction: Direction,
    deny: bool,
) -> Option<CiliumPeerRule> {
    let (pre, section) = match (direction, deny) {
        (Direction::Ingress, false) => ("from", "an `ingress` rule"),
        (Direction::Ingress, true) => ("from", "an `ingressDeny` rule"),
        (Direction::Egress, false) => ("to", "an `egress` rule"),
        (Direction::Egress, true) => ("to", "an `egressDeny` rule"),
    };
    let ingress = direction == Direction::Ingress;
    let span = at.node.span;
    if at.node.as_map().is_some_and(|m| m.is_empty()) {
        return Some(CiliumPeerRule {
            direction,
            deny,
            endpoints: None,
            entities: None,
            cidrs: None,
            fqdns: None,
            services: None,
            to_ports: None,
            icmps: None,
            span,
        });
    }
    let mut m = cx.map(at, section)?;
    let k = |s: &'static str, t: &'static str| if ingress { s } else { t };
    let mut l3: Vec<(&'static str, Span)> = Vec::new();

    let endpoints_key = k("fromEndpoints", "toEndpoints");
    let endpoints = m.get(endpoints_key).and_then(|e| {
        l3.push((endpoints_key, e.key));
        cx.each(e.node, endpoints_key, |cx, a| {
            selector(cx, a, endpoints_key)
        })
    });
    let entities_key = k("fromEntities", "toEntities");
    let entities = m.get(entities_key).and_then(|e| {
        l3.push((entities_key, e.key));
        let list = cx.strings(e.node, entities_key)?;
        Some(
            list.into_iter()
                .filter_map(|s| entity(cx, s))
                .collect::<Vec<_>>(),
        )
    });
    let cidr_key = k("fromCIDR", "toCIDR");
    let set_key = k("fromCIDRSet", "toCIDRSet");
    let mut cidrs: Option<Vec<CidrRule>> = None;
    if let Some(c) = m.get(cidr_key) {
        l3.push((cidr_key, c.key));
        let list = cx.strings(c.node, cidr_key).unwrap_or_default();
        let v = cidrs.get_or_insert_with(Vec::new);
        for s in list {
            if let Some(net) = cidr_value(cx, &s, true) {
                v.push(CidrRule {
                    cidr: net,
                    except: Vec::new(),
                    span: s.span,
                });
            }
        }
    }
    if let Some(c) = m.get(set_key) {
        l3.push((set_key, c.key));
        let list = cx.each(c.node, set_key, cidr_rule).unwrap_or_default();
        cidrs
            .get_or_insert_with(Vec::new)
            .extend(list.into_iter().flatten());
    }
    let fqdns = if !ingress && !deny {
        m.get("toFQDNs").and_then(|f| {
            l3.push(("toFQDNs", f.key));
            cx.each(f.node, "toFQDNs", |cx, a| fqdn_selector(cx, a, "toFQDNs"))
        })
    } else {
        None
    };
    let services = if !ingress {
        m.get("toServices").and_then(|s| {
            l3.push(("toServices", s.key));
            cx.each(s.node, "toServices", service_ref)
        })
    } else {
        None
    };
    m.not_enforced(
        cx,
        k("fromRequires", "toRequires"),
        "requirements are deprecated upstream and not implemented",
    );
    m.not_enforced(
        cx,
        k("fromGroups", "toGroups"),
        "cloud provider groups are not resolved",
    );
    m.not_enforced(
        cx,
        k("fromNodes", "toNodes"),
        "node selection by labels is not implemented",
    );
    let to_ports = m
        .get("toPorts")
        .and_then(|p| cx.each(p.node, "toPorts", |cx, a| port_rule(cx, a, direction, deny)));
    let icmps = m.get("icmps").and_then(|i| {
        let rules = cx.each(i.node, "icmps", icmp_rule)?;
        Some(rules.into_iter().flatten().collect::<Vec<_>>())
    });
    if !deny {
        m.not_enforced(
            cx,
            "authentication",
            "mutual authentication is not implemented",
        );
    }
    m.finish(cx, section);

    // Cilium reads an empty list like an absent field (it tests lengths).
    fn non_empty<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
        v.filter(|v| !v.is_empty())
    }
    let (endpoints, entities, cidrs, fqdns, services, to_ports, icmps) = (
        non_empty(endpoints),
        non_empty(entities),
        non_empty(cidrs),
        non_empty(fqdns),
        non_empty(services),
        non_empty(to_ports),
        non_empty(icmps),
    );
    if l3.len() > 1 {
        let (first, _) = l3[0];
        let (second, span) = l3[1];
        cx.error(
            Code::ConflictingFields,
            span,
            format!("`{second}` cannot be combined with `{first}` in one rule"),
            format!("Cilium rejects rules that mix L3 selectors; write a separate `- {second}: ...` rule"),
        );
        return None;
    }
    if let (Some(_), Some(_)) = (&to_ports, &icmps) {
        if let Some(i) = m_key_span(at.node, "icmps") {
            cx.error(
                Code::ConflictingFields,
                i,
                "`icmps` cannot be combined with `toPorts` in one rule",
                "write the ICMP rule as a separate entry",
            );
        }
        return None;
    }
    let _ = pre;
    Some(CiliumPeerRule {
        direction,
        deny,
        endpoints,
        entities,
        cidrs,
        fqdns,
        services,
        to_ports,
        icmps,
        span,
    })
}

fn m_key_span(node: &Node, key: &str) -> Option<Span> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.scalar_text() == Some(key))
        .map(|(k, _)| k.span)
}

fn entity(cx: &mut Cx<'_>, s: Spanned<String>) -> Option<Spanned<Entity>> {
    match formats::entity(&s.value) {
        Ok(e) => Some(Spanned::new(e, s.span)),
        Err(_) => {
            let names: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
            let help = match formats::did_you_mean(&s.value, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("entities are: {}", names.join(", ")),
            };
            cx.error(
                Code::UnknownEntity,
                s.span,
                format!("unknown entity `{}`", s.value),
                help,
            );
            None
        }
    }
}

fn cidr_rule(cx: &mut Cx<'_>, at: At<'_>) -> Option<Option<CidrRule>> {
    let mut m = cx.map(at, "CIDR set entry")?;
    let cidr = m.get("cidr").and_then(|c| cx.string(c.node, "cidr"));
    let except = m
        .get("except")
        .and_then(|e| cx.strings(e.node, "except"))
        .unwrap_or_default();
    let group_ref = m.has("cidrGroupRef");
    let group_sel = m.has("cidrGroupSelector");
    m.not_enforced(
        cx,
        "cidrGroupRef",
        "CiliumCIDRGroup objects are not resolved",
    );
    m.not_enforced(
        cx,
        "cidrGroupSelector",
        "CiliumCIDRGroup objects are not resolved",
    );
    m.finish(cx, "a CIDR set entry");
    let Some(cidr) = cidr else {
        if !group_ref && !group_sel {
            cx.error(
                Code::MissingField,
                at.key,
                "a CIDR set entry needs `cidr`",
                "add `cidr: 10.0.0.0/8` (or a `cidrGroupRef`)",
            );
        }
        return Some(None);
    };
    let net = cidr_value(cx, &cidr, true);
    let (net, except) = cidr_with_except(cx, net, except, false);
    Some(net.map(|cidr| CidrRule {
        cidr,
        except,
        span: at.node.span,
    }))
}

fn fqdn_selector(cx: &mut Cx<'_>, at: At<'_>, field: &str) -> Option<Spanned<FqdnMatch>> {
    let mut m = cx.map(at, field)?;
    let name = m
        .get("matchName")
        .and_then(|n| cx.string(n.node, "matchName"));
    let pattern = m
        .get("matchPattern")
        .and_then(|n| cx.string(n.node, "matchPattern"));
    m.finish(cx, &format!("a `{field}` entry"));
    match (name, pattern) {
        (Some(_), Some(p)) => {
            cx.error(
                Code::ConflictingFields,
                p.span,
                "use either `matchName` or `matchPattern`, not both",
                "split them into two entries",
            );
            None
        }
        (Some(n), None) => match formats::fqdn_match_name(&n.value) {
            Ok(()) => Some(Spanned::new(
                FqdnMatch::Name(n.value.to_ascii_lowercase()),
                n.span,
            )),
            Err(reason) => {
                cx.error(
                    Code::InvalidFqdn,
                    n.span,
                    format!("invalid `matchName` `{}`: {reason}", n.value),
                    "a DNS name such as `api.example.com`; use `matchPattern` for wildcards",
                );
                None
            }
        },
        (None, Some(p)) => match formats::fqdn_match_pattern(&p.value) {
            Ok(_) => Some(Spanned::new(
                FqdnMatch::Pattern(p.value.to_ascii_lowercase()),
                p.span,
            )),
            Err(reason) => {
                cx.error(
                    Code::InvalidFqdn,
                    p.span,
                    format!("invalid `matchPattern` `{}`: {reason}", p.value),
                    "a DNS name where `*` stands for any characters, such as `*.example.com`",
                );
                None
            }
        },
        (None, None) => {
            cx.error(
                Code::MissingField,
                at.key,
                format!("a `{field}` entry needs `matchName` or `matchPattern`"),
                "add `matchName: example.com` or `matchPattern: \"*.example.com\"`",
            );
            None
        }
    }
}

fn service_ref(cx: &mut Cx<'_>, at: At<'_>) -> Option<ServiceRef> {
    let mut m = cx.map(at, "toServices")?;
    let by_name = m.get("k8sService");
    let by_sel = m.get("k8sServiceSelector");
    m.finish(cx, "a `toServices` entry");
    match (by_name, by_sel) {
        (Some(n), None) => {
            let mut s = cx.map(n, "k8sService")?;
            let name = s
                .get("serviceName")
                .and_then(|v| cx.string(v.node, "serviceName"));
            let namespace = s
                .get("namespace")
                .and_then(|v| cx.string(v.node, "namespace"));
            s.finish(cx, "`k8sService`");
            let Some(name) = name else {
                cx.error(
                    Code::MissingField,
                    n.key,
                    "`k8sService` needs `serviceName`",
                    "add `serviceName`",
                );
                return None;
            };
            Some(ServiceRef::Name { name, namespace })
        }
        (None, Some(sel)) => {
            let mut s = cx.map(sel, "k8sServiceSelector")?;
            let selector_at = s.require(cx, "selector", "`k8sServiceSelector`");
            let namespace = s
                .get("namespace")
                .and_then(|v| cx.string(v.node, "namespace"));
            s.finish(cx, "`k8sServiceSelector`");
            Some(ServiceRef::Selector {
                selector: selector(cx, selector_at?, "selector")?,
                namespace,
            })
        }
        (Some(_), Some(s)) => {
            cx.error(
                Code::ConflictingFields,
                s.key,
                "use either `k8sService` or `k8sServiceSelector`",
                "split them into two entries",
            );
            None
        }
        (None, None) => {
            cx.error(
                Code::MissingField,
                at.key,
                "a `toServices` entry needs `k8sService` or `k8sServiceSelector`",
                "add `k8sService: {serviceName: ..., namespace: ...}`",
            );
            None
        }
    }
}

fn port_rule(cx: &mut Cx<'_>, at: At<'_>, direction: Direction, deny: bool) -> Option<PortRule> {
    let mut m = cx.map(at, "toPorts")?;
    let ports = m
        .get("ports")
        .and_then(|p| cx.each(p.node, "ports", |cx, a| port_spec(cx, a, true)))
        .unwrap_or_default();
    let mut http = None;
    let mut dns = None;
    let mut rules_span = None;
    if !deny {
        if let Some(r) = m.get("rules") {
            rules_span = Some(r.key);
            if let Some(mut rm) = cx.map(r, "rules") {
                http = rm
                    .get("http")
                    .and_then(|h| cx.each(h.node, "http", http_rule));
                dns = rm
                    .get("dns")
                    .and_then(|d| cx.each(d.node, "dns", |cx, a| fqdn_selector(cx, a, "dns")));
                rm.not_enforced(cx, "kafka", "Kafka rules are not implemented");
                rm.not_enforced(cx, "l7proto", "custom L7 parsers are not implemented");
                rm.not_enforced(cx, "l7", "custom L7 rules are not implemented");
                rm.finish(cx, "`rules`");
            }
        }
        m.not_enforced(cx, "terminatingTLS", "TLS interception is not implemented");
        m.not_enforced(cx, "originatingTLS", "TLS origination is not implemented");
        m.not_enforced(cx, "serverNames", "TLS SNI matching is not implemented");
        m.not_enforced(cx, "listener", "Envoy listeners are not implemented");
    }
    let context = if deny {
        "a deny rule's `toPorts` entry (deny rules match L3/L4 only)"
    } else {
        "a `toPorts` entry"
    };
    m.finish(cx, context);
    // L7 rules need a protocol that carries them.
    if let Some(span) = rules_span {
        let has_http = http.as_ref().is_some_and(|h: &Vec<HttpRule>| !h.is_empty());
        let has_dns = dns.as_ref().is_some_and(|d: &Vec<_>| !d.is_empty());
        for p in &ports {
            // Upstream: L7 rules need exactly TCP (not ANY, not omitted), except DNS rules.
            let bad = match p.protocol.value {
                Protocol::Tcp => false,
                Protocol::Udp | Protocol::Any => has_http,
                _ => has_http || has_dns,
            };
            if bad {
                let what = if has_http { "HTTP" } else { "DNS" };
                cx.error(
                    Code::L7ProtocolMismatch,
                    p.protocol.span,
                    if !p.protocol_given {
                        format!(
                            "{what} rules need `protocol: TCP`; this port has no protocol (ANY)"
                        )
                    } else {
                        format!(
                            "{what} rules cannot apply to protocol {}",
                            p.protocol.value.as_str()
                        )
                    },
                    if has_http {
                        "HTTP runs over TCP: set `protocol: TCP`"
                    } else {
                        "DNS rules need UDP, TCP or ANY"
                    },
                );
                let _ = span;
                return None;
            }
        }
        if has_dns && direction == Direction::Ingress {
            cx.error(
                Code::L7ProtocolMismatch,
                span,
                "DNS rules apply to egress only",
                "move the DNS rule under `egress`",
            );
            return None;
        }
    }
    Some(PortRule {
        ports,
        http,
        dns,
        span: at.node.span,
    })
}

fn http_rule(cx: &mut Cx<'_>, at: At<'_>) -> Option<HttpRule> {
    let span = at.node.span;
    if at.node.as_map().is_some_and(|m| m.is_empty()) {
        return Some(HttpRule {
            method: None,
            path: None,
            host: None,
            headers: Vec::new(),
            span,
        });
    }
    let mut m = cx.map(at, "http")?;
    let method = m.get("method").and_then(|v| cx.string(v.node, "method"));
    let path = m.get("path").and_then(|v| cx.string(v.node, "path"));
    let host = m.get("host").and_then(|v| cx.string(v.node, "host"));
    let headers = m
        .get("headers")
        .and_then(|v| cx.strings(v.node, "headers"))
        .unwrap_or_default();
    m.not_enforced(
        cx,
        "headerMatches",
        "header matches with secrets or mismatch actions are not implemented; use `headers`",
    );
    m.finish(cx, "an HTTP rule");
    let mut ok = true;
    if let Some(v) = &method {
        if let Err(reason) = formats::http_method(&v.value) {
            cx.error(
                Code::InvalidHttpMethod,
                v.span,
                format!("invalid HTTP method `{}`: {reason}", v.value),
                "use a method such as `GET`, or a regular expression such as `GET|HEAD`",
            );
            ok = false;
        }
    }
    for (v, what) in [(&path, "path"), (&host, "host")] {
        if let Some(v) = v {
            if let Err(reason) = formats::http_path(&v.value) {
                cx.error(Code::InvalidHttpPath, v.span, format!("invalid HTTP {what} regular expression `{}`: {reason}", v.value), format!("the {what} is a regular expression matched against the whole {what}; escape special characters with `\\`"));
                ok = false;
            }
        }
    }
    for h in &headers {
        if let Err(reason) = formats::http_header(&h.value) {
            cx.error(
                Code::InvalidHttpHeader,
                h.span,
                format!("invalid header match `{}`: {reason}", h.value),
                "write `Header-Name` (must be present) or `Header-Name: value`",
            );
            ok = false;
        }
    }
    ok.then_some(HttpRule {
        method,
        path,
        host,
        headers,
        span,
    })
}

fn icmp_rule(cx: &mut Cx<'_>, at: At<'_>) -> Option<Vec<IcmpField>> {
    let mut m = cx.map(at, "icmps")?;
    let fields = m
        .require(cx, "fields", "an `icmps` entry")
        .and_then(|f| cx.each(f.node, "fields", icmp_field));
    m.finish(cx, "an `icmps` entry");
    fields
}

fn icmp_field(cx: &mut Cx<'_>, at: At<'_>) -> Option<IcmpField> {
    let mut m = cx.map(at, "fields")?;
    let family_at = m.get("family");
    let type_at = m.require(cx, "type", "an ICMP field");
    m.finish(cx, "an ICMP field");
    let family = match family_at {
        None => IcmpFamily::V4,
        Some(f) => {
            let s = cx.string(f.node, "family")?;
            match formats::icmp_family(&s.value) {
                Ok(f) => f,
                Err(reason) => {
                    cx.error(
                        Code::InvalidIcmp,
                        s.span,
                        format!("invalid ICMP family `{}`: {reason}", s.value),
                        "use `IPv4` or `IPv6`",
                    );
                    return None;
                }
            }
        }
    };
    let t = type_at?;
    let value = match t.node.resolve() {
        Some(Resolved::Int(i)) => formats::IntOrString::Int(i),
        Some(Resolved::Str(s)) => formats::IntOrString::Str(s),
        _ => {
            cx.error(
                Code::WrongType,
                t.node.span,
                format!(
                    "ICMP `type` must be a number or a type name, found {}",
                    t.node.kind_name()
                ),
                "write a number 0-255 or a name such as `EchoRequest`",
            );
            return None;
        }
    };
    let text = t.node.scalar_text().unwrap_or("").to_owned();
    match formats::icmp_type(family, value) {
        Ok(n) => Some(IcmpField {
            family,
            icmp_type: Spanned::new(n, t.node.span),
        }),
        Err(reason) => {
            cx.error(
                Code::InvalidIcmp,
                t.node.span,
                format!("invalid ICMP type `{text}`: {reason}"),
                "use a number 0-255 or a type name such as `EchoRequest`",
            );
            None
        }
    }
}

// ---------------------------------------------------------------- inventory

fn string_map(node: Option<At<'_>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(entries) = node.and_then(|n| n.node.as_map()) {
        for (k, v) in entries {
            if let (Some(k), Some(v)) = (k.scalar_text(), v.scalar_text()) {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    out
}

/// The labels, ports and host networking of a pod spec with its metadata (a Pod or a template).
struct PodShape {
    labels: Labels,
    ports: Vec<ContainerPort>,
    host_network: bool,
    service_account: Option<String>,
}

fn pod_shape(cx: &mut Cx<'_>, metadata: Option<At<'_>>, spec: Option<At<'_>>) -> PodShape {
    let labels = metadata
        .and_then(|m| m.node.get("labels"))
        .and_then(|l| cx.labels(l, "labels"))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.value, v))
        .collect();
    let mut ports = Vec::new();
    let mut host_network = false;
    let mut service_account = None;
    if let Some(spec) = spec {
        host_network = matches!(
            spec.node.get("hostNetwork").and_then(|h| h.resolve()),
            Some(Resolved::Bool(true))
        );
        service_account = spec
            .node
            .get("serviceAccountName")
            .or_else(|| spec.node.get("serviceAccount"))
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        for key in ["initContainers", "containers"] {
            let Some(containers) = spec.node.get(key).and_then(|c| c.as_seq()) else {
                continue;
            };
            for c in containers {
                let Some(list) = c.get("ports").and_then(|p| p.as_seq()) else {
                    continue;
                };
                for p in list {
                    let Some(number) = p.get("containerPort") else {
                        continue;
                    };
                    let Some(port) = cx
                        .int(number, "containerPort")
                        .and_then(|v| port_number(cx, v, number.span, "containerPort"))
                    else {
                        continue;
                    };
                    let name = p.get("name").and_then(|n| cx.string(n, "name"));
                    if let Some(n) = &name {
                        if named_port(cx, &n.value, n.span).is_none() {
                            continue;
                        }
                    }
                    let protocol = match p.get("protocol") {
                        Some(pr) => match protocol(cx, pr, false) {
                            Some(p) => p.value,
                            None => continue,
                        },
                        None => Protocol::Tcp,
                    };
                    ports.push(ContainerPort {
                        name: name.map(|n| n.value),
                        port,
                        protocol,
                    });
                }
            }
        }
    }
    PodShape {
        labels,
        ports,
        host_network,
        service_account,
    }
}

fn pod(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>) -> Option<Workload> {
    let mut obj = cx.map(at, "Pod")?;
    let meta = metadata(cx, &mut obj, raw, true, false)?;
    let spec = obj.get("spec");
    let shape = pod_shape(cx, obj.get("metadata"), spec);
    let mut ips = Vec::new();
    if let Some(status) = obj.get("status") {
        if let Some(ip) = status
            .node
            .get("podIP")
            .and_then(|i| i.as_str())
            .and_then(|s| s.parse().ok())
        {
            ips.push(ip);
        }
        if let Some(list) = status.node.get("podIPs").and_then(|l| l.as_seq()) {
            for item in list {
                if let Some(ip) = item
                    .get("ip")
                    .and_then(|i| i.as_str())
                    .and_then(|s| s.parse().ok())
                {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
        }
    }
    Some(Workload {
        kind: WorkloadKind::Pod,
        pod_labels: shape.labels,
        ports: shape.ports,
        ips,
        host_network: shape.host_network,
        service_account: shape.service_account,
        meta,
    })
}

fn controller(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>) -> Option<Workload> {
    let kind = WorkloadKind::parse(&raw.kind)?;
    let mut obj = cx.map(at, &raw.kind)?;
    let meta = metadata(cx, &mut obj, raw, true, false)?;
    let mut spec = obj.get("spec").map(|s| s.node);
    if kind == WorkloadKind::CronJob {
        spec = spec
            .and_then(|s| s.get("jobTemplate"))
            .and_then(|j| j.get("spec"));
    }
    let template = spec.and_then(|s| s.get("template"));
    let t_meta = template.and_then(|t| t.get("metadata")).map(At::item);
    let t_spec = template.and_then(|t| t.get("spec")).map(At::item);
    let shape = pod_shape(cx, t_meta, t_spec);
    Some(Workload {
        kind,
        pod_labels: shape.labels,
        ports: shape.ports,
        ips: Vec::new(),
        host_network: shape.host_network,
        service_account: shape.service_account,
        meta,
    })
}

fn service_ports(cx: &mut Cx<'_>, list: Option<&Node>) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for p in list.and_then(|l| l.as_seq()).unwrap_or(&[]) {
        let Some(port) = p.get("port").and_then(|n| {
            cx.int(n, "port")
                .and_then(|v| port_number(cx, v, n.span, "port"))
        }) else {
            continue;
        };
        let name = p.get("name").and_then(|n| n.as_str()).map(str::to_owned);
        let target_port = p.get("targetPort").and_then(|t| match t.resolve() {
            Some(Resolved::Int(i)) => u16::try_from(i).ok().map(Port::Number),
            Some(Resolved::Str(s)) => Some(Port::Name(s.to_owned())),
            _ => None,
        });
        let protocol = match p.get("protocol") {
            Some(pr) => match protocol(cx, pr, false) {
                Some(p) => p.value,
                None => continue,
            },
            None => Protocol::Tcp,
        };
        out.push(ServicePort {
            name,
            port,
            target_port,
            protocol,
        });
    }
    out
}

fn service(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>) -> Option<Service> {
    let mut obj = cx.map(at, "Service")?;
    let meta = metadata(cx, &mut obj, raw, true, false)?;
    let spec = obj.get("spec");
    let selector = spec
        .and_then(|s| s.node.get("selector"))
        .map(|s| string_map(Some(At::item(s))));
    let ports = service_ports(cx, spec.and_then(|s| s.node.get("ports")));
    let mut cluster_ips = Vec::new();
    if let Some(s) = spec {
        if let Some(ip) = s
            .node
            .get("clusterIP")
            .and_then(|i| i.as_str())
            .and_then(|i| i.parse().ok())
        {
            cluster_ips.push(ip);
        }
        for item in s
            .node
            .get("clusterIPs")
            .and_then(|l| l.as_seq())
            .unwrap_or(&[])
        {
            if let Some(ip) = item.as_str().and_then(|i| i.parse().ok()) {
                if !cluster_ips.contains(&ip) {
                    cluster_ips.push(ip);
                }
            }
        }
    }
    Some(Service {
        meta,
        selector,
        ports,
        cluster_ips,
    })
}

fn endpoint_slice(cx: &mut Cx<'_>, raw: &RawObject, at: At<'_>) -> Option<EndpointSlice> {
    let mut obj = cx.map(at, "EndpointSlice")?;
    let meta = metadata(cx, &mut obj, raw, true, false)?;
    let service_name = meta
        .labels
        .get("kubernetes.io/service-name")
        .map(|v| v.value.clone());
    let mut addresses = Vec::new();
    for e in obj
        .get("endpoints")
        .and_then(|e| e.node.as_seq())
        .unwrap_or(&[])
    {
        for a in e.get("addresses").and_then(|a| a.as_seq()).unwrap_or(&[]) {
            if let Some(ip) = a.as_str().and_then(|s| s.parse().ok()) {
                addresses.push(ip);
            }
        }
    }
    let ports = service_ports(cx, obj.get("ports").map(|p| p.node));
    let _ = head;
    Some(EndpointSlice {
        meta,
        service_name,
        addresses,
        ports,
    })
}
