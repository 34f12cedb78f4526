//! Lowering: resolves IR rules to identities through a selector cache and writes each
//! endpoint's policy entries, ipcache, DNS-name selectors and L7 sets into a bundle.
//!
//! The lowering state (selector caches, rule peers, the rules applying to each identity, the
//! policy tables by rule set) stays in [`Compiled`], so that [`Compiled::update_policies`] can
//! recompile only what a changed policy touches.

use crate::bundle::{self, *};
use crate::identity::{Identity, IdentityTable, LabelSet};
use crate::inventory::Inventory;
use crate::ir::{self, EndpointSelector, Peer, PortMatch, Rule, L4, L7};
use crate::ports::{range_to_prefixes, PortPrefix};
use policy_lang::model::{Entity, FqdnMatch, IcmpFamily, Policy, PolicyKind, Protocol, Tree};
use policy_lang::SourceMap;
// foldhash for the lowering's maps (keys are selectors, strings and rule lists, hashed
// millions of times): several times cheaper than SipHash. Nothing iterates these maps into
// the bundle, so their order never shows.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Everything a compile produces besides the bundle: the inputs lowering resolved, for
/// `trace` and the enforcer, and the lowering state that [`Compiled::update_policies`] reuses.
pub struct Compiled {
    pub bundle: Bundle,
    /// IR rules, by the index that [`Bundle::rules`] and every entry use. After
    /// [`Compiled::update_policies`], the rules a changed policy no longer has stay in place
    /// (no entry of a table in use refers to them: see [`Compiled::rule_alive`]) and its new
    /// rules follow.
    pub rules: Vec<Rule>,
    pub inventory: Inventory,
    pub identities: IdentityTable,
    state: Lowering,
}

/// Compiles a typed tree. `identities` is the live allocation table (numbers kept stable);
/// `None` deals numbers deterministically from the tree.
pub fn compile(
    tree: &Tree,
    sources: &SourceMap,
    identities: Option<IdentityTable>,
    options: Options,
) -> Compiled {
    let t = crate::timing::Phase::start();
    // Rules and workloads are independent: normalize on another core meanwhile.
    let (inventory, labels, (identities, workload_identity), rules) = std::thread::scope(|s| {
        let rules = s.spawn(|| ir::normalize(tree, sources));
        let inventory = Inventory::from_tree(tree);
        t.lap("inventory");
        // On every core (normalize is short and done by now).
        let labels: Vec<Arc<LabelSet>> =
            policy_lang::parallel::map(&inventory.workloads, |_, w| {
                Arc::new(inventory.cilium_labels(w))
            });
        t.lap("labels");
        let numbered = match identities {
            Some(mut t) => {
                let ids = labels.iter().map(|l| t.allocate_shared(l)).collect();
                (t, ids)
            }
            None => IdentityTable::deterministic_for(&labels),
        };
        t.lap("identities");
        let rules = rules
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        t.lap("normalize (rest)");
        (inventory, labels, numbered, rules)
    });
    let mut state = Lowering::new(
        &inventory,
        labels,
        workload_identity,
        &rules,
        TreeCounts::of(tree),
    );
    t.lap("lowering state");
    let bundle = state.run(&inventory, &rules, options);
    t.lap("run");
    Compiled {
        bundle,
        rules,
        inventory,
        identities,
        state,
    }
}

/// A policy as [`Compiled::update_policies`] names it: kind, namespace (empty for a
/// clusterwide policy) and name.
pub type PolicyKey = (PolicyKind, String, String);

/// Why [`Compiled::update_policies`] refused: only a full [`compile`] handles the change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "the tree's workloads, namespaces, Services or EndpointSlices changed \
         ({before:?} before, {after:?} now): compile it in full"
    )]
    InventoryChanged {
        before: TreeCounts,
        after: TreeCounts,
    },
}

/// The number of inventory objects of a tree: the cheap check [`Compiled::update_policies`]
/// makes that only policies changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeCounts {
    pub namespaces: usize,
    pub workloads: usize,
    pub services: usize,
    pub endpoint_slices: usize,
}

impl TreeCounts {
    pub fn of(tree: &Tree) -> TreeCounts {
        TreeCounts {
            namespaces: tree.namespaces.len(),
            workloads: tree.workloads.len(),
            services: tree.services.len(),
            endpoint_slices: tree.endpoint_slices.len(),
        }
    }
}

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Rules of the changed policies as compiled before that are gone (now unreferenced).
    pub removed_rules: usize,
    /// Rules of the changed policies as the new tree has them that are new.
    pub added_rules: usize,
    /// Rules of the changed policies that lower as before: kept, with their new origin.
    pub kept_rules: usize,
    /// Other rules whose CIDR peers gained a new prefix identity (their tables are rebuilt).
    pub recomputed_rules: usize,
    /// New CIDR prefix and DNS-name selector identities.
    pub new_local_identities: usize,
    /// Workload identities whose applicable rules changed.
    pub affected_identities: usize,
    /// Endpoints whose policy table was looked up again.
    pub affected_endpoints: usize,
    /// Policy tables computed (the others were reused).
    pub new_policies: usize,
}

impl Compiled {
    /// Recompiles after some policies changed: `tree` is the new tree and `changed` names
    /// every policy modified, added or removed since the tree this was compiled from (listing
    /// an unchanged policy is harmless and cheap; one left out keeps its old rules). For a
    /// clusterwide policy the namespace is ignored.
    ///
    /// Only policies may have changed: workloads, namespaces, Services and EndpointSlices must
    /// be those of the compiled tree (a full [`compile`] is needed otherwise: `toServices`
    /// and selectors are resolved against them). The check is cheap and partial: it compares
    /// object counts and refuses with [`UpdateError::InventoryChanged`] when they differ;
    /// changed contents with equal counts are taken on trust.
    ///
    /// What it does: rules of the changed policies that lower exactly as before are kept
    /// (their origin updated), the others die and the new ones are appended; new CIDR
    /// prefixes and DNS-name selectors get identities after the existing ones, and rules
    /// whose CIDRs hold a new prefix gain its identity; then every endpoint whose identity
    /// a dead, new or re-resolved rule selects gets the table of its (rules, named ports),
    /// reused when one exists, else computed (on every core when there are several).
    ///
    /// The bundle then judges every flow as a fresh compile of `tree` does, but is not byte
    /// for byte the same: dead rules keep their index in [`Bundle::rules`] with no entry of
    /// a table in use referring to them, new rules follow; new CIDR and DNS-name identities
    /// number on after the existing ones, and those only removed policies named stay (with
    /// their ipcache entries: every rule still resolves them consistently); new policy
    /// tables and L7 sets are appended and tables no endpoint uses any more stay. A full
    /// compile compacts all of this. Origins (file, line) of policies not listed stay as
    /// compiled, even if their file moved them.
    pub fn update_policies(
        &mut self,
        tree: &Tree,
        sources: &SourceMap,
        changed: &[PolicyKey],
    ) -> Result<UpdateStats, UpdateError> {
        let Compiled {
            bundle,
            rules,
            inventory,
            state,
            ..
        } = self;
        state.update(inventory, rules, bundle, tree, sources, changed)
    }

