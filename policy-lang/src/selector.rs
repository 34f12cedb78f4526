//! Label selector matching, with Cilium's label sources (`k8s:`, `any:`, `reserved:`).

use crate::model::{Operator, Selector};

/// Where a label comes from, as Cilium spells the prefix of a selector key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// No prefix, or `any:`: matches a label of any source.
    Any,
    /// `k8s:`: labels of pods and namespaces.
    K8s,
    /// `reserved:`: Cilium's reserved identities (host, world, …).
    Reserved,
    /// Any other source (`cidr:`, `fqdn:`, `container:`…): never a pod label.
    Other,
}

const SOURCES: &[(&str, Source)] = &[
    ("k8s", Source::K8s),
    ("any", Source::Any),
    ("reserved", Source::Reserved),
    ("cidr", Source::Other),
    ("fqdn", Source::Other),
    ("unspec", Source::Other),
    ("container", Source::Other),
    ("cilium-generated", Source::Other),
];

/// Splits `k8s:app` into its source and bare key. A colon inside a DNS prefix is not a source.
pub fn split_source(key: &str) -> (Source, &str) {
    if let Some((prefix, rest)) = key.split_once(':') {
        if let Some((_, source)) = SOURCES.iter().find(|(p, _)| *p == prefix) {
            return (*source, rest);
        }
    }
    (Source::Any, key)
}

/// Whether `selector` selects a label set. `lookup` answers the value of a bare key for the
/// given source (pod and namespace labels are `k8s`; reserved labels are `reserved`).
pub fn matches<'a>(selector: &Selector, lookup: impl Fn(Source, &str) -> Option<&'a str>) -> bool {
    let get = |key: &str| {
        let (source, bare) = split_source(key);
        match source {
            Source::Any => lookup(Source::K8s, bare).or_else(|| lookup(Source::Reserved, bare)),
            Source::Other => None,
            s => lookup(s, bare),
        }
    };
    for (k, v) in &selector.match_labels {
        if get(&k.value) != Some(v.value.as_str()) {
            return false;
        }
    }
    for r in &selector.match_expressions {
        let value = get(&r.key.value);
        let in_values = |v: &str| r.values.iter().any(|x| x.value == v);
        let ok = match r.operator.value {
            Operator::In => value.is_some_and(in_values),
            Operator::NotIn => !value.is_some_and(in_values),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector names the pod's namespace (Cilium then does not scope it to the
/// policy's own namespace).
pub fn names_namespace(selector: &Selector) -> bool {
    let is_ns_key = |k: &str| {
        let (_, bare) = split_source(k);
        bare == NAMESPACE_LABEL || bare.starts_with(NAMESPACE_LABELS_PREFIX)
    };
    selector
        .match_labels
        .iter()
        .any(|(k, _)| is_ns_key(&k.value))
        || selector
            .match_expressions
            .iter()
            .any(|r| is_ns_key(&r.key.value))
}

/// The label Cilium gives every pod for its namespace's name.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Cilium exposes each namespace label `k=v` on its pods as `<prefix>k=v`.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The label Cilium gives every pod for its service account.
pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
/// The label Cilium gives every pod for its cluster.
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// The label Kubernetes puts on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Requirement;
    use crate::source::Spanned;
    use std::collections::BTreeMap;

    fn s(v: &str) -> Spanned<String> {
        Spanned::new(v.to_owned(), Default::default())
    }

    fn sel(labels: &[(&str, &str)], exprs: Vec<Requirement>) -> Selector {
        Selector {
            match_labels: labels.iter().map(|(k, v)| (s(k), s(v))).collect(),
            match_expressions: exprs,
            span: Default::default(),
        }
    }

    #[test]
    fn sources_and_operators() {
        let pod: BTreeMap<&str, &str> = [("app", "web"), ("tier", "front")].into();
        let lookup = |src: Source, k: &str| {
            if src == Source::K8s {
                pod.get(k).copied()
            } else {
                None
            }
        };
        assert!(matches(&sel(&[("k8s:app", "web")], vec![]), lookup));
        assert!(matches(
            &sel(&[("any:app", "web"), ("tier", "front")], vec![]),
            lookup
        ));
        assert!(!matches(&sel(&[("reserved:app", "web")], vec![]), lookup));
        assert!(!matches(&sel(&[("app", "db")], vec![]), lookup));
        let req = |k: &str, op, vals: &[&str]| Requirement {
            key: s(k),
            operator: Spanned::new(op, Default::default()),
            values: vals.iter().map(|v| s(v)).collect(),
        };
        assert!(matches(
            &sel(&[], vec![req("app", Operator::In, &["web", "x"])]),
            lookup
        ));
        assert!(matches(
            &sel(&[], vec![req("env", Operator::NotIn, &["prod"])]),
            lookup
        ));
        assert!(!matches(
            &sel(&[], vec![req("app", Operator::NotIn, &["web"])]),
            lookup
        ));
        assert!(matches(
            &sel(&[], vec![req("tier", Operator::Exists, &[])]),
            lookup
        ));
        assert!(!matches(
            &sel(&[], vec![req("tier", Operator::DoesNotExist, &[])]),
            lookup
        ));
        assert!(matches(&sel(&[], vec![]), lookup));
    }
}
