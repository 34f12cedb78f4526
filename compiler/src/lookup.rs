//! The bundle evaluator: judges a flow with exactly the lookups the datapath performs
//! (ipcache longest prefix, policy longest prefix per peer, deny first, default deny only
//! where enforced).

use crate::bundle::*;
use crate::flow::{Flow, HttpRequest, Peer, Verdict};
use crate::identity::Identity;
use crate::lower::proto_number;
use policy_lang::model::{Entity, FqdnMatch};
use std::collections::HashMap;
use std::net::IpAddr;

/// Why one side decided as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideReason {
    /// A deny entry matched.
    Denied,
    /// An allow entry matched.
    Allowed,
    /// Only L7 (proxy) entries matched: the connection is allowed into the proxy.
    Redirected,
    /// Enforced and nothing matched.
    DefaultDeny,
    /// Not enforced in this direction and nothing matched.
    NotEnforced,
    /// From the node to its endpoint, allowed by the host switch.
    HostAllowed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideDecision {
    pub endpoint: usize,
    pub direction: Dir,
    pub enforced: bool,
    /// The identities the peer resolved to.
    pub peer_identities: Vec<Identity>,
    /// The policy keys looked up: each identity, its class, its namespace, and "any".
    pub keys: Vec<Identity>,
    /// The longest-prefix entry found for each peer identity and for "any peer".
    pub matched: Vec<Entry>,
    pub reason: SideReason,
    /// The L7 set of a redirect (union over matched entries).
    pub l7: Vec<u32>,
}

impl SideDecision {
    pub fn verdict(&self) -> Verdict {
        match self.reason {
            SideReason::Denied | SideReason::DefaultDeny => Verdict::Denied,
            _ => Verdict::Allowed,
        }
    }
}

/// The outcome of an L7 check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L7Decision {
    pub allowed: bool,
    /// The rule index of the matching HTTP rule or DNS pattern.
    pub matched_rule: Option<u32>,
    /// What was checked: "HTTP" or "DNS".
    pub protocol: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The flow stays inside one workload.
    pub self_traffic: bool,
    pub egress: Option<SideDecision>,
    pub ingress: Option<SideDecision>,
    pub l7: Vec<L7Decision>,
}

/// A bundle with its lookup tables built (the maps as the datapath holds them).
pub struct Evaluator<'b> {
    pub bundle: &'b Bundle,
    identity_namespace: HashMap<Identity, u32>,
    policy_maps: Vec<HashMap<EntryKey, &'b Entry>>,
    http: HashMap<u32, Vec<CompiledHttp>>,
}

struct CompiledHttp {
    /// A regex that does not compile: the rule matches nothing (validation rejects such trees).
    broken: bool,
    method: Option<regex::Regex>,
    path: Option<regex::Regex>,
    host: Option<regex::Regex>,
    headers: Vec<(String, Option<String>)>,
    rule: u32,
}

fn full_match(re: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{re})$")).ok()
}