    /// Whether rule `index` still belongs to the compiled policies (rules of policies changed
    /// by [`Compiled::update_policies`] do not).
    pub fn rule_alive(&self, index: usize) -> bool {
        self.state.alive.get(index).copied().unwrap_or(false)
    }
}

/// The lowering state, owned so that it outlives a compile.
struct Lowering {
    /// Identity of each workload (by inventory index).
    workload_identity: Vec<Identity>,
    /// Labels of each workload identity.
    identity_labels: BTreeMap<Identity, Arc<LabelSet>>,
    /// Workload indexes of each identity.
    identity_workloads: BTreeMap<Identity, Vec<usize>>,
    /// The identities all of whose workloads have pod IPs (only they can lie in an ipBlock).
    addressed_identities: BTreeMap<Identity, Vec<usize>>,
    /// The pod IPs of those identities, sorted, to find the ones inside a prefix.
    addressed_ips: Vec<(std::net::IpAddr, Identity)>,
    /// The bundle's entries for the workload identities, made early; taken by `finish`.
    workload_infos: Vec<IdentityInfo>,
    /// key → value → identities carrying that label, to prune selector matching.
    label_index: HashMap<String, HashMap<String, Vec<Identity>>>,
    cidr_identities: BTreeMap<ipnet::IpNet, Identity>,
    /// Namespace names by index, and the label set selectors see for each.
    namespaces: Vec<(String, LabelSet)>,
    identity_namespace: BTreeMap<Identity, u32>,
    peer_cache: HashMap<EndpointSelector, Vec<Identity>>,
    fqdn_identities: BTreeMap<FqdnMatch, Identity>,
    selector_cache: HashMap<EndpointSelector, Vec<Identity>>,
    /// Per rule: its peer keys (empty for a rule that selects no subject).
    rule_peers: Vec<Vec<Identity>>,
    /// Per workload identity: the rules that select it, ascending.
    per_identity: BTreeMap<Identity, Vec<usize>>,
    /// Policy table by (applicable rules, named ports).
    policy_ids: HashMap<(Vec<usize>, Vec<bundle::NamedPort>), u32>,
    /// L7 set numbers.
    l7_sets: HashMap<L7Set, u32>,
    /// Per rule: false once its policy changed.
    alive: Vec<bool>,
    tree_counts: TreeCounts,
}

/// The position of each of a sorted list of identities, in O(1) when they are dense (workload
/// identities are numbered from 256 on), by binary search otherwise.
struct DensePositions<'a> {
    keys: &'a [Identity],
    first: u32,
    /// Position + 1 of identity `first + i`; 0 for none. Empty when the keys are sparse.
    table: Vec<u32>,
}

impl<'a> DensePositions<'a> {
    fn new(keys: &'a [Identity]) -> Self {
        let (first, last) = match (keys.first(), keys.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => (0, 0),
        };
        let span = (last - first) as usize + 1;
        let mut table = Vec::new();
        if !keys.is_empty() && span <= 4 * keys.len() && keys.len() < u32::MAX as usize {
            table = vec![0; span];
            for (i, k) in keys.iter().enumerate() {
                table[(k.0 - first) as usize] = i as u32 + 1;
            }
        }
        DensePositions { keys, first, table }
    }

    fn get(&self, id: Identity) -> Option<usize> {
        if self.table.is_empty() {
            return self.keys.binary_search(&id).ok();
        }
        let at = *self.table.get(id.0.checked_sub(self.first)? as usize)?;
        at.checked_sub(1).map(|p| p as usize)
    }
}

/// First local identity of DNS-name selectors (CIDR identities count up from 2^24).
const FIRST_FQDN: u32 = Identity::FIRST_LOCAL + (1 << 23);

/// The CIDR prefixes and DNS-name selectors rules mention.
fn local_peers<'r>(
    rules: impl IntoIterator<Item = &'r Rule>,
) -> (BTreeSet<ipnet::IpNet>, BTreeSet<&'r FqdnMatch>) {
    let mut prefixes = BTreeSet::new();
    let mut fqdns = BTreeSet::new();
    for r in rules {
        for p in &r.peers {
            match p {
                Peer::Cidr { cidr, except, .. } => {
                    prefixes.insert(*cidr);
                    prefixes.extend(except.iter().copied());
                }
                Peer::Fqdn(f) => {
                    fqdns.insert(f);
                }
                _ => {}
            }
        }
    }
    (prefixes, fqdns)
}

