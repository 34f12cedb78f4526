//! The bundle: what the datapath enforces, as plain data, with every entry pointing back at the
//! rules that produced it. Versioned and deterministic: the same tree gives the same bytes.

use crate::identity::Identity;
use crate::ir::Origin;
use crate::ports::PortPrefix;
use policy_lang::model::Direction;
use std::collections::BTreeMap;

/// Bumped whenever the layout changes; readers refuse other versions.
pub const BUNDLE_VERSION: u32 = 1;

/// IP protocol numbers as the datapath keys them; 0 is "any protocol".
pub mod proto {
    pub const ANY: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;

    pub fn name(p: u8) -> &'static str {
        match p {
            ANY => "ANY",
            ICMP => "ICMP",
            TCP => "TCP",
            UDP => "UDP",
            ICMPV6 => "ICMPv6",
            SCTP => "SCTP",
            _ => "?",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Ingress,
    Egress,
}

impl From<Direction> for Dir {
    fn from(d: Direction) -> Dir {
        match d {
            Direction::Ingress => Dir::Ingress,
            Direction::Egress => Dir::Egress,
        }
    }
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }
}

/// What a policy entry decides. `Redirect` sends the connection to the L7 proxy with the
/// rules of one L7 set.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "l7")]
pub enum EntryVerdict {
    Deny,
    Allow,
    Redirect(u32),
}

/// The key of a policy entry: direction, peer identity (0 = any), protocol (0 = any, then the
/// port prefix is 0/0) and a port prefix. Lookups take the longest matching prefix.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct EntryKey {
    pub direction: Dir,
    pub peer: Identity,
    pub protocol: u8,
    pub port: PortPrefix,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub key: EntryKey,
    #[serde(flatten)]
    pub verdict: EntryVerdict,
    /// Indexes into [`Bundle::rules`]: every rule that produced or shaped this entry, those
    /// that decided its verdict first (the datapath's events name the first).
    pub rules: Vec<u32>,
}

/// The policy of one or more endpoints (endpoints with the same identity and named ports
/// share it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointPolicy {
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
    /// Sorted by key.
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NamedPort {
    pub name: String,
    pub protocol: u8,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// `namespace/name` of the workload.
    pub name: String,
    pub identity: Identity,
    pub ips: Vec<std::net::IpAddr>,
    /// Index into [`Bundle::policies`].
    pub policy: u32,
    pub named_ports: Vec<NamedPort>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum IdentityKind {
    Reserved { name: String },
    Workload { labels: BTreeMap<String, String> },
    Cidr { prefix: ipnet::IpNet },
    Fqdn { selector: String },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityInfo {
    pub id: Identity,
    #[serde(flatten)]
    pub kind: IdentityKind,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct IpcacheEntry {
    pub prefix: ipnet::IpNet,
    pub identity: Identity,
}

/// One HTTP rule, as the proxy applies it (method, path and host are full-match regexes).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct HttpMatch {
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub headers: Vec<String>,
    /// Index into [`Bundle::rules`].
    pub rule: u32,
}

/// The L7 rules behind a redirect: HTTP rules, or DNS name patterns for the DNS proxy.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase", tag = "kind", content = "rules")]
pub enum L7Set {
    Http(Vec<HttpMatch>),
    Dns(Vec<DnsMatch>),
}

#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct DnsMatch {
    /// `matchName` or `matchPattern` as written (lowercase).
    pub name: Option<String>,
    pub pattern: Option<String>,
    pub rule: u32,
}

/// A DNS-name selector of `toFQDNs`: addresses answered for a matching name take its identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FqdnSelector {
    pub identity: Identity,
    pub name: Option<String>,
    pub pattern: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Traffic from the node itself to its endpoints passes default deny (health checks).
    pub allow_host_ingress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_host_ingress: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bundle {
    pub version: u32,
    pub options: Options,
    pub identities: Vec<IdentityInfo>,
    pub endpoints: Vec<Endpoint>,
    pub policies: Vec<EndpointPolicy>,
    /// Sorted by prefix; longest prefix wins, no entry means `world`.
    pub ipcache: Vec<IpcacheEntry>,
    /// Namespaces by index: `Identity::namespace(i)` in a policy key stands for every pod of
    /// namespace `i`.
    pub namespaces: Vec<String>,
    /// The namespace index of each workload identity (the datapath's identity → namespace map).
    pub identity_namespaces: Vec<(Identity, u32)>,
    pub fqdn_selectors: Vec<FqdnSelector>,
    pub l7: Vec<L7Set>,
    pub rules: Vec<Origin>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a bundle: {0}")]
    Format(#[from] serde_json::Error),
    #[error("bundle version {found} is not supported (this build reads version {BUNDLE_VERSION})")]
    Version { found: u32 },
}

impl Bundle {
    /// The serialised form (compact JSON; deterministic because every collection is sorted).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail, and the bundle's data always serialises.
        let _ = self.write_to(&mut out);
        out
    }

    /// Writes the bytes of [`Bundle::to_bytes`] to `out` as they are produced, without holding
    /// them all (a large bundle is hundreds of MB). Give it a buffered writer: serde_json
    /// writes in small pieces.
    pub fn write_to(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut out, self)?;
        out.write_all(b"\n")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Bundle, BundleError> {
        #[derive(serde::Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head = serde_json::from_slice(bytes)?;
        if head.version != BUNDLE_VERSION {
            return Err(BundleError::Version {
                found: head.version,
            });
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Number of policy entries over every endpoint (shared policies counted per endpoint).
    pub fn entry_count(&self) -> usize {
        self.endpoints
            .iter()
            .filter_map(|e| self.policies.get(e.policy as usize))
            .map(|p| p.entries.len())
            .sum()
    }
}
