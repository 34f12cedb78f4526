//! A flow to judge: two peers, a protocol and port, and optionally the L7 request it carries.

use crate::inventory::Inventory;
use policy_lang::model::{Entity, Protocol};
use std::net::IpAddr;

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// A workload of the inventory, by index.
    Workload(usize),
    /// An address that belongs to no workload (or to one: then it stands for that workload).
    Ip(IpAddr),
    /// A reserved entity: host, world, remote-node, kube-apiserver, health, init, unmanaged,
    /// ingress. `world` is an Internet address outside every CIDR the tree names.
    Entity(Entity),
    /// A host name resolved by the DNS proxy: the flow goes to an address answered for it.
    Fqdn(String),
}

/// An HTTP request riding on the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// What is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub from: Peer,
    pub to: Peer,
    /// TCP, UDP, SCTP, ICMP or ICMPv6 (never ANY).
    pub protocol: Protocol,
    /// Destination port; for ICMP, the ICMP type.
    pub port: u16,
    pub http: Option<HttpRequest>,
    /// A DNS query name, for flows to port 53 through the DNS proxy.
    pub dns: Option<String>,
}

/// The final answer for a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Allowed,
    Denied,
}

impl Peer {
    /// A peer as a user names it: `ns/name`, an IP, an entity name, or `fqdn:NAME`.
    pub fn parse(text: &str, inventory: &Inventory) -> Result<Peer, String> {
        if let Some(name) = text.strip_prefix("fqdn:") {
            return Ok(Peer::Fqdn(name.trim_end_matches('.').to_ascii_lowercase()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(match inventory.by_ip(ip) {
                Some(w) => Peer::Workload(w.index),
                None => Peer::Ip(ip),
            });
        }
        if text.contains('/') {
            return inventory
                .find(text)
                .map(|w| Peer::Workload(w.index))
                .ok_or_else(|| format!("no workload `{text}` in the tree"));
        }
        match policy_lang::formats::entity(text) {
            Ok(e) if !matches!(e, Entity::All | Entity::Cluster | Entity::None) => Ok(Peer::Entity(e)),
            _ => Err(format!(
                "`{text}` is not a peer: give `namespace/name`, an IP address, `fqdn:NAME` or an entity such as `world` or `host`"
            )),
        }
    }

    pub fn display(&self, inventory: &Inventory) -> String {
        match self {
            Peer::Workload(i) => inventory
                .workloads
                .get(*i)
                .map(|w| w.full_name())
                .unwrap_or_else(|| format!("workload#{i}")),
            Peer::Ip(ip) => ip.to_string(),
            Peer::Entity(e) => e.as_str().to_owned(),
            Peer::Fqdn(n) => format!("fqdn:{n}"),
        }
    }
}
