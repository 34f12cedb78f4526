//! A policy generation as map contents: the ipcache, policy and endpoint entries a bundle
//! becomes, computed without touching the kernel (the writer lives in [`crate::loader`]).

use crate::datapath::*;
use compiler::bundle::{Bundle, EntryVerdict, IpcacheEntry};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What one generation is built from: the bundle, plus what only the node knows.
#[derive(Clone, Debug)]
pub struct GenerationSpec<'a> {
    pub bundle: &'a Bundle,
    /// Prefixes the bundle does not carry: the node's own addresses (identity `host`), other
    /// nodes (`remote-node`), and so on. A prefix the bundle also has keeps the bundle's
    /// identity.
    pub extra_ipcache: Vec<IpcacheEntry>,
    /// The host-side interface of each local endpoint address. Addresses without one belong
    /// to endpoints on other nodes: the programs judge no packet for them (`not-local`), and
    /// use them only for the self rule (a workload's pods on different nodes).
    pub ifindex: BTreeMap<IpAddr, u32>,
    /// Write only the policies of local endpoints (those with an address in `ifindex`): the
    /// programs judge only the endpoint on their own interface, so another node's endpoint
    /// policies are never read. policyd sets it; a node with 4 pods of a 50,000-workload tree
    /// then holds their entries, not the whole cluster's.
    pub only_local_policies: bool,
}

impl<'a> GenerationSpec<'a> {
    pub fn new(bundle: &'a Bundle) -> GenerationSpec<'a> {
        GenerationSpec {
            bundle,
            extra_ipcache: Vec::new(),
            ifindex: BTreeMap::new(),
            only_local_policies: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("L7 set {set} does not fit the datapath's 16-bit L7 set id")]
    L7SetTooLarge { set: u32 },
    #[error("address `{ip}` belongs to both `{first}` and `{second}`")]
    AddressConflict {
        ip: IpAddr,
        first: String,
        second: String,
    },
    #[error("endpoint `{endpoint}` names policy {policy}, which the bundle does not have")]
    MissingPolicy { endpoint: String, policy: u32 },
    #[error(
        "identity {identity} is in namespace {namespace}: the datapath holds fewer than {NAMESPACE_LIMIT} namespaces"
    )]
    NamespaceTooLarge { identity: u32, namespace: u32 },
}

/// The entries of one generation, sorted by key (deterministic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub ipcache: Vec<(IpcKey, IpcVal)>,
    pub policy: Vec<(PolKey, PolVal)>,
    pub endpoints: Vec<(EpKey, EpVal)>,
}

impl Tables {
    /// The canonical order: by family and address, by policy, peer, direction, protocol and
    /// port. The kernel iterates maps in its own order; readers sort with this.
    pub fn sort(&mut self) {
        self.ipcache
            .sort_by_key(|(k, _)| (k.family, k.addr, k.prefixlen));
        self.policy.sort_by_key(|(k, _)| {
            (
                u32::from_be(k.policy_id),
                u32::from_be(k.peer_identity),
                k.direction,
                k.protocol,
                u16::from_be(k.port),
                k.prefixlen,
            )
        });
        self.endpoints.sort_by_key(|(k, _)| (k.family, k.addr));
    }
}

/// The policy key of a bundle entry.
pub fn policy_key(policy_id: u32, key: &compiler::bundle::EntryKey) -> PolKey {
    let direction = match key.direction {
        compiler::bundle::Dir::Ingress => DIR_INGRESS,
        compiler::bundle::Dir::Egress => DIR_EGRESS,
    };
    // INVARIANT: protocol 0 matches every protocol and port, so nothing after the fixed part
    // takes part in the prefix.
    let (prefixlen, port) = if key.protocol == compiler::bundle::proto::ANY {
        (POL_FIXED_BITS, 0)
    } else {
        let len = key.port.prefix_len.min(16);
        let mask = if len == 0 {
            0
        } else {
            u16::MAX << (16 - u32::from(len))
        };
        (POL_FIXED_BITS + 8 + u32::from(len), key.port.port & mask)
    };
    PolKey {
        prefixlen,
        policy_id: policy_id.to_be(),
        peer_identity: key.peer.0.to_be(),
        direction,
        protocol: key.protocol,
        port: port.to_be(),
    }
}

