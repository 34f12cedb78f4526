//! Numeric identities for label sets: Cilium's reserved numbers, workload identities, and
//! local identities for CIDR prefixes and DNS-name selectors.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A security identity. 0 is the wildcard in policy keys ("any peer").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Identity(pub u32);

impl Identity {
    pub const ANY: Identity = Identity(0);
    pub const HOST: Identity = Identity(1);
    pub const WORLD: Identity = Identity(2);
    pub const UNMANAGED: Identity = Identity(3);
    pub const HEALTH: Identity = Identity(4);
    pub const INIT: Identity = Identity(5);
    pub const REMOTE_NODE: Identity = Identity(6);
    pub const KUBE_APISERVER: Identity = Identity(7);
    pub const INGRESS: Identity = Identity(8);
    pub const WORLD_IPV4: Identity = Identity(9);
    pub const WORLD_IPV6: Identity = Identity(10);

    /// The reserved identities with Cilium's names.
    pub const RESERVED: &'static [(Identity, &'static str)] = &[
        (Identity::HOST, "host"),
        (Identity::WORLD, "world"),
        (Identity::UNMANAGED, "unmanaged"),
        (Identity::HEALTH, "health"),
        (Identity::INIT, "init"),
        (Identity::REMOTE_NODE, "remote-node"),
        (Identity::KUBE_APISERVER, "kube-apiserver"),
        (Identity::INGRESS, "ingress"),
        (Identity::WORLD_IPV4, "world-ipv4"),
        (Identity::WORLD_IPV6, "world-ipv6"),
    ];

    /// First identity of cluster workloads (Cilium's cluster-local range starts at 256).
    pub const FIRST_WORKLOAD: u32 = 256;
    /// Local identities (CIDR prefixes, DNS-name selectors) live at 2^24 and above, as in Cilium.
    pub const FIRST_LOCAL: u32 = 1 << 24;

    /// Pseudo-identity in policy keys: every peer inside the cluster (workloads and the
    /// reserved cluster identities). Never carried by a packet; the lookup derives it.
    pub const CLUSTER_CLASS: Identity = Identity(0xFFFF_0001);
    /// Pseudo-identity in policy keys: every peer outside the cluster (world, CIDR and
    /// DNS-name identities).
    pub const WORLD_CLASS: Identity = Identity(0xFFFF_0002);
    /// Pseudo-identities in policy keys for "every pod of namespace N" start here (N is the
    /// namespace's index in the bundle).
    pub const FIRST_NAMESPACE: u32 = 0xFFFE_0000;

    /// The class pseudo-identity a peer identity belongs to, as the datapath derives it.
    pub fn class(self) -> Option<Identity> {
        match self.0 {
            0 => None,
            2 | 9 | 10 => Some(Identity::WORLD_CLASS),
            n if (Identity::FIRST_LOCAL..Identity::FIRST_NAMESPACE).contains(&n) => {
                Some(Identity::WORLD_CLASS)
            }
            n if n < Identity::FIRST_LOCAL => Some(Identity::CLUSTER_CLASS),
            _ => None,
        }
    }

    pub fn namespace(index: u32) -> Identity {
        Identity(Identity::FIRST_NAMESPACE + index)
    }

    pub fn is_reserved(self) -> bool {
        self.0 > 0 && self.0 < Identity::FIRST_WORKLOAD
    }

    pub fn is_local(self) -> bool {
        (Identity::FIRST_LOCAL..Identity::FIRST_NAMESPACE).contains(&self.0)
    }

    pub fn reserved_name(self) -> Option<&'static str> {
        Identity::RESERVED
            .iter()
            .find(|(i, _)| *i == self)
            .map(|(_, n)| *n)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The labels of a workload identity (all of source `k8s`), sorted.
pub type LabelSet = BTreeMap<String, String>;

/// Workload identities by label set. Offline, numbers are dealt in label-set order; live, the
/// table is an input: allocation keeps every number already handed out, so a pod coming or
/// going never renumbers another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityTable {
    /// Shared: a compile keeps the same label sets for selector matching (and they are
    /// about 1 KB each, 50,000 of them at 10,000 policies).
    by_labels: BTreeMap<Arc<LabelSet>, Identity>,
    used: std::collections::BTreeSet<u32>,
    /// No number below this is free (allocation then costs O(1) when dealing in order).
    free_from: u32,
}