impl<'b> Evaluator<'b> {
    pub fn new(bundle: &'b Bundle) -> Evaluator<'b> {
        let policy_maps = bundle
            .policies
            .iter()
            .map(|p| p.entries.iter().map(|e| (e.key, e)).collect())
            .collect();
        let mut http = HashMap::new();
        for (i, set) in bundle.l7.iter().enumerate() {
            if let L7Set::Http(rules) = set {
                let compiled = rules
                    .iter()
                    .map(|r| {
                        let method = r.method.as_deref().map(full_match);
                        let path = r.path.as_deref().map(full_match);
                        let host = r.host.as_deref().map(full_match);
                        let broken = [&method, &path, &host]
                            .iter()
                            .any(|m| matches!(m, Some(None)));
                        CompiledHttp {
                            broken,
                            method: method.flatten(),
                            path: path.flatten(),
                            host: host.flatten(),
                            headers: r
                                .headers
                                .iter()
                                .filter_map(|h| {
                                    policy_lang::formats::http_header(h).ok().map(|h| {
                                        (h.name.to_ascii_lowercase(), h.value.map(str::to_owned))
                                    })
                                })
                                .collect(),
                            rule: r.rule,
                        }
                    })
                    .collect();
                http.insert(i as u32, compiled);
            }
        }
        let identity_namespace = bundle.identity_namespaces.iter().copied().collect();
        Evaluator {
            bundle,
            identity_namespace,
            policy_maps,
            http,
        }
    }

    /// ipcache lookup: the longest prefix holding `ip`, else the world of its family.
    pub fn ip_identity(&self, ip: IpAddr) -> Identity {
        self.bundle
            .ipcache
            .iter()
            .filter(|e| e.prefix.contains(&ip))
            .max_by_key(|e| e.prefix.prefix_len())
            .map(|e| e.identity)
            .unwrap_or(if ip.is_ipv4() {
                Identity::WORLD_IPV4
            } else {
                Identity::WORLD_IPV6
            })
    }

    /// The identities a peer carries on the wire.
    pub fn peer_identities(&self, peer: &Peer) -> Vec<Identity> {
        match peer {
            Peer::Workload(i) => self
                .bundle
                .endpoints
                .get(*i)
                .map(|e| vec![e.identity])
                .unwrap_or_default(),
            Peer::Ip(ip) => vec![self.ip_identity(*ip)],
            Peer::Entity(e) => vec![match e {
                Entity::Host => Identity::HOST,
                Entity::RemoteNode => Identity::REMOTE_NODE,
                Entity::KubeApiserver => Identity::KUBE_APISERVER,
                Entity::Health => Identity::HEALTH,
                Entity::Init => Identity::INIT,
                Entity::Unmanaged => Identity::UNMANAGED,
                Entity::Ingress => Identity::INGRESS,
                _ => Identity::WORLD,
            }],
            // An address answered for a name carries every selector identity the name matches,
            // and stays a world address.
            Peer::Fqdn(name) => {
                let mut ids: Vec<Identity> = self
                    .bundle
                    .fqdn_selectors
                    .iter()
                    .filter(|s| {
                        let m = match (&s.name, &s.pattern) {
                            (Some(n), _) => FqdnMatch::Name(n.clone()),
                            (_, Some(p)) => FqdnMatch::Pattern(p.clone()),
                            _ => return false,
                        };
                        m.matches(name)
                    })
                    .map(|s| s.identity)
                    .collect();
                ids.push(Identity::WORLD);
                ids
            }
        }
    }

    /// The peer keys a packet is looked up under: each identity, its class, its namespace's
    /// pseudo-identity (workloads), and "any peer".
    pub fn lookup_keys(&self, identities: &[Identity]) -> Vec<Identity> {
        let mut keys = Vec::new();
        for id in identities {
            keys.push(*id);
            keys.extend(id.class());
            if let Some(ns) = self.identity_namespace.get(id) {
                keys.push(Identity::namespace(*ns));
            }
        }
        keys.push(Identity::ANY);
        keys.dedup();
        keys
    }

    /// Longest-prefix lookup in one endpoint policy for one peer identity.
    fn lpm(
        &self,
        policy: usize,
        direction: Dir,
        peer: Identity,
        protocol: u8,
        port: u16,
    ) -> Option<&'b Entry> {
        let map = self.policy_maps.get(policy)?;
        for len in (0..=16u8).rev() {
            let mask: u16 = if len == 0 {
                0
            } else {
                u16::MAX << (16 - u32::from(len))
            };
            let key = EntryKey {
                direction,
                peer,
                protocol,
                port: crate::ports::PortPrefix {
                    port: port & mask,
                    prefix_len: len,
                },
            };
            if let Some(e) = map.get(&key) {
                return Some(e);
            }
        }
        map.get(&EntryKey {
            direction,
            peer,
            protocol: proto::ANY,
            port: crate::ports::PortPrefix::ALL,
        })
        .copied()
    }

    /// One side, as the datapath judges it on the endpoint's interface.
    pub fn side(
        &self,
        endpoint: usize,
        direction: Dir,
        peer: &Peer,
        protocol: u8,
        port: u16,
    ) -> Option<SideDecision> {
        let ep = self.bundle.endpoints.get(endpoint)?;
        let policy = self.bundle.policies.get(ep.policy as usize)?;
        let enforced = match direction {
            Dir::Ingress => policy.ingress_enforced,
            Dir::Egress => policy.egress_enforced,
        };
        let peer_identities = self.peer_identities(peer);
        let mut matched: Vec<Entry> = Vec::new();
        let keys = self.lookup_keys(&peer_identities);
        for id in keys.iter().copied() {
            if let Some(e) = self.lpm(ep.policy as usize, direction, id, protocol, port) {
                if !matched.iter().any(|m| m.key == e.key) {
                    matched.push(e.clone());
                }
            }
        }
        let mut l7 = Vec::new();
        let reason = if matched.iter().any(|e| e.verdict == EntryVerdict::Deny) {
            SideReason::Denied
        } else if matched.iter().any(|e| e.verdict == EntryVerdict::Allow) {
            SideReason::Allowed
        } else if matched
            .iter()
            .any(|e| matches!(e.verdict, EntryVerdict::Redirect(_)))
        {
            for e in &matched {
                if let EntryVerdict::Redirect(s) = e.verdict {
                    l7.push(s);
                }
            }
            SideReason::Redirected
        } else if direction == Dir::Ingress
            && *peer == Peer::Entity(Entity::Host)
            && self.bundle.options.allow_host_ingress
        {
            SideReason::HostAllowed
        } else if enforced {
            SideReason::DefaultDeny
        } else {
            SideReason::NotEnforced
        };
        Some(SideDecision {
            endpoint,
            direction,
            enforced,
            peer_identities,
            keys,
            matched,
            reason,
            l7,
        })
    }