pub fn tables(spec: &GenerationSpec<'_>) -> Result<Tables, GenerationError> {
    let bundle = spec.bundle;

    // The namespace is a function of the identity (`Evaluator::lookup_keys`); the ipcache
    // carries it beside the identity so that a packet needs no second lookup for it.
    let mut namespace_of: BTreeMap<u32, u32> = BTreeMap::new();
    for (id, ns) in &bundle.identity_namespaces {
        if *ns >= NAMESPACE_LIMIT {
            return Err(GenerationError::NamespaceTooLarge {
                identity: id.0,
                namespace: *ns,
            });
        }
        namespace_of.insert(id.0, *ns);
    }
    let mut ipcache: BTreeMap<ipnet::IpNet, u32> = BTreeMap::new();
    for e in &spec.extra_ipcache {
        ipcache.insert(e.prefix.trunc(), e.identity.0);
    }
    for e in &bundle.ipcache {
        ipcache.insert(e.prefix.trunc(), e.identity.0);
    }
    let ipc: Vec<(IpcKey, IpcVal)> = ipcache
        .into_iter()
        .map(|(p, id)| {
            let val = IpcVal {
                identity: id,
                namespace: namespace_of.get(&id).copied().unwrap_or(NONE_U32),
            };
            (IpcKey::new(p), val)
        })
        .collect();

    let local: std::collections::BTreeSet<u32> = bundle
        .endpoints
        .iter()
        .filter(|e| e.ips.iter().any(|ip| spec.ifindex.contains_key(ip)))
        .map(|e| e.policy)
        .collect();
    let mut policy = Vec::new();
    for (pid, p) in bundle.policies.iter().enumerate() {
        let pid = pid as u32;
        if spec.only_local_policies && !local.contains(&pid) {
            continue;
        }
        for e in &p.entries {
            let (verdict, l7_set) = match e.verdict {
                EntryVerdict::Deny => (VERDICT_DENY, NONE_U16),
                EntryVerdict::Allow => (VERDICT_ALLOW, NONE_U16),
                EntryVerdict::Redirect(s) => match u16::try_from(s) {
                    Ok(v) if v != NONE_U16 => (VERDICT_REDIRECT, v),
                    _ => return Err(GenerationError::L7SetTooLarge { set: s }),
                },
            };
            policy.push((
                policy_key(pid, &e.key),
                PolVal {
                    verdict,
                    pad: 0,
                    l7_set,
                    rule_id: e.rules.first().copied().unwrap_or(NONE_U32),
                },
            ));
        }
    }
    let mut endpoints: BTreeMap<IpAddr, (usize, EpVal)> = BTreeMap::new();
    for (eid, ep) in bundle.endpoints.iter().enumerate() {
        let p = bundle.policies.get(ep.policy as usize).ok_or_else(|| {
            GenerationError::MissingPolicy {
                endpoint: ep.name.clone(),
                policy: ep.policy,
            }
        })?;
        let mut flags = 0;
        if p.ingress_enforced {
            flags |= EP_F_INGRESS_ENFORCED;
        }
        if p.egress_enforced {
            flags |= EP_F_EGRESS_ENFORCED;
        }
        if bundle.options.allow_host_ingress {
            flags |= EP_F_ALLOW_HOST;
        }
        for ip in &ep.ips {
            let val = EpVal {
                endpoint_id: eid as u32,
                policy_id: ep.policy,
                identity: ep.identity.0,
                ifindex: spec.ifindex.get(ip).copied().unwrap_or(0),
                flags,
                pad: [0; 3],
            };
            if let Some((other, _)) = endpoints.get(ip) {
                if *other != eid {
                    return Err(GenerationError::AddressConflict {
                        ip: *ip,
                        first: bundle
                            .endpoints
                            .get(*other)
                            .map(|e| e.name.clone())
                            .unwrap_or_default(),
                        second: ep.name.clone(),
                    });
                }
            }
            endpoints.insert(*ip, (eid, val));
        }
    }
    let endpoints = endpoints
        .into_iter()
        .map(|(ip, (_, v))| (EpKey::new(ip), v))
        .collect();

    let mut t = Tables {
        ipcache: ipc,
        policy,
        endpoints,
    };
    t.sort();
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::bundle::{Dir, Endpoint, EndpointPolicy, Entry, EntryKey, Options};
    use compiler::identity::Identity;
    use compiler::ports::PortPrefix;

    #[test]
    fn policy_keys_put_protocol_then_port_after_the_fixed_part() {
        let any = policy_key(
            3,
            &EntryKey {
                direction: Dir::Egress,
                peer: Identity(256),
                protocol: 0,
                port: PortPrefix::ALL,
            },
        );
        assert_eq!(any.prefixlen, POL_FIXED_BITS);
        assert_eq!(u32::from_be(any.policy_id), 3);
        assert_eq!(u32::from_be(any.peer_identity), 256);
        let range = policy_key(
            3,
            &EntryKey {
                direction: Dir::Ingress,
                peer: Identity(0),
                protocol: 6,
                port: PortPrefix {
                    port: 8000,
                    prefix_len: 11,
                },
            },
        );
        assert_eq!(range.prefixlen, POL_FIXED_BITS + 8 + 11);
        assert_eq!(u16::from_be(range.port), 8000 & 0xffe0);
        assert_eq!(range.direction, DIR_INGRESS);
    }

    fn bundle() -> Bundle {
        let ep = |name: &str, ip: &str| Endpoint {
            name: name.to_owned(),
            identity: Identity(256),
            ips: vec![ip.parse().expect("ip")],
            policy: 0,
            named_ports: Vec::new(),
        };
        Bundle {
            version: compiler::bundle::BUNDLE_VERSION,
            options: Options::default(),
            identities: Vec::new(),
            endpoints: vec![ep("a/x", "10.0.0.1"), ep("a/y", "10.0.0.2")],
            policies: vec![EndpointPolicy {
                ingress_enforced: true,
                egress_enforced: false,
                entries: vec![Entry {
                    key: EntryKey {
                        direction: Dir::Ingress,
                        peer: Identity(0),
                        protocol: 6,
                        port: PortPrefix::single(80),
                    },
                    verdict: EntryVerdict::Redirect(3),
                    rules: vec![7, 9],
                }],
            }],
            ipcache: vec![
                IpcacheEntry {
                    prefix: "10.0.0.1/32".parse().expect("prefix"),
                    identity: Identity(256),
                },
                IpcacheEntry {
                    prefix: "192.0.2.0/24".parse().expect("prefix"),
                    identity: Identity(Identity::FIRST_LOCAL),
                },
            ],
            namespaces: vec!["a".to_owned()],
            identity_namespaces: vec![(Identity(256), 0)],
            fqdn_selectors: Vec::new(),
            l7: Vec::new(),
            rules: Vec::new(),
        }
    }

    #[test]
    fn entries_carry_verdict_first_rule_and_flags() {
        let b = bundle();
        let t = tables(&GenerationSpec::new(&b)).expect("tables");
        assert_eq!(t.policy.len(), 1);
        let (_, v) = t.policy[0];
        assert_eq!((v.verdict, v.l7_set, v.rule_id), (VERDICT_REDIRECT, 3, 7));
        assert_eq!(t.endpoints.len(), 2);
        let (_, e) = t.endpoints[1];
        assert_eq!(e.endpoint_id, 1);
        assert_eq!(e.flags, EP_F_INGRESS_ENFORCED | EP_F_ALLOW_HOST);
        assert_eq!(e.ifindex, 0, "unbound without an ifindex");
    }

    #[test]
    fn a_node_holds_only_its_own_endpoints_policies() {
        let mut b = bundle();
        b.policies.push(b.policies[0].clone());
        b.endpoints[1].policy = 1;
        let mut spec = GenerationSpec::new(&b);
        spec.only_local_policies = true;
        spec.ifindex.insert("10.0.0.2".parse().expect("ip"), 7);
        let t = tables(&spec).expect("tables");
        let policies: Vec<u32> = t
            .policy
            .iter()
            .map(|(k, _)| u32::from_be(k.policy_id))
            .collect();
        assert_eq!(
            policies,
            [1],
            "only y's policy: x is another node's endpoint"
        );
        assert_eq!(
            t.endpoints.len(),
            2,
            "both endpoints stay, for the self rule"
        );
        spec.only_local_policies = false;
        assert_eq!(tables(&spec).expect("tables").policy.len(), 2);
    }

    #[test]
    fn the_ipcache_carries_the_namespace_of_workload_identities_only() {
        let b = bundle();
        let mut spec = GenerationSpec::new(&b);
        spec.extra_ipcache = vec![IpcacheEntry {
            prefix: "10.9.0.1/32".parse().expect("prefix"),
            identity: Identity::HOST,
        }];
        let t = tables(&spec).expect("tables");
        let got: Vec<(IpcKey, IpcVal)> = t.ipcache.clone();
        let want = [
            ("10.0.0.1/32", 256, 0),
            ("10.9.0.1/32", Identity::HOST.0, NONE_U32),
            ("192.0.2.0/24", Identity::FIRST_LOCAL, NONE_U32),
        ]
        .map(|(p, identity, namespace)| {
            (
                IpcKey::new(p.parse().expect("prefix")),
                IpcVal {
                    identity,
                    namespace,
                },
            )
        });
        assert_eq!(got, want);
    }

    #[test]
    fn bundles_the_datapath_cannot_hold_are_refused() {
        let mut b = bundle();
        b.endpoints[1].ips = b.endpoints[0].ips.clone();
        assert!(matches!(
            tables(&GenerationSpec::new(&b)),
            Err(GenerationError::AddressConflict { .. })
        ));
        let mut b = bundle();
        b.policies[0].entries[0].verdict = EntryVerdict::Redirect(70_000);
        assert!(matches!(
            tables(&GenerationSpec::new(&b)),
            Err(GenerationError::L7SetTooLarge { set: 70_000 })
        ));
        let mut b = bundle();
        b.endpoints[0].policy = 5;
        assert!(matches!(
            tables(&GenerationSpec::new(&b)),
            Err(GenerationError::MissingPolicy { policy: 5, .. })
        ));
        let mut b = bundle();
        b.identity_namespaces = vec![(Identity(256), NAMESPACE_LIMIT)];
        assert!(matches!(
            tables(&GenerationSpec::new(&b)),
            Err(GenerationError::NamespaceTooLarge {
                identity: 256,
                namespace: NAMESPACE_LIMIT
            })
        ));
    }
}
