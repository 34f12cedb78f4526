//! The connectivity truth table: every ordered pair of workloads (a workload with itself
//! included) on each port, judged by the bundle evaluator.

use crate::flow::{Flow, Peer, Verdict};
use crate::inventory::Inventory;
use crate::lookup::Evaluator;
use crate::lower::Compiled;
use policy_lang::model::Protocol;

/// A port and protocol, written `80/TCP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortProto {
    pub port: u16,
    pub protocol: Protocol,
}

impl std::fmt::Display for PortProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol.as_str())
    }
}

impl std::str::FromStr for PortProto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (port, proto) = s.split_once('/').unwrap_or((s, "TCP"));
        let port: u16 = port.trim().parse().map_err(|_| {
            format!("`{s}`: the port must be a number 0-65535 (for ICMP, the type)")
        })?;
        let protocol = match proto.trim().to_ascii_uppercase().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            "ICMP" => Protocol::Icmp,
            "ICMPV6" => Protocol::IcmpV6,
            _ => {
                return Err(format!(
                    "`{s}`: the protocol must be TCP, UDP, SCTP, ICMP or ICMPv6"
                ))
            }
        };
        Ok(PortProto { port, protocol })
    }
}

/// The ports the tree's workloads declare, in order.
pub fn declared_ports(inventory: &Inventory) -> Vec<PortProto> {
    let mut ports: Vec<PortProto> = inventory
        .workloads
        .iter()
        .flat_map(|w| {
            w.ports.iter().map(|p| PortProto {
                port: p.port,
                protocol: p.protocol,
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// One cell of the table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Cell {
    pub from: String,
    pub to: String,
    pub port: String,
    pub allowed: bool,
}

/// The table, in (from, to, port) order.
pub fn compute(compiled: &Compiled, ports: &[PortProto]) -> Vec<Cell> {
    let evaluator = Evaluator::new(&compiled.bundle);
    let inv = &compiled.inventory;
    let mut cells = Vec::with_capacity(inv.workloads.len() * inv.workloads.len() * ports.len());
    for a in &inv.workloads {
        for b in &inv.workloads {
            for p in ports {
                let flow = Flow {
                    from: Peer::Workload(a.index),
                    to: Peer::Workload(b.index),
                    protocol: p.protocol,
                    port: p.port,
                    http: None,
                    dns: None,
                };
                let allowed = evaluator.evaluate(&flow).verdict == Verdict::Allowed;
                cells.push(Cell {
                    from: a.full_name(),
                    to: b.full_name(),
                    port: p.to_string(),
                    allowed,
                });
            }
        }
    }
    cells
}