impl IdentityTable {
    /// A table for exactly these label sets, numbered in their sorted order.
    pub fn deterministic<'a>(sets: impl IntoIterator<Item = &'a LabelSet>) -> IdentityTable {
        let sets: Vec<Arc<LabelSet>> = sets.into_iter().map(|s| Arc::new(s.clone())).collect();
        IdentityTable::deterministic_for(&sets).0
    }

    /// [`IdentityTable::deterministic`] for `sets`, with the identity of each set in order.
    /// One sort of the sets gives both: no lookup by label set afterwards. The table shares
    /// the sets.
    pub fn deterministic_for(sets: &[Arc<LabelSet>]) -> (IdentityTable, Vec<Identity>) {
        let mut order: Vec<usize> = (0..sets.len()).collect();
        order.sort_unstable_by(|a, b| sets[*a].cmp(&sets[*b]));
        let mut ids = vec![Identity(0); sets.len()];
        let mut distinct: Vec<(Arc<LabelSet>, Identity)> = Vec::new();
        let mut next = Identity::FIRST_WORKLOAD;
        for (at, i) in order.iter().enumerate() {
            let set = &sets[*i];
            if at == 0 || sets[order[at - 1]] != *set {
                distinct.push((Arc::clone(set), Identity(next)));
                next += 1;
            }
            ids[*i] = Identity(next - 1);
        }
        // Sorted input: the map and the set are built without comparisons of their own.
        let table = IdentityTable {
            used: distinct.iter().map(|(_, id)| id.0).collect(),
            free_from: if distinct.is_empty() { 0 } else { next },
            by_labels: distinct.into_iter().collect(),
        };
        (table, ids)
    }

    /// The identity of a label set, allocating the lowest free number for a new one.
    pub fn allocate(&mut self, labels: &LabelSet) -> Identity {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        self.insert_new(Arc::new(labels.clone()))
    }

    /// [`IdentityTable::allocate`] for a shared label set (kept without a copy when new).
    pub fn allocate_shared(&mut self, labels: &Arc<LabelSet>) -> Identity {
        if let Some(id) = self.by_labels.get(&**labels) {
            return *id;
        }
        self.insert_new(Arc::clone(labels))
    }

    fn insert_new(&mut self, labels: Arc<LabelSet>) -> Identity {
        let mut next = self.free_from.max(Identity::FIRST_WORKLOAD);
        while self.used.contains(&next) {
            next += 1;
        }
        self.free_from = next + 1;
        self.used.insert(next);
        let id = Identity(next);
        self.by_labels.insert(labels, id);
        id
    }

    /// A table holding exactly these numbers (an agent restoring the allocation it persisted).
    /// A label set or number given twice keeps its first pairing.
    pub fn restore(pairs: impl IntoIterator<Item = (LabelSet, Identity)>) -> IdentityTable {
        let mut table = IdentityTable::default();
        for (labels, id) in pairs {
            if table.by_labels.contains_key(&labels) || !table.used.insert(id.0) {
                continue;
            }
            table.by_labels.insert(Arc::new(labels), id);
        }
        table
    }

    pub fn get(&self, labels: &LabelSet) -> Option<Identity> {
        self.by_labels.get(labels).copied()
    }

    /// Forgets label sets no longer in use (their numbers become free again).
    pub fn retain(&mut self, mut keep: impl FnMut(&LabelSet) -> bool) {
        self.by_labels.retain(|l, _| keep(l.as_ref()));
        self.used = self.by_labels.values().map(|i| i.0).collect();
        self.free_from = Identity::FIRST_WORKLOAD;
    }

    pub fn iter(&self) -> impl Iterator<Item = (&LabelSet, Identity)> {
        self.by_labels.iter().map(|(l, i)| (l.as_ref(), *i))
    }

    pub fn len(&self) -> usize {
        self.by_labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_labels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(app: &str) -> LabelSet {
        [("app".to_owned(), app.to_owned())].into()
    }

    #[test]
    fn deterministic_numbers_follow_label_order_and_match_allocation() {
        let sets = [set("c"), set("a"), set("c"), set("b")].map(Arc::new);
        let (t, ids) = IdentityTable::deterministic_for(&sets);
        assert_eq!(
            ids,
            [Identity(258), Identity(256), Identity(258), Identity(257)]
        );
        let mut allocated = IdentityTable::default();
        for s in [set("a"), set("b"), set("c")] {
            allocated.allocate(&s);
        }
        assert_eq!(t, allocated);
    }

    #[test]
    fn live_allocation_keeps_numbers() {
        let mut t = IdentityTable::deterministic([&set("a"), &set("b"), &set("c")]);
        assert_eq!(t.get(&set("b")), Some(Identity(257)));
        t.retain(|l| l != &set("a"));
        // A new set takes the freed number; the others keep theirs.
        assert_eq!(t.allocate(&set("d")), Identity(256));
        assert_eq!(t.get(&set("b")), Some(Identity(257)));
        assert_eq!(t.get(&set("c")), Some(Identity(258)));
    }

    #[test]
    fn a_restored_table_keeps_its_numbers_and_allocates_around_them() {
        let mut t = IdentityTable::restore([
            (set("b"), Identity(300)),
            (set("a"), Identity(256)),
            (set("dup"), Identity(300)),
        ]);
        assert_eq!(t.get(&set("b")), Some(Identity(300)));
        assert_eq!(t.get(&set("dup")), None);
        assert_eq!(t.allocate(&set("c")), Identity(257));
        assert_eq!(t.allocate(&set("b")), Identity(300));
    }
}
