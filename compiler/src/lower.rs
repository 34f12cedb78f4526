//! Lowering: resolves IR rules to identities through a selector cache and writes each
//! endpoint's policy entries, ipcache, DNS-name selectors and L7 sets into a bundle.

use crate::bundle::{self, *};
use crate::identity::{Identity, IdentityTable, LabelSet};
use crate::inventory::Inventory;
use crate::ir::{self, EndpointSelector, Peer, PortMatch, Rule, L4, L7};
use crate::ports::{range_to_prefixes, PortPrefix};
use policy_lang::model::{Entity, FqdnMatch, IcmpFamily, Protocol, Tree};
use policy_lang::SourceMap;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Everything a compile produces besides the bundle: the inputs lowering resolved, for
/// `trace` and the enforcer.
pub struct Compiled {
    pub bundle: Bundle,
    pub rules: Vec<Rule>,
    pub inventory: Inventory,
    pub identities: IdentityTable,
}

/// Compiles a typed tree. `identities` is the live allocation table (numbers kept stable);
/// `None` deals numbers deterministically from the tree.
pub fn compile(
    tree: &Tree,
    sources: &SourceMap,
    identities: Option<IdentityTable>,
    options: Options,
) -> Compiled {
    let inventory = Inventory::from_tree(tree);
    let rules = ir::normalize(tree, sources);
    let labels: Vec<LabelSet> = inventory
        .workloads
        .iter()
        .map(|w| inventory.cilium_labels(w))
        .collect();
    let identities = match identities {
        Some(mut t) => {
            for l in &labels {
                t.allocate(l);
            }
            t
        }
        None => IdentityTable::deterministic(labels.iter()),
    };
    let bundle = Lowering::new(&inventory, &labels, &identities, &rules).run(options);
    Compiled {
        bundle,
        rules,
        inventory,
        identities,
    }
}

struct Lowering<'a> {
    inventory: &'a Inventory,
    rules: &'a [Rule],
    /// Identity of each workload (by inventory index).
    workload_identity: Vec<Identity>,
    /// Labels of each workload identity.
    identity_labels: BTreeMap<Identity, &'a LabelSet>,
    /// Workload indexes of each identity.
    identity_workloads: BTreeMap<Identity, Vec<usize>>,
    /// The identities all of whose workloads have pod IPs (only they can lie in an ipBlock).
    addressed_identities: BTreeMap<Identity, Vec<usize>>,
    /// `(key, value)` → identities carrying it, to prune selector matching.
    label_index: HashMap<(&'a str, &'a str), Vec<Identity>>,
    cidr_identities: BTreeMap<ipnet::IpNet, Identity>,
    /// Namespace names by index, and the label set selectors see for each.
    namespaces: Vec<(String, LabelSet)>,
    identity_namespace: BTreeMap<Identity, u32>,
    peer_cache: HashMap<&'a EndpointSelector, Vec<Identity>>,
    fqdn_identities: BTreeMap<FqdnMatch, Identity>,
    selector_cache: HashMap<&'a EndpointSelector, Vec<Identity>>,
}

/// First local identity of DNS-name selectors (CIDR identities count up from 2^24).
const FIRST_FQDN: u32 = Identity::FIRST_LOCAL + (1 << 23);

