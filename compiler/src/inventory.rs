//! The workloads and namespaces a tree declares, folded by owner, with the labels Cilium gives them.

use policy_lang::model::{ContainerPort, Protocol, Tree, WorkloadKind};
use policy_lang::selector;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A namespace and its labels (Kubernetes adds `kubernetes.io/metadata.name` to every one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// False when no Namespace object declares it (a workload names it).
    pub declared: bool,
}

/// One workload: a controller with its pod template, or a Pod without owner, or the owner a Pod
/// names. Everything the compiler needs to know about its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Index in [`Inventory::workloads`].
    pub index: usize,
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<ContainerPort>,
    pub ips: Vec<IpAddr>,
    pub service_account: String,
    pub host_network: bool,
}

impl Workload {
    /// `namespace/name`, as the matrix and trace print it.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether a pod of this workload names `port` (on `protocol`) `name`. Pods of one owner
    /// may give a name different numbers; each counts.
    pub fn has_named_port(&self, name: &str, protocol: Protocol, port: u16) -> bool {
        self.ports.iter().any(|p| {
            p.name.as_deref() == Some(name)
                && p.port == port
                && (protocol == Protocol::Any || p.protocol == protocol)
        })
    }
}

/// Namespaces and workloads, in a deterministic order (namespace, name).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub namespaces: BTreeMap<String, NamespaceInfo>,
    pub workloads: Vec<Workload>,
}

impl Inventory {
    /// Builds the inventory of a tree. Pods with an owner are folded into it: a Pod owned by a
    /// ReplicaSet `web-5d9c` belongs to the workload `ns/web-5d9c` (or to the declared
    /// controller of that name), and adds its IPs to it.
    pub fn from_tree(tree: &Tree) -> Inventory {
        let mut namespaces: BTreeMap<String, NamespaceInfo> = BTreeMap::new();
        for ns in &tree.namespaces {
            let name = ns.meta.name.value.clone();
            let mut labels: BTreeMap<String, String> = ns
                .meta
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect();
            labels.insert(selector::NAMESPACE_NAME_LABEL.into(), name.clone());
            namespaces.insert(
                name.clone(),
                NamespaceInfo {
                    name,
                    labels,
                    declared: true,
                },
            );
        }
        // Keyed by kind too: a Deployment and a StatefulSet may share a name.
        let mut by_key: BTreeMap<(String, String, WorkloadKind), Workload> = BTreeMap::new();
        // Controllers first, so that owned Pods find them.
        let mut sorted: Vec<&policy_lang::model::Workload> = tree.workloads.iter().collect();
        // Borrowed keys: a key function would clone two strings per comparison.
        fn key(w: &policy_lang::model::Workload) -> (bool, &str, &str) {
            (
                w.kind == WorkloadKind::Pod,
                &w.meta.namespace.value,
                &w.meta.name.value,
            )
        }
        sorted.sort_by(|a, b| key(a).cmp(&key(b)));
        for w in sorted {
            let ns = w.meta.namespace.value.clone();
            let owner = w
                .meta
                .owner_references
                .iter()
                .find(|o| o.controller)
                .or_else(|| w.meta.owner_references.first());
            let (name, kind) = match (w.kind, owner) {
                (WorkloadKind::Pod, Some(o)) => (
                    o.name.clone(),
                    WorkloadKind::parse(&o.kind).unwrap_or(WorkloadKind::ReplicaSet),
                ),
                _ => (w.meta.name.value.clone(), w.kind),
            };
            // Built only for a new workload; owned Pods add ports and IPs to their owner.
            let entry = by_key
                .entry((ns.clone(), name.clone(), kind))
                .or_insert_with(|| Workload {
                    index: 0,
                    namespace: ns.clone(),
                    name,
                    kind,
                    labels: w
                        .pod_labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value.clone()))
                        .collect(),
                    ports: Vec::new(),
                    ips: Vec::new(),
                    service_account: w
                        .service_account
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    host_network: w.host_network,
                });
            for p in &w.ports {
                if !entry.ports.contains(p) {
                    entry.ports.push(p.clone());
                }
            }
            for ip in &w.ips {
                if !entry.ips.contains(ip) {
                    entry.ips.push(*ip);
                }
            }
            if !namespaces.contains_key(&ns) {
                namespaces.insert(
                    ns.clone(),
                    NamespaceInfo {
                        name: ns.clone(),
                        labels: [(selector::NAMESPACE_NAME_LABEL.to_owned(), ns)].into(),
                        declared: false,
                    },
                );
            }
        }
        let mut workloads: Vec<Workload> = by_key.into_values().collect();
        for (i, w) in workloads.iter_mut().enumerate() {
            w.index = i;
            w.ips.sort();
        }
        Inventory {
            namespaces,
            workloads,
        }
    }

    /// The workload `namespace/name`.
    pub fn find(&self, full_name: &str) -> Option<&Workload> {
        let (ns, name) = full_name.split_once('/')?;
        self.workloads
            .iter()
            .find(|w| w.namespace == ns && w.name == name)
    }

    /// The workload that owns an IP (a Pod's `status.podIP`).
    pub fn by_ip(&self, ip: IpAddr) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.ips.contains(&ip))
    }

    pub fn namespace_labels(&self, ns: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(ns).map(|n| &n.labels)
    }

    /// The labels Cilium gives a workload's pods (all of source `k8s`): pod labels, namespace
    /// name, namespace labels, service account and cluster.
    pub fn cilium_labels(&self, w: &Workload) -> BTreeMap<String, String> {
        let mut labels = w.labels.clone();
        labels.insert(selector::NAMESPACE_LABEL.into(), w.namespace.clone());
        if let Some(ns_labels) = self.namespace_labels(&w.namespace) {
            for (k, v) in ns_labels {
                labels.insert(
                    format!("{}{k}", selector::NAMESPACE_LABELS_PREFIX),
                    v.clone(),
                );
            }
        }
        labels.insert(
            selector::SERVICE_ACCOUNT_LABEL.into(),
            w.service_account.clone(),
        );
        labels.insert(selector::CLUSTER_LABEL.into(), "default".into());
        labels
    }
}
