//! Which object of the tree a pod registered by the CNI plugin belongs to, and the tree with
//! the registered pods' addresses written into it.
//!
//! Standalone, the tree is the API server: a pod's labels are those of the Pod object of its
//! name, or of the controller whose pod template it was made from, recognised by the name a
//! controller gives its pods (`web-5d9c7b8f4-x2x7q` for Deployment `web`, `db-0` for
//! StatefulSet `db`, `agent-k8s2l` for DaemonSet `agent`).

use policy_lang::model::{Meta, Tree, Workload, WorkloadKind};
use policy_lang::Spanned;
use std::net::IpAddr;

/// A pod as the CNI plugin registered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// Where a pod's labels come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The Pod object of that name (`tree.workloads` index).
    PodObject(usize),
    /// A controller whose pods are named after it.
    Controller(usize),
    /// A sibling: a Pod object owned by the same controller (a ReplicaSet the tree does not
    /// declare, for example), whose labels the pod shares.
    Sibling(usize),
    /// Nothing in the tree: the pod has only its namespace's labels.
    Unknown,
}

/// Lower-case letters and digits, as the random suffixes of generated names.
fn is_suffix_word(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `pod` is a name the controller `kind` named `owner` gives its pods.
fn named_by(kind: WorkloadKind, owner: &str, pod: &str) -> bool {
    let Some(rest) = pod.strip_prefix(owner).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    match kind {
        // `<deployment>-<pod-template-hash>-<random>`
        WorkloadKind::Deployment => rest.split_once('-').is_some_and(|(hash, random)| {
            is_suffix_word(hash, 1..=10) && is_suffix_word(random, 5..=5)
        }),
        // `<statefulset>-<ordinal>`
        WorkloadKind::StatefulSet => !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()),
        // `<cronjob>-<scheduled time>-<random>`
        WorkloadKind::CronJob => rest.split_once('-').is_some_and(|(time, random)| {
            !time.is_empty()
                && time.bytes().all(|b| b.is_ascii_digit())
                && is_suffix_word(random, 5..=5)
        }),
        WorkloadKind::ReplicaSet | WorkloadKind::DaemonSet | WorkloadKind::Job => {
            is_suffix_word(rest, 5..=5)
        }
        WorkloadKind::Pod => false,
    }
}

/// Finds where the pod `namespace/name` gets its labels.
pub fn origin(tree: &Tree, namespace: &str, name: &str) -> Origin {
    let in_ns = || {
        tree.workloads
            .iter()
            .enumerate()
            .filter(move |(_, w)| w.meta.namespace.value == namespace)
    };
    if let Some((i, _)) =
        in_ns().find(|(_, w)| w.kind == WorkloadKind::Pod && w.meta.name.value == name)
    {
        return Origin::PodObject(i);
    }
    // The most specific controller: `web-api` before `web` for `web-api-5d9c7-x2x7q`.
    let controller = in_ns()
        .filter(|(_, w)| w.kind != WorkloadKind::Pod && named_by(w.kind, &w.meta.name.value, name))
        .max_by_key(|(_, w)| w.meta.name.value.len());
    if let Some((i, _)) = controller {
        return Origin::Controller(i);
    }
    let sibling = in_ns()
        .filter(|(_, w)| w.kind == WorkloadKind::Pod)
        .filter_map(|(i, w)| {
            let owner = w
                .meta
                .owner_references
                .iter()
                .find(|o| o.controller)
                .or_else(|| w.meta.owner_references.first())?;
            let kind = WorkloadKind::parse(&owner.kind).unwrap_or(WorkloadKind::ReplicaSet);
            named_by(kind, &owner.name, name).then_some((i, owner.name.len()))
        })
        .max_by_key(|(_, len)| *len);
    match sibling {
        Some((i, _)) => Origin::Sibling(i),
        None => Origin::Unknown,
    }
}

