//! Calico-like wiring of a pod namespace to the node namespace, for the swap bench.

use crate::netns::Netns;

/// Calico-like wiring of a pod (nothing ever appears in the root namespace). The node end
/// goes when either namespace is deleted.
pub fn wire_pod(
    node: &Netns,
    pod: &Netns,
    host_if: &str,
    ip: std::net::Ipv4Addr,
) -> Result<(), String> {
    let addr = format!("{ip}/32");
    node.ip(&[
        "link",
        "add",
        host_if,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ])?;
    pod.ip(&["addr", "add", &addr, "dev", "eth0"])?;
    pod.ip(&["link", "set", "eth0", "up"])?;
    pod.ip(&["route", "add", "default", "dev", "eth0", "scope", "link"])?;
    node.sysctl(&[
        &format!("net.ipv4.conf.{host_if}.proxy_arp=1"),
        &format!("net.ipv4.neigh.{host_if}.proxy_delay=0"),
    ])?;
    node.ip(&["link", "set", host_if, "up"])?;
    node.ip(&["route", "add", &addr, "dev", host_if])?;
    Ok(())
}