impl<'a> Lowering<'a> {
    fn new(
        inventory: &'a Inventory,
        labels: &'a [LabelSet],
        identities: &IdentityTable,
        rules: &'a [Rule],
    ) -> Self {
        let workload_identity: Vec<Identity> = labels
            .iter()
            .map(|l| identities.get(l).unwrap_or(Identity::WORLD))
            .collect();
        let mut identity_labels = BTreeMap::new();
        let mut identity_workloads: BTreeMap<Identity, Vec<usize>> = BTreeMap::new();
        for (i, (l, id)) in labels.iter().zip(&workload_identity).enumerate() {
            identity_labels.insert(*id, l);
            identity_workloads.entry(*id).or_default().push(i);
        }
        let mut label_index: HashMap<(&str, &str), Vec<Identity>> = HashMap::new();
        for (id, l) in &identity_labels {
            for (k, v) in l.iter() {
                label_index
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(*id);
            }
        }
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
                        fqdns.insert(f.clone());
                    }
                    _ => {}
                }
            }
        }
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
        let mut identity_namespace = BTreeMap::new();
        for (id, l) in &identity_labels {
            let ns = l.get(policy_lang::selector::NAMESPACE_LABEL);
            if let Some(i) = namespaces.iter().position(|(n, _)| Some(n) == ns) {
                identity_namespace.insert(*id, i as u32);
            }
        }
        let cidr_identities = prefixes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, Identity(Identity::FIRST_LOCAL + i as u32)))
            .collect();
        let fqdn_identities = fqdns
            .into_iter()
            .enumerate()
            .map(|(i, f)| (f, Identity(FIRST_FQDN + i as u32)))
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
            .collect();
        Lowering {
            inventory,
            addressed_identities,
            rules,
            workload_identity,
            identity_labels,
            identity_workloads,
            label_index,
            cidr_identities,
            namespaces,
            identity_namespace,
            peer_cache: HashMap::new(),
            fqdn_identities,
            selector_cache: HashMap::new(),
        }
    }

    /// The workload identities a selector selects (cached: many rules share selectors).
    fn select(&mut self, sel: &'a EndpointSelector) -> Vec<Identity> {
        if let Some(ids) = self.selector_cache.get(sel) {
            return ids.clone();
        }
        let ids = self.compute_selection(sel);
        self.selector_cache.insert(sel, ids.clone());
        ids
    }

    /// Fills the selector cache for every subject and peer selector of the rules, on every
    /// core.
    fn warm_selector_cache(&mut self) {
        let mut selectors: Vec<&'a EndpointSelector> = Vec::new();
        for r in self.rules {
            selectors.push(&r.subject);
            for p in &r.peers {
                if let Peer::Endpoints(sel) = p {
                    selectors.push(sel);
                }
            }
        }
        selectors.sort();
        selectors.dedup();
        let this = &*self;
        let results = policy_lang::parallel::map(&selectors, |_, sel| this.compute_selection(sel));
        for (sel, ids) in selectors.into_iter().zip(results) {
            self.selector_cache.insert(sel, ids);
        }
    }

    /// The workload identities a selector selects.
    fn compute_selection(&self, sel: &EndpointSelector) -> Vec<Identity> {
        let ids: Vec<Identity> = if sel.impossible {
            Vec::new()
        } else {
            // The shortest candidate list an `In` requirement with one value allows.
            let mut best: Option<&Vec<Identity>> = None;
            let empty = Vec::new();
            for r in &sel.reqs {
                if r.op == policy_lang::model::Operator::In && r.values.len() == 1 {
                    let list = self
                        .label_index
                        .get(&(r.key.as_str(), r.values[0].as_str()))
                        .unwrap_or(&empty);
                    if best.is_none_or(|b| list.len() < b.len()) {
                        best = Some(list);
                    }
                }
            }
            match best {
                Some(list) => list
                    .iter()
                    .copied()
                    .filter(|id| self.identity_labels.get(id).is_some_and(|l| sel.matches(l)))
                    .collect(),
                None => self
                    .identity_labels
                    .iter()
                    .filter(|(_, l)| sel.matches(l))
                    .map(|(id, _)| *id)
                    .collect(),
            }
        };
        ids
    }

    /// A selector as policy-key peers: a selector that only looks at namespaces becomes the
    /// namespaces' pseudo-identities (one key instead of one per pod identity); any other
    /// selector, the identities it selects.
    fn select_peers(&mut self, sel: &'a EndpointSelector) -> Vec<Identity> {
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
        self.peer_cache.insert(sel, ids.clone());
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
    fn peer_identities(&mut self, peer: &'a Peer) -> Vec<Identity> {
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
                    for (id, workloads) in &self.addressed_identities {
                        let inside = workloads.iter().all(|w| {
                            let ips = &self.inventory.workloads[*w].ips;
                            !ips.is_empty()
                                && ips.iter().all(|ip| {
                                    cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
                                })
                        });
                        if inside {
                            ids.push(*id);
                        }
                    }
                }
                ids
            }
            Peer::Fqdn(f) => self.fqdn_identities.get(f).copied().into_iter().collect(),
        }
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
    fn named_ports(&self, workloads: &[usize], name: &str, protocol: Protocol) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        for w in workloads {
            let Some(wl) = self.inventory.workloads.get(*w) else {
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

    fn run(mut self, options: Options) -> Bundle {
        let rules = self.rules;
        self.warm_selector_cache();
        // Per rule: its peer keys (once), and the rules that select each subject identity.
        let mut rule_peers: Vec<Vec<Identity>> = Vec::with_capacity(rules.len());
        let mut per_identity: BTreeMap<Identity, Vec<usize>> = BTreeMap::new();
        for (ri, rule) in rules.iter().enumerate() {
            let subjects = self.select(&rule.subject);
            let mut peers: Vec<Identity> = if subjects.is_empty() {
                Vec::new()
            } else {
                rule.peers
                    .iter()
                    .flat_map(|p| self.peer_identities(p))
                    .collect()
            };
            peers.sort_unstable();
            peers.dedup();
            rule_peers.push(peers);
            for s in subjects {
                per_identity.entry(s).or_default().push(ri);
            }
        }
        // Endpoints that the same rules select, with the same named ports, get identical
        // entries: they share one policy table (the datapath keys tables by policy id).
        let mut policy_ids: HashMap<(Vec<usize>, Vec<bundle::NamedPort>), u32> = HashMap::new();
        // For each distinct policy: a workload it is computed for, and the rules.
        let mut distinct: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut endpoints = Vec::new();
        let empty = Vec::new();
        for (wi, w) in self.inventory.workloads.iter().enumerate() {
            let id = self.workload_identity[wi];
            let named = named_ports_of(w);
            let applicable = per_identity.get(&id).unwrap_or(&empty);
            let next = distinct.len() as u32;
            let policy = *policy_ids
                .entry((applicable.clone(), named.clone()))
                .or_insert_with(|| {
                    distinct.push((wi, applicable.clone()));
                    next
                });
            let mut ips = w.ips.clone();
            ips.sort();
            endpoints.push(bundle::Endpoint {
                name: w.full_name(),
                identity: id,
                ips,
                policy,
                named_ports: named,
            });
        }
        let this = &self;
        let computed = policy_lang::parallel::map(&distinct, |_, (wi, applicable)| {
            this.endpoint_policy(*wi, applicable, &rule_peers)
        });
        // L7 sets are numbered in policy order, so the bundle stays deterministic.
        let mut l7_sets: BTreeMap<L7Set, u32> = BTreeMap::new();
        let mut policies = Vec::with_capacity(computed.len());
        for (mut policy, pending) in computed {
            for (entry, set) in pending {
                let next = l7_sets.len() as u32;
                let id = *l7_sets.entry(set).or_insert(next);
                if let Some(e) = policy.entries.get_mut(entry) {
                    e.verdict = EntryVerdict::Redirect(id);
                }
            }
            policies.push(policy);
        }
        self.finish(options, endpoints, policies, l7_sets)
    }

    fn endpoint_policy(
        &self,
        wi: usize,
        applicable: &[usize],
        rule_peers: &[Vec<Identity>],
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
            let rule = &self.rules[*ri];
            let peers = &rule_peers[*ri];
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
                                for (p, n) in self.named_ports(&[wi], name, *protocol) {
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
                                    for (p, n) in self.named_ports(ws, name, *protocol) {
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
        for (key, range) in &groups {
            let mut says: Vec<(u32, Says)> = contributions[range.clone()]
                .iter()
                .map(|(_, r, s)| (*r, *s))
                .collect();
            for cover in covering_keys(key) {
                if let Ok(g) = groups.binary_search_by(|(k, _)| k.cmp(&cover)) {
                    says.extend(
                        contributions[groups[g].1.clone()]
                            .iter()
                            .map(|(_, r, s)| (*r, *s)),
                    );
                }
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
                    match self
                        .rules
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
            let mut rules: Vec<u32> = says.iter().map(|(r, _)| *r).collect();
            rules.sort_unstable();
            rules.dedup();
            policy.entries.push(Entry {
                key: *key,
                verdict,
                rules,
            });
        }
        (policy, pending)
    }

    fn finish(
        self,
        options: Options,
        endpoints: Vec<bundle::Endpoint>,
        policies: Vec<EndpointPolicy>,
        l7_sets: BTreeMap<L7Set, u32>,
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
        for (id, labels) in &self.identity_labels {
            identities.push(IdentityInfo {
                id: *id,
                kind: IdentityKind::Workload {
                    labels: (*labels).clone(),
                },
            });
        }
        for (prefix, id) in &self.cidr_identities {
            identities.push(IdentityInfo {
                id: *id,
                kind: IdentityKind::Cidr { prefix: *prefix },
            });
        }
        let mut fqdn_selectors = Vec::new();
        for (f, id) in &self.fqdn_identities {
            let (name, pattern) = match f {
                FqdnMatch::Name(n) => (Some(n.clone()), None),
                FqdnMatch::Pattern(p) => (None, Some(p.clone())),
            };
            identities.push(IdentityInfo {
                id: *id,
                kind: IdentityKind::Fqdn {
                    selector: name.clone().or(pattern.clone()).unwrap_or_default(),
                },
            });
            fqdn_selectors.push(FqdnSelector {
                identity: *id,
                name,
                pattern,
            });
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
        for (wi, w) in self.inventory.workloads.iter().enumerate() {
            for ip in &w.ips {
                ipcache.push(IpcacheEntry {
                    prefix: ipnet::IpNet::from(*ip),
                    identity: self.workload_identity[wi],
                });
            }
        }
        ipcache.sort();
        ipcache.dedup_by(|a, b| a.prefix == b.prefix);
        let mut l7: Vec<(u32, L7Set)> = l7_sets.into_iter().map(|(s, i)| (i, s)).collect();
        l7.sort_by_key(|(i, _)| *i);
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
            l7: l7.into_iter().map(|(_, s)| s).collect(),
            rules: self.rules.iter().map(|r| r.origin.clone()).collect(),
        }
    }
}

/// The keys whose prefix covers `key` on the same peer: shorter port prefixes of the same
/// protocol, and the any-protocol entry.
fn covering_keys(key: &EntryKey) -> Vec<EntryKey> {
    let mut out = Vec::new();
    if key.protocol != proto::ANY {
        for len in 0..key.port.prefix_len {
            let mask: u16 = if len == 0 {
                0
            } else {
                u16::MAX << (16 - u32::from(len))
            };
            out.push(EntryKey {
                port: PortPrefix {
                    port: key.port.port & mask,
                    prefix_len: len,
                },
                ..*key
            });
        }
        out.push(EntryKey {
            protocol: proto::ANY,
            port: PortPrefix::ALL,
            ..*key
        });
    }
    out
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