impl Lowering {
    fn new(
        inventory: &Inventory,
        labels: Vec<Arc<LabelSet>>,
        workload_identity: Vec<Identity>,
        rules: &[Rule],
        tree_counts: TreeCounts,
    ) -> Self {
        // Workloads by identity; sorted, so that the maps below are built in one pass.
        let mut by_identity: Vec<(Identity, usize)> = workload_identity
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        by_identity.sort_unstable();
        let mut identity_workloads: BTreeMap<Identity, Vec<usize>> = BTreeMap::new();
        let mut labels: Vec<Option<Arc<LabelSet>>> = labels.into_iter().map(Some).collect();
        let mut identity_labels: Vec<(Identity, Arc<LabelSet>)> = Vec::new();
        for group in by_identity.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            // Workloads of one identity have the same labels: keep the first's.
            if let Some(l) = labels.get_mut(group[0].1).and_then(Option::take) {
                identity_labels.push((id, l));
            }
            identity_workloads.insert(id, group.iter().map(|(_, w)| *w).collect());
        }
        drop(labels);
        let identity_labels: BTreeMap<Identity, Arc<LabelSet>> =
            identity_labels.into_iter().collect();
        // The bundle's copy of every label set (a few hundred ms at 50,000 workloads) is made
        // on another core while this one indexes them.
        let (label_index, workload_infos) = std::thread::scope(|scope| {
            let infos = scope.spawn(|| workload_infos(&identity_labels));
            let mut label_index: HashMap<String, HashMap<String, Vec<Identity>>> = HashMap::new();
            for (id, l) in &identity_labels {
                for (k, v) in l.iter() {
                    let values = match label_index.get_mut(k.as_str()) {
                        Some(values) => values,
                        None => label_index.entry(k.clone()).or_default(),
                    };
                    match values.get_mut(v.as_str()) {
                        Some(ids) => ids.push(*id),
                        None => {
                            values.insert(v.clone(), vec![*id]);
                        }
                    }
                }
            }
            let infos = infos
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (label_index, infos)
        });
        let (prefixes, fqdns) = local_peers(rules);
        let namespaces: Vec<(String, LabelSet)> = inventory
            .namespaces
            .values()
            .map(|n| {
                let mut labels: LabelSet = n
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        (
                            format!("{}{k}", policy_lang::selector::NAMESPACE_LABELS_PREFIX),
                            v.clone(),
                        )
                    })
                    .collect();
                labels.insert(
                    policy_lang::selector::NAMESPACE_LABEL.to_owned(),
                    n.name.clone(),
                );
                (n.name.clone(), labels)
            })
            .collect();
        // Namespaces come sorted by name (from the inventory's map).
        let identity_namespace = identity_labels
            .iter()
            .filter_map(|(id, l)| {
                let ns = l.get(policy_lang::selector::NAMESPACE_LABEL)?;
                let i = namespaces.binary_search_by(|(n, _)| n.cmp(ns)).ok()?;
                Some((*id, i as u32))
            })
            .collect();
        let cidr_identities = prefixes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, Identity(Identity::FIRST_LOCAL + i as u32)))
            .collect();
        let fqdn_identities = fqdns
            .into_iter()
            .enumerate()
            .map(|(i, f)| (f.clone(), Identity(FIRST_FQDN + i as u32)))
            .collect();
        let addressed_identities = identity_workloads
            .iter()
            .filter(|(_, ws)| {
                ws.iter().all(|w| {
                    inventory
                        .workloads
                        .get(*w)
                        .is_some_and(|w| !w.ips.is_empty())
                })
            })
            .map(|(id, ws)| (*id, ws.clone()))
            .collect::<BTreeMap<Identity, Vec<usize>>>();
        let mut addressed_ips: Vec<(std::net::IpAddr, Identity)> = addressed_identities
            .iter()
            .flat_map(|(id, ws)| {
                ws.iter()
                    .flat_map(|w| inventory.workloads[*w].ips.iter().map(|ip| (*ip, *id)))
            })
            .collect();
        addressed_ips.sort_unstable();
        addressed_ips.dedup();
        Lowering {
            addressed_identities,
            addressed_ips,
            workload_identity,
            identity_labels,
            identity_workloads,
            label_index,
            workload_infos,
            cidr_identities,
            namespaces,
            identity_namespace,
            peer_cache: HashMap::new(),
            fqdn_identities,
            selector_cache: HashMap::new(),
            rule_peers: Vec::new(),
            per_identity: BTreeMap::new(),
            policy_ids: HashMap::new(),
            l7_sets: HashMap::new(),
            alive: vec![true; rules.len()],
            tree_counts,
        }
    }

    /// The workload identities a selector selects (cached: many rules share selectors).
    fn select(&mut self, sel: &EndpointSelector) -> Vec<Identity> {
        if let Some(ids) = self.selector_cache.get(sel) {
            return ids.clone();
        }
        let ids = self.compute_selection(sel);
        self.selector_cache.insert(sel.clone(), ids.clone());
        ids
    }

    /// Fills the selector cache for every subject and peer selector of the rules, on every
    /// core.
    fn warm_selector_cache(&mut self, rules: &[Rule]) {
        let mut selectors: Vec<&EndpointSelector> = Vec::new();
        for r in rules {
            selectors.push(&r.subject);
            for p in &r.peers {
                if let Peer::Endpoints(sel) = p {
                    selectors.push(sel);
                }
            }
        }
        let t = crate::timing::Phase::start();
        // Deduplicated by hash, not sorted: comparing selectors compares their strings, and
        // the order of the work does not matter (results go into a map).
        let mut seen: HashSet<&EndpointSelector> = HashSet::with_capacity(selectors.len());
        selectors.retain(|sel| !self.selector_cache.contains_key(*sel) && seen.insert(*sel));
        drop(seen);
        t.lap("    selectors deduplicated");
        let this = &*self;
        let results = policy_lang::parallel::map(&selectors, |_, sel| this.compute_selection(sel));
        t.lap("    selections");
        self.selector_cache.reserve(selectors.len());
        for (sel, ids) in selectors.into_iter().zip(results) {
            self.selector_cache.insert(sel.clone(), ids);
        }
    }

    /// The workload identities a selector selects, ascending.
    fn compute_selection(&self, sel: &EndpointSelector) -> Vec<Identity> {
        if sel.impossible {
            return Vec::new();
        }
        // `key In [value]` requirements are answered by the label index: intersect their
        // lists (sorted by identity), shortest first; check the other requirements on labels.
        let mut lists: Vec<&[Identity]> = Vec::new();
        for r in &sel.reqs {
            if let Some(v) = r.single_value() {
                let list = self
                    .label_index
                    .get(r.key.as_str())
                    .and_then(|values| values.get(v))
                    .map_or(&[][..], Vec::as_slice);
                lists.push(list);
            }
        }
        let rest = || sel.reqs.iter().filter(|r| r.single_value().is_none());
        let labels_match = |id: &Identity| {
            self.identity_labels
                .get(id)
                .is_some_and(|l| rest().all(|r| r.matches(l)))
        };
        if lists.is_empty() {
            return self
                .identity_labels
                .iter()
                .filter(|(_, l)| sel.matches(l))
                .map(|(id, _)| *id)
                .collect();
        }
        lists.sort_by_key(|l| l.len());
        let (first, others) = lists
            .split_first()
            .map_or((&[][..], &[][..]), |(f, o)| (*f, o));
        let mut ids: Vec<Identity> = first
            .iter()
            .copied()
            .filter(|id| others.iter().all(|o| o.binary_search(id).is_ok()))
            .collect();
        if rest().next().is_some() {
            ids.retain(labels_match);
        }
        ids
    }

    /// A selector as policy-key peers: a selector that only looks at namespaces becomes the
    /// namespaces' pseudo-identities (one key instead of one per pod identity); any other
    /// selector, the identities it selects.
    fn select_peers(&mut self, sel: &EndpointSelector) -> Vec<Identity> {
        let namespace_only = !sel.reqs.is_empty()
            && sel.reqs.iter().all(|r| {
                r.key == policy_lang::selector::NAMESPACE_LABEL
                    || r.key
                        .starts_with(policy_lang::selector::NAMESPACE_LABELS_PREFIX)
            });
        if !namespace_only || sel.impossible {
            return self.select(sel);
        }
        if let Some(ids) = self.peer_cache.get(sel) {
            return ids.clone();
        }
        let ids: Vec<Identity> = self
            .namespaces
            .iter()
            .enumerate()
            .filter(|(_, (_, labels))| sel.matches(labels))
            .map(|(i, _)| Identity::namespace(i as u32))
            .collect();
        self.peer_cache.insert(sel.clone(), ids.clone());
        ids
    }

    /// The workload identities a policy-key peer stands for (for named ports).
    fn members(&self, peer: Identity) -> Vec<Identity> {
        if peer == Identity::ANY || peer == Identity::CLUSTER_CLASS {
            return self.identity_workloads.keys().copied().collect();
        }
        if peer.0 >= Identity::FIRST_NAMESPACE {
            let ns = peer.0 - Identity::FIRST_NAMESPACE;
            return self
                .identity_namespace
                .iter()
                .filter(|(_, n)| **n == ns)
                .map(|(id, _)| *id)
                .collect();
        }
        vec![peer]
    }

    /// The identities a peer stands for; `Identity::ANY` for every peer.
    fn peer_identities(&mut self, inventory: &Inventory, peer: &Peer) -> Vec<Identity> {
        match peer {
            Peer::All => vec![Identity::ANY],
            Peer::Nothing => Vec::new(),
            Peer::Endpoints(sel) => self.select_peers(sel),
            Peer::Entity(e) => self.entity_identities(*e),
            Peer::Cidr { cidr, except, pods } => {
                // Prefixes inside `cidr` sort right after it, up to its last address.
                let last =
                    ipnet::IpNet::new(cidr.broadcast(), cidr.max_prefix_len()).unwrap_or(*cidr);
                let mut ids: Vec<Identity> = self
                    .cidr_identities
                    .range(*cidr..=last)
                    .filter(|(p, _)| cidr.contains(*p) && !except.iter().any(|e| e.contains(*p)))
                    .map(|(_, id)| *id)
                    .collect();
                // A /0 holds every Internet address of its family, and the unspecified one.
                if cidr.prefix_len() == 0 {
                    ids.push(Identity::WORLD);
                    ids.push(match cidr {
                        ipnet::IpNet::V4(_) => Identity::WORLD_IPV4,
                        ipnet::IpNet::V6(_) => Identity::WORLD_IPV6,
                    });
                }
                if *pods {
                    // Candidates: identities with a pod IP inside the prefix.
                    let (first, last) = (cidr.network(), cidr.broadcast());
                    let from = self.addressed_ips.partition_point(|(ip, _)| *ip < first);
                    let to = self.addressed_ips.partition_point(|(ip, _)| *ip <= last);
                    let mut candidates: Vec<Identity> = self.addressed_ips[from..to]
                        .iter()
                        .map(|(_, id)| *id)
                        .collect();
                    candidates.sort_unstable();
                    candidates.dedup();
                    for id in candidates {
                        let Some(workloads) = self.addressed_identities.get(&id) else {
                            continue;
                        };
                        let inside = workloads.iter().all(|w| {
                            let ips = &inventory.workloads[*w].ips;
                            !ips.is_empty()
                                && ips.iter().all(|ip| {
                                    cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
                                })
                        });
                        if inside {
                            ids.push(id);
                        }
                    }
                }
                ids
            }
            Peer::Fqdn(f) => self.fqdn_identities.get(f).copied().into_iter().collect(),
        }
    }

    /// A rule's peer keys, sorted (none when it selects no subject).
    fn rule_peer_keys(
        &mut self,
        inventory: &Inventory,
        rule: &Rule,
        selects: bool,
    ) -> Vec<Identity> {
        let mut peers: Vec<Identity> = if !selects {
            Vec::new()
        } else {
            rule.peers
                .iter()
                .flat_map(|p| self.peer_identities(inventory, p))
                .collect()
        };
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    fn entity_identities(&self, e: Entity) -> Vec<Identity> {
        match e {
            Entity::All => vec![Identity::ANY],
            // Classes are one key each; the datapath derives a packet's class from its identity.
            Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 => vec![Identity::WORLD_CLASS],
            Entity::Cluster => vec![Identity::CLUSTER_CLASS],
            Entity::Host => vec![Identity::HOST],
            Entity::RemoteNode => vec![Identity::REMOTE_NODE],
            Entity::KubeApiserver => vec![Identity::KUBE_APISERVER],
            Entity::Health => vec![Identity::HEALTH],
            Entity::Init => vec![Identity::INIT],
            Entity::Unmanaged => vec![Identity::UNMANAGED],
            Entity::Ingress => vec![Identity::INGRESS],
            Entity::None => Vec::new(),
        }
    }

    /// Numbers a named port has on the pods of the given workloads, per protocol.
    fn named_ports(
        inventory: &Inventory,
        workloads: &[usize],
        name: &str,
        protocol: Protocol,
    ) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        for w in workloads {
            let Some(wl) = inventory.workloads.get(*w) else {
                continue;
            };
            for p in &wl.ports {
                if p.name.as_deref() == Some(name) && protocol_covers(protocol, p.protocol) {
                    out.push((proto_number(p.protocol), p.port));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Numbers an L7 set (the same set keeps its number), adding a new one to `l7`.
    fn intern_l7(&mut self, set: L7Set, l7: &mut Vec<L7Set>) -> u32 {
        if let Some(id) = self.l7_sets.get(&set) {
            return *id;
        }
        let id = self.l7_sets.len() as u32;
        l7.push(set.clone());
        self.l7_sets.insert(set, id);
        id
    }

    /// Computes policy tables (on every core when there are several), numbers their L7 sets,
    /// and appends them to `policies`.
    fn compute_policies(
        &mut self,
        inventory: &Inventory,
        rules: &[Rule],
        distinct: &[(usize, Vec<usize>)],
        policies: &mut Vec<EndpointPolicy>,
        l7: &mut Vec<L7Set>,
    ) {
        let this = &*self;
        let computed = policy_lang::parallel::map(distinct, |_, (wi, applicable)| {
            this.endpoint_policy(inventory, rules, *wi, applicable)
        });
        // L7 sets are numbered in policy order, so the bundle stays deterministic.
        policies.reserve(computed.len());
        for (mut policy, pending) in computed {
            for (entry, set) in pending {
                let id = self.intern_l7(set, l7);
                if let Some(e) = policy.entries.get_mut(entry) {
                    e.verdict = EntryVerdict::Redirect(id);
                }
            }
            policies.push(policy);
        }
    }

    fn run(&mut self, inventory: &Inventory, rules: &[Rule], options: Options) -> Bundle {
        let t = crate::timing::Phase::start();
        self.warm_selector_cache(rules);
        t.lap("  selector cache");
        // Per rule: its peer keys (once), and the rules that select each subject identity.
        self.rule_peers = Vec::with_capacity(rules.len());
        // Rule lists by position in `keys`: millions of (rule, subject) pairs, so no map
        // lookup for each, and every list allocated once at its final length.
        let keys: Vec<Identity> = self.identity_labels.keys().copied().collect();
        let position = DensePositions::new(&keys);
        let empty = Vec::new();
        let subjects_of = |rule: &Rule| self.selector_cache.get(&rule.subject).unwrap_or(&empty);
        let mut counts = vec![0usize; keys.len()];
        for rule in rules {
            for s in subjects_of(rule) {
                if let Some(at) = position.get(*s) {
                    counts[at] += 1;
                }
            }
        }
        let mut lists: Vec<Vec<usize>> = counts.iter().map(|n| Vec::with_capacity(*n)).collect();
        drop(counts);
        let mut selects = Vec::with_capacity(rules.len());
        for (ri, rule) in rules.iter().enumerate() {
            // The cache holds every subject selector now.
            let subjects = subjects_of(rule);
            for s in subjects {
                if let Some(at) = position.get(*s) {
                    lists[at].push(ri);
                }
            }
            selects.push(!subjects.is_empty());
        }
        for (rule, selects) in rules.iter().zip(selects) {
            let peers = self.rule_peer_keys(inventory, rule, selects);
            self.rule_peers.push(peers);
        }
        self.per_identity = keys
            .into_iter()
            .zip(lists)
            .filter(|(_, l)| !l.is_empty())
            .collect();
        t.lap("  rule peers");
        // Endpoints that the same rules select, with the same named ports, get identical
        // entries: they share one policy table (the datapath keys tables by policy id).
        // For each distinct policy: a workload it is computed for, and the rules.
        let mut distinct: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut endpoints: Vec<bundle::Endpoint> = inventory
            .workloads
            .iter()
            .enumerate()
            .map(|(wi, w)| {
                let mut ips = w.ips.clone();
                ips.sort();
                bundle::Endpoint {
                    name: w.full_name(),
                    identity: self.workload_identity[wi],
                    ips,
                    policy: 0,
                    named_ports: named_ports_of(w),
                }
            })
            .collect();
        // Tables by borrowed (rules, named ports) first: one key clone per table, not one per
        // endpoint.
        let mut table_of = Vec::with_capacity(endpoints.len());
        {
            let mut tables: HashMap<(&[usize], &[bundle::NamedPort]), u32> = HashMap::new();
            for (wi, ep) in endpoints.iter().enumerate() {
                let applicable = self
                    .per_identity
                    .get(&ep.identity)
                    .map_or(&[][..], Vec::as_slice);
                let next = distinct.len() as u32;
                let table = *tables
                    .entry((applicable, &ep.named_ports))
                    .or_insert_with(|| {
                        distinct.push((wi, applicable.to_vec()));
                        next
                    });
                table_of.push(table);
            }
        }
        // Room for as many tables as endpoints: updates rarely make it grow (and rehash).
        self.policy_ids.reserve(inventory.workloads.len());
        for (table, (wi, applicable)) in distinct.iter().enumerate() {
            let named = endpoints[*wi].named_ports.clone();
            self.policy_ids
                .insert((applicable.clone(), named), table as u32);
        }
        for (ep, table) in endpoints.iter_mut().zip(table_of) {
            ep.policy = table;
        }
        t.lap("  endpoints");
        let mut policies = Vec::new();
        let mut l7 = Vec::new();
        self.compute_policies(inventory, rules, &distinct, &mut policies, &mut l7);
        t.lap("  policies");
        let b = self.finish(inventory, rules, options, endpoints, policies, l7);
        t.lap("  finish");
        b
    }

    fn update<'a>(
        &mut self,
        inventory: &Inventory,
        rules: &mut Vec<Rule>,
        bundle: &mut Bundle,
        tree: &'a Tree,
        sources: &SourceMap,
        changed: &'a [PolicyKey],
    ) -> Result<UpdateStats, UpdateError> {
        let counts = TreeCounts::of(tree);
        if counts != self.tree_counts {
            return Err(UpdateError::InventoryChanged {
                before: self.tree_counts,
                after: counts,
            });
        }
        let mut stats = UpdateStats::default();
        if changed.is_empty() {
            return Ok(stats);
        }
        // (kind, namespace, name) as rule origins spell them.
        let scope = |kind: PolicyKind, namespace: &'a str| -> &'a str {
            if kind == PolicyKind::CiliumClusterwideNetworkPolicy {
                ""
            } else {
                namespace
            }
        };
        // (name, namespace, kind): names tell policies apart fastest.
        let mut keys: Vec<(&str, &str, &str)> = changed
            .iter()
            .map(|(kind, ns, name)| (name.as_str(), scope(*kind, ns), kind.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // The position of a policy in `keys`, if it changed.
        let changed_at = |kind: &str, namespace: &str, name: &str| {
            if keys.len() <= 8 {
                keys.iter()
                    .position(|k| k.0 == name && k.1 == namespace && k.2 == kind)
            } else {
                keys.binary_search(&(name, namespace, kind)).ok()
            }
        };
        // Affected: the workload identities whose applicable rules or rule peers change.
        let mut affected: BTreeSet<Identity> = BTreeSet::new();

        // 1. The changed policies' rules as compiled, by policy.
        let mut old: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (ri, o) in bundle.rules.iter().enumerate() {
            if !self.alive[ri] {
                continue;
            }
            if let Some(k) = changed_at(&o.kind, &o.namespace, &o.name) {
                old[k].push(ri);
            }
        }

        // 2. Their rules as the new tree has them, in `normalize` order. A new rule that
        // lowers exactly as an old one of its policy takes its place (only its origin is
        // updated); the other old rules die, the other new ones follow.
        let mut policies: Vec<(&Policy, usize)> = tree
            .policies
            .iter()
            .filter_map(|p| {
                let m = p.meta();
                let k = changed_at(
                    p.kind().as_str(),
                    scope(p.kind(), &m.namespace.value),
                    &m.name.value,
                )?;
                Some((p, k))
            })
            .collect();
        policies.sort_by(|(a, _), (b, _)| {
            (a.kind(), &a.meta().namespace.value, &a.meta().name.value).cmp(&(
                b.kind(),
                &b.meta().namespace.value,
                &b.meta().name.value,
            ))
        });
        let mut added: Vec<Rule> = Vec::new();
        let mut kept: Vec<(usize, Rule)> = Vec::new();
        for (p, k) in policies {
            for rule in ir::normalize_policy(p, tree, sources) {
                let candidates = &mut old[k];
                let same = candidates
                    .iter()
                    .position(|o| same_lowering(&rules[*o], &rule))
                    .map(|at| candidates.remove(at));
                match same {
                    Some(o) => kept.push((o, rule)),
                    None => added.push(rule),
                }
            }
        }
        for (o, rule) in kept {
            bundle.rules[o] = rule.origin.clone();
            rules[o].origin = rule.origin;
            rules[o].span = rule.span;
            stats.kept_rules += 1;
        }
        let mut dead: Vec<usize> = old.into_iter().flatten().collect();
        dead.sort_unstable();
        for ri in dead {
            self.alive[ri] = false;
            affected.extend(self.select(&rules[ri].subject));
            self.rule_peers[ri] = Vec::new();
            stats.removed_rules += 1;
        }
        let first_new = rules.len();
        stats.added_rules = added.len();
        bundle.rules.extend(added.iter().map(|r| r.origin.clone()));
        rules.extend(added);
        self.alive.resize(rules.len(), true);

        // 3. New CIDR prefixes and DNS-name selectors get local identities after the others.
        let (prefixes, fqdns) = local_peers(&rules[first_new..]);
        let mut new_prefixes = Vec::new();
        for p in prefixes {
            if !self.cidr_identities.contains_key(&p) {
                let id = Identity(Identity::FIRST_LOCAL + self.cidr_identities.len() as u32);
                self.cidr_identities.insert(p, id);
                new_prefixes.push((p, id));
            }
        }
        let mut new_fqdns = Vec::new();
        for f in fqdns {
            if !self.fqdn_identities.contains_key(f) {
                let id = Identity(FIRST_FQDN + self.fqdn_identities.len() as u32);
                self.fqdn_identities.insert(f.clone(), id);
                new_fqdns.push((f.clone(), id));
            }
        }
        stats.new_local_identities = new_prefixes.len() + new_fqdns.len();

        // 4. Addresses in a new prefix now carry its identity: rules whose CIDRs hold it need
        // it among their peers (nothing else about their peers changes). Tables built from
        // their old peers are stale.
        if !new_prefixes.is_empty() {
            let mut stale = vec![false; first_new];
            for ri in 0..first_new {
                if !self.alive[ri] {
                    continue;
                }
                let rule = &rules[ri];
                let mut gained: Vec<Identity> = Vec::new();
                for p in &rule.peers {
                    let Peer::Cidr { cidr, except, .. } = p else {
                        continue;
                    };
                    gained.extend(
                        new_prefixes
                            .iter()
                            .filter(|(n, _)| {
                                cidr.contains(n) && !except.iter().any(|e| e.contains(n))
                            })
                            .map(|(_, id)| *id),
                    );
                }
                if gained.is_empty() {
                    continue;
                }
                let subjects = self.select(&rule.subject);
                if subjects.is_empty() {
                    continue;
                }
                let peers = &mut self.rule_peers[ri];
                peers.extend(gained);
                peers.sort_unstable();
                peers.dedup();
                affected.extend(subjects);
                stale[ri] = true;
                stats.recomputed_rules += 1;
            }
            if stats.recomputed_rules > 0 {
                self.policy_ids.retain(|(applicable, _), _| {
                    !applicable.iter().any(|r| stale.get(*r) == Some(&true))
                });
            }
        }

        // 5. The new rules' subjects and peers.
        self.warm_selector_cache(&rules[first_new..]);
        let mut new_subjects = Vec::with_capacity(rules.len() - first_new);
        for rule in &rules[first_new..] {
            let subjects = self.select(&rule.subject);
            let peers = self.rule_peer_keys(inventory, rule, !subjects.is_empty());
            self.rule_peers.push(peers);
            affected.extend(subjects.iter().copied());
            new_subjects.push(subjects);
        }

        // 6. The rules applying to each affected identity.
        for id in &affected {
            if let Some(list) = self.per_identity.get_mut(id) {
                list.retain(|r| self.alive[*r]);
            }
        }
        for (i, subjects) in new_subjects.into_iter().enumerate() {
            for s in subjects {
                self.per_identity.entry(s).or_default().push(first_new + i);
            }
        }
        for id in &affected {
            if self
                .per_identity
                .get(id)
                .is_some_and(|list| list.is_empty())
            {
                self.per_identity.remove(id);
            }
        }
        stats.affected_identities = affected.len();

        // 7. Endpoints of affected identities: an existing table for the same rules and named
        // ports, else a new one.
        let mut distinct: Vec<(usize, Vec<usize>)> = Vec::new();
        let empty = Vec::new();
        let first_policy = bundle.policies.len();
        for id in &affected {
            let Some(workloads) = self.identity_workloads.get(id) else {
                continue;
            };
            let applicable = self.per_identity.get(id).unwrap_or(&empty);
            for wi in workloads {
                let Some(ep) = bundle.endpoints.get_mut(*wi) else {
                    continue;
                };
                let next = (first_policy + distinct.len()) as u32;
                ep.policy = *self
                    .policy_ids
                    .entry((applicable.clone(), ep.named_ports.clone()))
                    .or_insert_with(|| {
                        distinct.push((*wi, applicable.clone()));
                        next
                    });
                stats.affected_endpoints += 1;
            }
        }
        stats.new_policies = distinct.len();
        self.compute_policies(
            inventory,
            rules,
            &distinct,
            &mut bundle.policies,
            &mut bundle.l7,
        );

        // 8. New local identities in the identity list, ipcache and DNS-name selectors.
        for (prefix, id) in &new_prefixes {
            insert_identity(
                &mut bundle.identities,
                IdentityInfo {
                    id: *id,
                    kind: IdentityKind::Cidr { prefix: *prefix },
                },
            );
            let at = bundle.ipcache.partition_point(|e| e.prefix < *prefix);
            // A pod address keeps its workload identity, as in a full compile.
            if bundle.ipcache.get(at).is_none_or(|e| e.prefix != *prefix) {
                bundle.ipcache.insert(
                    at,
                    IpcacheEntry {
                        prefix: *prefix,
                        identity: *id,
                    },
                );
            }
        }
        for (f, id) in &new_fqdns {
            let (info, selector) = fqdn_info(f, *id);
            insert_identity(&mut bundle.identities, info);
            bundle.fqdn_selectors.push(selector);
        }
        Ok(stats)
    }

    fn endpoint_policy(
        &self,
        inventory: &Inventory,
        rules: &[Rule],
        wi: usize,
        applicable: &[usize],
    ) -> (EndpointPolicy, Vec<(usize, L7Set)>) {
        /// What one rule's L4 match contributes to a key.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        enum Says {
            Deny,
            Allow,
            /// L7 rules: rule index and position of the match in the rule's ports.
            L7(u32, u32),
        }
        let mut policy = EndpointPolicy::default();
        // Redirect entries and their L7 sets, numbered by the caller.
        let mut pending: Vec<(usize, L7Set)> = Vec::new();
        // Every (key, rule, what) contribution; sorted and grouped below. Flat vectors keep
        // millions of entries cheap.
        let mut contributions: Vec<(EntryKey, u32, Says)> = Vec::new();
        for ri in applicable {
            let rule = &rules[*ri];
            let peers = &self.rule_peers[*ri];
            let dir = Dir::from(rule.direction);
            if rule.enforces {
                match dir {
                    Dir::Ingress => policy.ingress_enforced = true,
                    Dir::Egress => policy.egress_enforced = true,
                }
            }
            for (pi, (l4, l7)) in rule.ports.iter().enumerate() {
                let says = match (rule.deny, l7) {
                    (true, _) => Says::Deny,
                    (false, None) => Says::Allow,
                    (false, Some(_)) => Says::L7(*ri as u32, pi as u32),
                };
                let mut push = |peer: Identity, protocol: u8, port: PortPrefix| {
                    contributions.push((
                        EntryKey {
                            direction: dir,
                            peer,
                            protocol,
                            port,
                        },
                        *ri as u32,
                        says,
                    ));
                };
                match l4 {
                    L4::All => peers
                        .iter()
                        .for_each(|p| push(*p, proto::ANY, PortPrefix::ALL)),
                    L4::Icmp { family, icmp_type } => {
                        let p = if *family == IcmpFamily::V4 {
                            proto::ICMP
                        } else {
                            proto::ICMPV6
                        };
                        peers.iter().for_each(|peer| {
                            push(*peer, p, PortPrefix::single(u16::from(*icmp_type)))
                        });
                    }
                    L4::Port { protocol, port } => match port {
                        PortMatch::Any | PortMatch::Range(..) => {
                            let prefixes = match port {
                                PortMatch::Range(a, b) => range_to_prefixes(*a, *b),
                                _ => vec![PortPrefix::ALL],
                            };
                            for p in protocols(*protocol) {
                                for peer in peers {
                                    prefixes.iter().for_each(|x| push(*peer, p, *x));
                                }
                            }
                        }
                        PortMatch::Named(name) => {
                            if dir == Dir::Ingress {
                                // Resolved on this endpoint's own pods.
                                for (p, n) in Self::named_ports(inventory, &[wi], name, *protocol) {
                                    peers
                                        .iter()
                                        .for_each(|peer| push(*peer, p, PortPrefix::single(n)));
                                }
                            } else {
                                // Resolved on each peer's pods: a class, namespace or "any peer"
                                // key stands for its workloads that have such a port.
                                let mut expanded: Vec<Identity> =
                                    peers.iter().flat_map(|p| self.members(*p)).collect();
                                expanded.sort_unstable();
                                expanded.dedup();
                                for peer in expanded {
                                    let Some(ws) = self.identity_workloads.get(&peer) else {
                                        continue;
                                    };
                                    for (p, n) in Self::named_ports(inventory, ws, name, *protocol)
                                    {
                                        push(peer, p, PortPrefix::single(n));
                                    }
                                }
                            }
                        }
                    },
                }
            }
        }
        contributions.sort_unstable();
        contributions.dedup();
        // Group by key: (key, range of contributions).
        let mut groups: Vec<(EntryKey, std::ops::Range<usize>)> = Vec::new();
        let mut start = 0;
        for i in 1..=contributions.len() {
            if i == contributions.len() || contributions[i].0 != contributions[start].0 {
                groups.push((contributions[start].0, start..i));
                start = i;
            }
        }
        // Within one peer the longest prefix decides: fold what each covering key says into
        // the keys it covers, so that the longest match alone gives the union's answer (a
        // covering deny denies, a covering plain allow allows, L7 rules add up).
        // Scratch buffers, reused from key to key.
        let mut says: Vec<(u32, Says)> = Vec::new();
        let mut order: Vec<(bool, u32)> = Vec::new();
        // The groups of the current (direction, peer): covering keys can only lie there.
        let mut run = 0..0;
        for (gi, (key, range)) in groups.iter().enumerate() {
            if gi >= run.end {
                let same = |k: &EntryKey| (k.direction, k.peer) == (key.direction, key.peer);
                let len = groups[gi..].iter().take_while(|(k, _)| same(k)).count();
                run = gi..gi + len;
            }
            says.clear();
            says.extend(
                contributions[range.clone()]
                    .iter()
                    .map(|(_, r, s)| (*r, *s)),
            );
            // A key alone on its peer has nothing covering it.
            if run.len() > 1 {
                let peer_groups = &groups[run.start..gi];
                for_each_covering_key(key, |cover| {
                    if let Ok(g) = peer_groups.binary_search_by(|(k, _)| k.cmp(&cover)) {
                        says.extend(
                            contributions[peer_groups[g].1.clone()]
                                .iter()
                                .map(|(_, r, s)| (*r, *s)),
                        );
                    }
                });
            }
            let verdict = if says.iter().any(|(_, s)| *s == Says::Deny) {
                EntryVerdict::Deny
            } else if says.iter().any(|(_, s)| *s == Says::Allow) {
                EntryVerdict::Allow
            } else {
                let mut http: BTreeSet<HttpMatch> = BTreeSet::new();
                let mut dns: BTreeSet<DnsMatch> = BTreeSet::new();
                for (_, s) in &says {
                    let Says::L7(ri, pi) = s else { continue };
                    match rules
                        .get(*ri as usize)
                        .and_then(|r| r.ports.get(*pi as usize))
                    {
                        Some((_, Some(L7::Http(rules)))) => {
                            http.extend(rules.iter().map(|h| http_match(h, *ri)))
                        }
                        Some((_, Some(L7::Dns(names)))) => {
                            dns.extend(names.iter().map(|d| dns_match(d, *ri)))
                        }
                        _ => {}
                    }
                }
                match (http.is_empty(), dns.is_empty()) {
                    // HTTP and DNS rules on one port: no proxy speaks both, and each kind of
                    // request meets an entry without rules of its kind: a plain allow.
                    (false, false) => EntryVerdict::Allow,
                    (false, true) => {
                        pending.push((
                            policy.entries.len(),
                            L7Set::Http(http.into_iter().collect()),
                        ));
                        EntryVerdict::Redirect(u32::MAX)
                    }
                    _ => {
                        pending.push((policy.entries.len(), L7Set::Dns(dns.into_iter().collect())));
                        EntryVerdict::Redirect(u32::MAX)
                    }
                }
            };
            // The rules that decided come first: the datapath records the first one in its
            // events (a deny entry names a deny rule, not an allow it overrode).
            let decided = |s: &Says| match verdict {
                EntryVerdict::Deny => *s == Says::Deny,
                EntryVerdict::Allow => *s == Says::Allow,
                EntryVerdict::Redirect(_) => matches!(s, Says::L7(..)),
            };
            order.clear();
            order.extend(says.iter().map(|(r, s)| (!decided(s), *r)));
            order.sort_unstable();
            order.dedup();
            // Each rule once, where it first appears: a rule that decided is not listed again
            // among the others.
            let first_other = order.partition_point(|(other, _)| !*other);
            let (deciding, others) = order.split_at(first_other);
            let mut rules: Vec<u32> = Vec::with_capacity(order.len());
            rules.extend(deciding.iter().map(|(_, r)| *r));
            rules.extend(
                others
                    .iter()
                    .map(|(_, r)| *r)
                    .filter(|r| deciding.binary_search(&(false, *r)).is_err()),
            );
            policy.entries.push(Entry {
                key: *key,
                verdict,
                rules,
            });
        }
        (policy, pending)
    }

    fn finish(
        &mut self,
        inventory: &Inventory,
        rules: &[Rule],
        options: Options,
        endpoints: Vec<bundle::Endpoint>,
        policies: Vec<EndpointPolicy>,
        l7: Vec<L7Set>,
    ) -> Bundle {
        let mut identities: Vec<IdentityInfo> = Identity::RESERVED
            .iter()
            .map(|(id, name)| IdentityInfo {
                id: *id,
                kind: IdentityKind::Reserved {
                    name: (*name).to_owned(),
                },
            })
            .collect();
        identities.append(&mut self.workload_infos);
        for (prefix, id) in &self.cidr_identities {
            identities.push(IdentityInfo {
                id: *id,
                kind: IdentityKind::Cidr { prefix: *prefix },
            });
        }
        let mut fqdn_selectors = Vec::new();
        for (f, id) in &self.fqdn_identities {
            let (info, selector) = fqdn_info(f, *id);
            identities.push(info);
            fqdn_selectors.push(selector);
        }
        identities.sort_by_key(|i| i.id);
        let mut ipcache: Vec<IpcacheEntry> = self
            .cidr_identities
            .iter()
            .map(|(p, id)| IpcacheEntry {
                prefix: *p,
                identity: *id,
            })
            .collect();
        for (wi, w) in inventory.workloads.iter().enumerate() {
            for ip in &w.ips {
                ipcache.push(IpcacheEntry {
                    prefix: ipnet::IpNet::from(*ip),
                    identity: self.workload_identity[wi],
                });
            }
        }
        ipcache.sort();
        ipcache.dedup_by(|a, b| a.prefix == b.prefix);
        Bundle {
            version: BUNDLE_VERSION,
            options,
            identities,
            endpoints,
            policies,
            ipcache,
            namespaces: self.namespaces.iter().map(|(n, _)| n.clone()).collect(),
            identity_namespaces: self
                .identity_namespace
                .iter()
                .map(|(id, n)| (*id, *n))
                .collect(),
            fqdn_selectors,
            l7,
            rules: rules.iter().map(|r| r.origin.clone()).collect(),
        }
    }
}

/// The bundle's entries of workload identities.
fn workload_infos(identity_labels: &BTreeMap<Identity, Arc<LabelSet>>) -> Vec<IdentityInfo> {
    identity_labels
        .iter()
        .map(|(id, labels)| IdentityInfo {
            id: *id,
            kind: IdentityKind::Workload {
                labels: LabelSet::clone(labels),
            },
        })
        .collect()
}

/// Inserts an identity into the bundle's list, which is sorted by number.
fn insert_identity(identities: &mut Vec<IdentityInfo>, info: IdentityInfo) {
    let at = identities.partition_point(|i| i.id < info.id);
    identities.insert(at, info);
}

/// A DNS-name selector's identity and its bundle selector.
fn fqdn_info(f: &FqdnMatch, id: Identity) -> (IdentityInfo, FqdnSelector) {
    let (name, pattern) = match f {
        FqdnMatch::Name(n) => (Some(n.clone()), None),
        FqdnMatch::Pattern(p) => (None, Some(p.clone())),
    };
    (
        IdentityInfo {
            id,
            kind: IdentityKind::Fqdn {
                selector: name.clone().or(pattern.clone()).unwrap_or_default(),
            },
        },
        FqdnSelector {
            identity: id,
            name,
            pattern,
        },
    )
}

/// Whether two rules lower to the same entries (they may differ in origin and position).
fn same_lowering(a: &Rule, b: &Rule) -> bool {
    let same_l7 = |x: &Option<L7>, y: &Option<L7>| match (x, y) {
        (Some(L7::Http(x)), Some(L7::Http(y))) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(x, y)| {
                    (&x.method, &x.path, &x.host, &x.headers)
                        == (&y.method, &y.path, &y.host, &y.headers)
                })
        }
        (x, y) => x == y,
    };
    a.subject == b.subject
        && a.direction == b.direction
        && a.deny == b.deny
        && a.enforces == b.enforces
        && a.peers == b.peers
        && a.ports.len() == b.ports.len()
        && a.ports
            .iter()
            .zip(&b.ports)
            .all(|((l4a, l7a), (l4b, l7b))| l4a == l4b && same_l7(l7a, l7b))
}

/// Calls `f` with each key whose prefix covers `key` on the same peer:
/// the any-protocol entry, then shorter port prefixes of the same protocol.
fn for_each_covering_key(key: &EntryKey, mut f: impl FnMut(EntryKey)) {
    if key.protocol != proto::ANY {
        f(EntryKey {
            protocol: proto::ANY,
            port: PortPrefix::ALL,
            ..*key
        });
        for len in 0..key.port.prefix_len {
            let mask: u16 = if len == 0 {
                0
            } else {
                u16::MAX << (16 - u32::from(len))
            };
            f(EntryKey {
                port: PortPrefix {
                    port: key.port.port & mask,
                    prefix_len: len,
                },
                ..*key
            });
        }
    }
}

fn named_ports_of(w: &crate::inventory::Workload) -> Vec<bundle::NamedPort> {
    let mut v: Vec<bundle::NamedPort> = w
        .ports
        .iter()
        .filter_map(|p| {
            p.name.as_ref().map(|n| bundle::NamedPort {
                name: n.clone(),
                protocol: proto_number(p.protocol),
                port: p.port,
            })
        })
        .collect();
    v.sort_by(|a, b| (&a.name, a.protocol, a.port).cmp(&(&b.name, b.protocol, b.port)));
    v.dedup();
    v
}

pub fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => proto::TCP,
        Protocol::Udp => proto::UDP,
        Protocol::Sctp => proto::SCTP,
        Protocol::Icmp => proto::ICMP,
        Protocol::IcmpV6 => proto::ICMPV6,
        Protocol::Any => proto::ANY,
    }
}

fn protocols(p: Protocol) -> Vec<u8> {
    match p {
        Protocol::Any => vec![proto::TCP, proto::UDP, proto::SCTP],
        other => vec![proto_number(other)],
    }
}

fn protocol_covers(written: Protocol, actual: Protocol) -> bool {
    written == actual
        || (written == Protocol::Any
            && matches!(actual, Protocol::Tcp | Protocol::Udp | Protocol::Sctp))
}

fn http_match(h: &policy_lang::model::HttpRule, rule: u32) -> HttpMatch {
    HttpMatch {
        method: h.method.as_ref().map(|m| m.value.clone()),
        path: h.path.as_ref().map(|m| m.value.clone()),
        host: h.host.as_ref().map(|m| m.value.clone()),
        headers: h.headers.iter().map(|m| m.value.clone()).collect(),
        rule,
    }
}

fn dns_match(d: &FqdnMatch, rule: u32) -> DnsMatch {
    match d {
        FqdnMatch::Name(n) => DnsMatch {
            name: Some(n.clone()),
            pattern: None,
            rule,
        },
        FqdnMatch::Pattern(p) => DnsMatch {
            name: None,
            pattern: Some(p.clone()),
            rule,
        },
    }
}
