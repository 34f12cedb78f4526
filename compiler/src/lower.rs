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
    /// `(key, value)` → identities carrying it, to prune selector matching.
    label_index: HashMap<(&'a str, &'a str), Vec<Identity>>,
    cidr_identities: BTreeMap<ipnet::IpNet, Identity>,
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
        Lowering {
            inventory,
            rules,
            workload_identity,
            identity_labels,
            identity_workloads,
            label_index,
            cidr_identities,
            fqdn_identities,
            selector_cache: HashMap::new(),
        }
    }

    /// The workload identities a selector selects (cached: many rules share selectors).
    fn select(&mut self, sel: &'a EndpointSelector) -> Vec<Identity> {
        if let Some(ids) = self.selector_cache.get(sel) {
            return ids.clone();
        }
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
        self.selector_cache.insert(sel, ids.clone());
        ids
    }

    fn all_workload_identities(&self) -> impl Iterator<Item = Identity> + '_ {
        self.identity_labels.keys().copied()
    }

    /// The identities a peer stands for; `Identity::ANY` for every peer.
    fn peer_identities(&mut self, peer: &'a Peer) -> Vec<Identity> {
        match peer {
            Peer::All => vec![Identity::ANY],
            Peer::Nothing => Vec::new(),
            Peer::Endpoints(sel) => self.select(sel),
            Peer::Entity(e) => self.entity_identities(*e),
            Peer::Cidr { cidr, except, pods } => {
                let mut ids: Vec<Identity> = self
                    .cidr_identities
                    .iter()
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
                    for (id, workloads) in &self.identity_workloads {
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
            Entity::World | Entity::WorldIpv4 | Entity::WorldIpv6 => {
                // Every address outside the cluster: the world identities, every CIDR identity,
                // and the addresses answered for DNS names.
                let mut ids = vec![Identity::WORLD, Identity::WORLD_IPV4, Identity::WORLD_IPV6];
                ids.extend(self.cidr_identities.values().copied());
                ids.extend(self.fqdn_identities.values().copied());
                ids
            }
            Entity::Cluster => {
                let mut ids: Vec<Identity> = self.all_workload_identities().collect();
                ids.extend([
                    Identity::HOST,
                    Identity::REMOTE_NODE,
                    Identity::HEALTH,
                    Identity::INIT,
                    Identity::KUBE_APISERVER,
                    Identity::INGRESS,
                    Identity::UNMANAGED,
                ]);
                ids
            }
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
        // Per rule: its subject identities and peer identities.
        let mut per_identity: BTreeMap<Identity, Vec<(usize, Vec<Identity>)>> = BTreeMap::new();
        for (ri, rule) in rules.iter().enumerate() {
            let subjects = self.select(&rule.subject);
            if subjects.is_empty() {
                continue;
            }
            let mut peers: Vec<Identity> = rule
                .peers
                .iter()
                .flat_map(|p| self.peer_identities(p))
                .collect();
            peers.sort_unstable();
            peers.dedup();
            for s in subjects {
                per_identity.entry(s).or_default().push((ri, peers.clone()));
            }
        }
        let mut l7_sets: BTreeMap<L7Set, u32> = BTreeMap::new();
        let mut policies: Vec<EndpointPolicy> = Vec::new();
        let mut policy_ids: HashMap<(Identity, Vec<bundle::NamedPort>), u32> = HashMap::new();
        let mut endpoints = Vec::new();
        let empty = Vec::new();
        for (wi, w) in self.inventory.workloads.iter().enumerate() {
            let id = self.workload_identity[wi];
            let named = named_ports_of(w);
            let key = (id, named.clone());
            let policy = match policy_ids.get(&key) {
                Some(p) => *p,
                None => {
                    let applicable = per_identity.get(&id).unwrap_or(&empty);
                    let p = self.endpoint_policy(wi, applicable, &mut l7_sets);
                    policies.push(p);
                    let pid = policies.len() as u32 - 1;
                    policy_ids.insert(key, pid);
                    pid
                }
            };
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
        self.finish(options, endpoints, policies, l7_sets)
    }

    fn endpoint_policy(
        &self,
        wi: usize,
        applicable: &[(usize, Vec<Identity>)],
        l7_sets: &mut BTreeMap<L7Set, u32>,
    ) -> EndpointPolicy {
        #[derive(Default)]
        struct Acc {
            deny: bool,
            allow: bool,
            http: BTreeSet<HttpMatch>,
            dns: BTreeSet<DnsMatch>,
            rules: BTreeSet<u32>,
        }
        let mut acc: BTreeMap<EntryKey, Acc> = BTreeMap::new();
        let mut policy = EndpointPolicy::default();
        for (ri, peers) in applicable {
            let rule = &self.rules[*ri];
            let dir = Dir::from(rule.direction);
            if rule.enforces {
                match dir {
                    Dir::Ingress => policy.ingress_enforced = true,
                    Dir::Egress => policy.egress_enforced = true,
                }
            }
            for (l4, l7) in &rule.ports {
                // (peer, protocol, prefix) triples of this L4 match.
                let mut keys: Vec<(Identity, u8, PortPrefix)> = Vec::new();
                match l4 {
                    L4::All => keys.extend(peers.iter().map(|p| (*p, proto::ANY, PortPrefix::ALL))),
                    L4::Icmp { family, icmp_type } => {
                        let p = if *family == IcmpFamily::V4 {
                            proto::ICMP
                        } else {
                            proto::ICMPV6
                        };
                        keys.extend(
                            peers
                                .iter()
                                .map(|peer| (*peer, p, PortPrefix::single(u16::from(*icmp_type)))),
                        );
                    }
                    L4::Port { protocol, port } => match port {
                        PortMatch::Any | PortMatch::Range(..) => {
                            let prefixes = match port {
                                PortMatch::Range(a, b) => range_to_prefixes(*a, *b),
                                _ => vec![PortPrefix::ALL],
                            };
                            for p in protocols(*protocol) {
                                for peer in peers {
                                    keys.extend(prefixes.iter().map(|x| (*peer, p, *x)));
                                }
                            }
                        }
                        PortMatch::Named(name) => {
                            if dir == Dir::Ingress {
                                // Resolved on this endpoint's own pods.
                                for (p, n) in self.named_ports(&[wi], name, *protocol) {
                                    keys.extend(
                                        peers.iter().map(|peer| (*peer, p, PortPrefix::single(n))),
                                    );
                                }
                            } else {
                                // Resolved on each peer's pods; "any peer" means every workload
                                // with such a port.
                                let expanded: Vec<Identity> = if peers.contains(&Identity::ANY) {
                                    self.identity_workloads.keys().copied().collect()
                                } else {
                                    peers.clone()
                                };
                                for peer in expanded {
                                    let Some(ws) = self.identity_workloads.get(&peer) else {
                                        continue;
                                    };
                                    for (p, n) in self.named_ports(ws, name, *protocol) {
                                        keys.push((peer, p, PortPrefix::single(n)));
                                    }
                                }
                            }
                        }
                    },
                }
                for (peer, protocol, port) in keys {
                    let a = acc
                        .entry(EntryKey {
                            direction: dir,
                            peer,
                            protocol,
                            port,
                        })
                        .or_default();
                    a.rules.insert(*ri as u32);
                    if rule.deny {
                        a.deny = true;
                        continue;
                    }
                    match l7 {
                        None => a.allow = true,
                        Some(L7::Http(rules)) => a
                            .http
                            .extend(rules.iter().map(|h| http_match(h, *ri as u32))),
                        Some(L7::Dns(names)) => {
                            a.dns.extend(names.iter().map(|d| dns_match(d, *ri as u32)))
                        }
                    }
                }
            }
        }
        // Within one peer, the longest prefix decides: fold what a covering entry says into
        // the entries it covers, so that the longest match alone gives the union's answer
        // (a covering deny denies, a covering plain allow allows, L7 rules add up).
        for (key, own) in &acc {
            let (mut deny, mut allow) = (own.deny, own.allow);
            let mut http: BTreeSet<HttpMatch> = own.http.clone();
            let mut dns: BTreeSet<DnsMatch> = own.dns.clone();
            let mut rules: BTreeSet<u32> = own.rules.clone();
            for cover in covering_keys(key) {
                if let Some(c) = acc.get(&cover) {
                    deny |= c.deny;
                    allow |= c.allow;
                    http.extend(c.http.iter().cloned());
                    dns.extend(c.dns.iter().cloned());
                    rules.extend(c.rules.iter().copied());
                }
            }
            let verdict = if deny {
                EntryVerdict::Deny
            } else if allow {
                EntryVerdict::Allow
            } else {
                let set = if !http.is_empty() {
                    L7Set::Http(http.into_iter().collect())
                } else {
                    L7Set::Dns(dns.into_iter().collect())
                };
                let next = l7_sets.len() as u32;
                EntryVerdict::Redirect(*l7_sets.entry(set).or_insert(next))
            };
            policy.entries.push(Entry {
                key: *key,
                verdict,
                rules: rules.into_iter().collect(),
            });
        }
        policy
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