    /// Judges a whole flow: the source's egress, the destination's ingress, then L7.
    pub fn evaluate(&self, flow: &Flow) -> Decision {
        if let (Peer::Workload(a), Peer::Workload(b)) = (&flow.from, &flow.to) {
            if a == b {
                return Decision {
                    verdict: Verdict::Allowed,
                    self_traffic: true,
                    egress: None,
                    ingress: None,
                    l7: Vec::new(),
                };
            }
        }
        let protocol = proto_number(flow.protocol);
        let egress = match flow.from {
            Peer::Workload(i) => self.side(i, Dir::Egress, &flow.to, protocol, flow.port),
            _ => None,
        };
        let ingress = match flow.to {
            Peer::Workload(i) => self.side(i, Dir::Ingress, &flow.from, protocol, flow.port),
            _ => None,
        };
        let mut verdict = if egress
            .iter()
            .chain(ingress.iter())
            .all(|s| s.verdict() == Verdict::Allowed)
        {
            Verdict::Allowed
        } else {
            Verdict::Denied
        };
        let mut l7 = Vec::new();
        if verdict == Verdict::Allowed {
            for side in egress.iter().chain(ingress.iter()) {
                if side.reason != SideReason::Redirected {
                    continue;
                }
                if let Some(d) = self.check_l7(&side.l7, flow) {
                    if !d.allowed {
                        verdict = Verdict::Denied;
                    }
                    l7.push(d);
                }
            }
        }
        Decision {
            verdict,
            self_traffic: false,
            egress,
            ingress,
            l7,
        }
    }

    /// Applies the L7 sets of a redirect to the flow's request, if it carries one.
    fn check_l7(&self, sets: &[u32], flow: &Flow) -> Option<L7Decision> {
        let mut http_rules: Vec<&CompiledHttp> = Vec::new();
        let mut dns_rules: Vec<&DnsMatch> = Vec::new();
        for s in sets {
            match self.bundle.l7.get(*s as usize) {
                Some(L7Set::Http(_)) => http_rules.extend(self.http.get(s).into_iter().flatten()),
                Some(L7Set::Dns(d)) => dns_rules.extend(d.iter()),
                None => {}
            }
        }
        if let (Some(req), false) = (&flow.http, http_rules.is_empty()) {
            let hit = http_rules.iter().find(|r| http_allows(r, req));
            return Some(L7Decision {
                allowed: hit.is_some(),
                matched_rule: hit.map(|r| r.rule),
                protocol: "HTTP",
            });
        }
        if let (Some(name), false) = (&flow.dns, dns_rules.is_empty()) {
            let hit = dns_rules.iter().find(|d| match (&d.name, &d.pattern) {
                (Some(n), _) => FqdnMatch::Name(n.clone()).matches(name),
                (_, Some(p)) => FqdnMatch::Pattern(p.clone()).matches(name),
                _ => false,
            });
            return Some(L7Decision {
                allowed: hit.is_some(),
                matched_rule: hit.map(|d| d.rule),
                protocol: "DNS",
            });
        }
        None
    }
}

fn http_allows(r: &CompiledHttp, req: &HttpRequest) -> bool {
    !r.broken
        && r.method.as_ref().is_none_or(|m| m.is_match(&req.method))
        && r.path.as_ref().is_none_or(|p| p.is_match(&req.path))
        && r.host
            .as_ref()
            .is_none_or(|h| req.host.as_deref().is_some_and(|host| h.is_match(host)))
        && r.headers.iter().all(|(name, value)| {
            req.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && value.as_ref().is_none_or(|want| want == v)
            })
        })
}