/// The tree with every pod's addresses in it: a Pod object of the pod's name takes the
/// registered addresses in place of its `status.podIPs`; a controller's pods add theirs to
/// the controller; a sibling's pod becomes a copy of the sibling's Pod object; an unknown pod
/// becomes a Pod object without labels in its namespace (so that `podSelector: {}` selects it,
/// as it would in a cluster).
pub fn with_pods(tree: &Tree, pods: &[Pod]) -> Tree {
    let mut out = tree.clone();
    let mut replaced: Vec<usize> = Vec::new();
    for pod in pods {
        match origin(tree, &pod.namespace, &pod.name) {
            Origin::PodObject(i) => {
                let ips = &mut out.workloads[i].ips;
                if !replaced.contains(&i) {
                    ips.clear();
                    replaced.push(i);
                }
                add_ips(ips, &pod.ips);
            }
            Origin::Controller(i) => add_ips(&mut out.workloads[i].ips, &pod.ips),
            Origin::Sibling(i) => {
                let mut copy = tree.workloads[i].clone();
                copy.meta.name = Spanned::new(pod.name.clone(), copy.meta.name.span);
                copy.ips = pod.ips.clone();
                out.workloads.push(copy);
            }
            Origin::Unknown => out.workloads.push(Workload {
                kind: WorkloadKind::Pod,
                meta: Meta {
                    name: Spanned::new(pod.name.clone(), Default::default()),
                    namespace: Spanned::new(pod.namespace.clone(), Default::default()),
                    ..Meta::default()
                },
                pod_labels: Default::default(),
                ports: Vec::new(),
                ips: pod.ips.clone(),
                host_network: false,
                service_account: None,
            }),
        }
    }
    out
}

fn add_ips(into: &mut Vec<IpAddr>, ips: &[IpAddr]) {
    for ip in ips {
        if !into.contains(ip) {
            into.push(*ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Tree {
        let checked = policy_lang::check_sources(vec![("t.yaml".into(), yaml.to_owned())]);
        assert_eq!(checked.errors(), 0, "{:?}", checked.diagnostics);
        checked.tree
    }

    const TREE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: v1
kind: Pod
metadata:
  name: cache-6f7d8-abcde
  namespace: shop
  labels: {app: cache}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: cache-6f7d8, controller: true, uid: u}]
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.9.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: shop, labels: {app: solo}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.9.0.2}
"#;

    fn name(t: &Tree, o: &Origin) -> String {
        match o {
            Origin::PodObject(i) | Origin::Controller(i) | Origin::Sibling(i) => {
                t.workloads[*i].meta.name.value.clone()
            }
            Origin::Unknown => "?".into(),
        }
    }

    #[test]
    fn pods_find_the_object_that_named_them() {
        let t = tree(TREE);
        let cases = [
            ("web-5d9c7b8f4-x2x7q", "web"),
            ("web-api-5d9c7-x2x7q", "web-api"),
            ("db-0", "db"),
            ("db-12", "db"),
            ("solo", "solo"),
            ("cache-6f7d8-zzzzz", "cache-6f7d8-abcde"),
            ("web-x2x7q", "?"),
            ("db-x", "?"),
            ("other", "?"),
        ];
        for (pod, want) in cases {
            assert_eq!(name(&t, &origin(&t, "shop", pod)), want, "{pod}");
        }
        assert_eq!(origin(&t, "elsewhere", "solo"), Origin::Unknown);
    }

    #[test]
    fn registered_addresses_land_where_the_inventory_reads_them() {
        let t = tree(TREE);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let pods = [
            Pod {
                namespace: "shop".into(),
                name: "web-5d9c7b8f4-x2x7q".into(),
                ips: vec![ip("10.1.0.1")],
            },
            Pod {
                namespace: "shop".into(),
                name: "solo".into(),
                ips: vec![ip("10.1.0.2")],
            },
            Pod {
                namespace: "shop".into(),
                name: "cache-6f7d8-zzzzz".into(),
                ips: vec![ip("10.1.0.3")],
            },
            Pod {
                namespace: "shop".into(),
                name: "stray".into(),
                ips: vec![ip("10.1.0.4")],
            },
        ];
        let out = with_pods(&t, &pods);
        let inv = compiler::inventory::Inventory::from_tree(&out);
        let owner = |s: &str| inv.by_ip(ip(s)).map(|w| w.full_name());
        assert_eq!(owner("10.1.0.1").as_deref(), Some("shop/web"));
        assert_eq!(owner("10.1.0.2").as_deref(), Some("shop/solo"));
        // The status address gives way to the registered one.
        assert_eq!(owner("10.9.0.2"), None);
        assert_eq!(owner("10.1.0.3").as_deref(), Some("shop/cache-6f7d8"));
        assert_eq!(owner("10.9.0.1").as_deref(), Some("shop/cache-6f7d8"));
        assert_eq!(owner("10.1.0.4").as_deref(), Some("shop/stray"));
        let stray = inv.find("shop/stray").map(|w| w.labels.len());
        assert_eq!(stray, Some(0));
    }
}
