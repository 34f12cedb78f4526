//! The pod's plumbing, Calico style: a veth pair whose pod end holds the pod's addresses as
//! /32 and /128 with a default route through a link-local gateway, and whose host end the
//! node namespace routes each pod address to. Setting it up, tearing it down, reading it back.
//!
//! Both sides get permanent neighbour entries for the other (the pod for its gateway, the
//! node for each pod address), so no packet waits for, or depends on, ARP or NDP.

use super::netlink::{Link, Netlink, Route};
use super::netns;
use ipnet::IpNet;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The pod's IPv4 next hop. It exists nowhere: the pod has a permanent neighbour entry for
/// it (and the host end answers ARP for it by proxy_arp), so every packet goes to the host.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The MAC address of every host end. Each veth is its own link, so they never meet.
pub const HOST_MAC: [u8; 6] = [0xee; 6];

/// The pod's IPv6 next hop: the host end's own link-local address (EUI-64 of [`HOST_MAC`]).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// The next hop of the pod for an address family.
pub fn gateway_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(GATEWAY_V4),
        IpAddr::V6(_) => IpAddr::V6(GATEWAY_V6),
    }
}

/// The pod's address as configured: the address alone, /32 or /128.
pub fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The default route of an address family.
pub fn default_route(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
    }
}

/// The host end's name: `plc` and 11 hex digits of a hash of the container id and the pod's
/// interface name (14 characters; the kernel allows 15). The same attachment always gets the
/// same name, so DEL finds what ADD made without any state on disk.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    // FNV-1a, 64 bits: stable across versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id
        .bytes()
        .chain(std::iter::once(0))
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("plc{:011x}", h >> 20)
}

/// The MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: Option<[u8; 6]>) -> String {
    mac.map(|m| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .unwrap_or_default()
}

/// What one attachment is made of.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub host_ifname: &'a str,
    pub ifname: &'a str,
    pub ips: &'a [IpAddr],
    /// Routes besides the default ones (from the IPAM plugin), through the gateway.
    pub routes: &'a [IpNet],
    pub mtu: Option<u32>,
}

/// Both ends as they were created.
#[derive(Clone, Debug)]
pub struct Wired {
    pub host: Link,
    pub pod: Link,
}

fn sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {value} to {path}: {e}")))
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Creates the attachment. The calling thread must be in the node namespace. On failure
/// nothing is left behind (the veth pair is deleted).
pub fn setup(pod_ns: &File, plan: &Plan<'_>) -> io::Result<Wired> {
    let mut nl = Netlink::open()?;
    // A host end of this name is a leftover of an earlier attempt at this very attachment.
    if let Some(stale) = nl.link_by_name(plan.host_ifname)? {
        nl.del_link(stale.index)?;
    }
    nl.add_veth(plan.host_ifname, HOST_MAC, plan.ifname, pod_ns, plan.mtu)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create the veth pair {}/{}: an interface {} already exists \
                         in the pod's namespace ({e})",
                        plan.host_ifname, plan.ifname, plan.ifname
                    ),
                )
            } else {
                context(format!(
                    "cannot create the veth pair {}/{}",
                    plan.host_ifname, plan.ifname
                ))(e)
            }
        })?;
    match finish(&mut nl, pod_ns, plan) {
        Ok(wired) => Ok(wired),
        Err(e) => {
            if let Ok(Some(link)) = nl.link_by_name(plan.host_ifname) {
                let _ = nl.del_link(link.index);
            }
            Err(e)
        }
    }
}

fn finish(nl: &mut Netlink, pod_ns: &File, plan: &Plan<'_>) -> io::Result<Wired> {
    let host = nl.link_by_name(plan.host_ifname)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} vanished right after its creation", plan.host_ifname),
        )
    })?;
    let has_v6 = plan.ips.iter().any(IpAddr::is_ipv6);
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", plan.host_ifname),
        "1",
    )?;
    let v6_conf = format!("/proc/sys/net/ipv6/conf/{}", plan.host_ifname);
    if std::path::Path::new(&v6_conf).exists() {
        // The pod's IPv6 gateway is this end's link-local address: usable at once.
        sysctl(&format!("{v6_conf}/accept_dad"), "0")?;
    }
    sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    if has_v6 {
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    nl.set_up(host.index)
        .map_err(context(format!("cannot set {} up", plan.host_ifname)))?;

    let pod = netns::run_in(pod_ns, || {
        let mut pnl = Netlink::open()?;
        let link = pnl.link_by_name(plan.ifname)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not in the pod's namespace", plan.ifname),
            )
        })?;
        pnl.set_up(link.index)
            .map_err(context(format!("cannot set {} up", plan.ifname)))?;
        for ip in plan.ips {
            let net = host_prefix(*ip);
            pnl.add_addr(link.index, *ip, net.prefix_len())
                .map_err(context(format!("cannot add {net} to {}", plan.ifname)))?;
        }
        let mut families: Vec<IpAddr> = Vec::new();
        if let Some(v4) = plan.ips.iter().find(|ip| ip.is_ipv4()) {
            families.push(*v4);
        }
        if let Some(v6) = plan.ips.iter().find(|ip| ip.is_ipv6()) {
            families.push(*v6);
        }
        for ip in &families {
            let gw = gateway_for(*ip);
            pnl.add_neighbour(link.index, gw, HOST_MAC)
                .map_err(context(format!("cannot add the neighbour entry of {gw}")))?;
            if gw.is_ipv4() {
                pnl.add_route(IpNet::from(gw), None, link.index)
                    .map_err(context(format!("cannot add the route to {gw}")))?;
            }
            pnl.add_route(default_route(*ip), Some(gw), link.index)
                .map_err(context(format!("cannot add the default route via {gw}")))?;
        }
        for dst in plan.routes {
            let Some(ip) = families
                .iter()
                .find(|ip| ip.is_ipv4() == dst.addr().is_ipv4())
            else {
                continue;
            };
            let gw = gateway_for(*ip);
            pnl.add_route(dst.trunc(), Some(gw), link.index)
                .map_err(context(format!("cannot add the route to {dst} via {gw}")))?;
        }
        // Read back for the MAC address the kernel gave it.
        pnl.link_by_name(plan.ifname)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{} vanished", plan.ifname))
        })
    })?;

    for ip in plan.ips {
        nl.add_route(host_prefix(*ip), None, host.index)
            .map_err(context(format!(
                "cannot route {ip} to {} in the node namespace",
                plan.host_ifname
            )))?;
        // The node knows the pod's MAC address: no ARP or neighbour discovery is needed
        // towards the pod (and none can go wrong in a namespace without any address of its
        // own, where the kernel would otherwise send to the broadcast address).
        if let Some(mac) = pod.mac {
            nl.add_neighbour(host.index, *ip, mac)
                .map_err(context(format!(
                    "cannot add the neighbour entry of {ip} on {}",
                    plan.host_ifname
                )))?;
        }
    }
    Ok(Wired { host, pod })
}

/// Deletes the veth pair by its host end (the pod end goes with it). Returns whether it was
/// there; a missing link is not an error.
pub fn teardown(host_ifname: &str) -> io::Result<bool> {
    let mut nl = Netlink::open()?;
    match nl.link_by_name(host_ifname)? {
        Some(link) => {
            nl.del_link(link.index)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The pod end as it is now: the link and its addresses (`None` when there is no such link).
pub fn pod_side(pod_ns: &File, ifname: &str) -> io::Result<Option<(Link, Vec<IpNet>)>> {
    netns::run_in(pod_ns, || {
        let mut nl = Netlink::open()?;
        let Some(link) = nl.link_by_name(ifname)? else {
            return Ok(None);
        };
        let addrs = nl.addrs(link.index)?;
        Ok(Some((link, addrs)))
    })
}

/// The host end as it is now, with the node namespace's routes (both families).
pub fn host_side(host_ifname: &str) -> io::Result<Option<(Link, Vec<Route>)>> {
    let mut nl = Netlink::open()?;
    let Some(link) = nl.link_by_name(host_ifname)? else {
        return Ok(None);
    };
    let mut routes = nl.routes(false)?;
    routes.extend(nl.routes(true)?);
    Ok(Some((link, routes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_and_short() {
        let a = host_ifname("0123456789abcdef", "eth0");
        assert_eq!(a, host_ifname("0123456789abcdef", "eth0"));
        assert_ne!(a, host_ifname("0123456789abcdef", "eth1"));
        assert_ne!(a, host_ifname("0123456789abcdee", "eth0"));
        assert_eq!(a.len(), 14);
        assert!(a.starts_with("plc"));
        assert!(a[3..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_v6_gateway_is_the_host_mac_link_local() {
        // EUI-64: flip the universal/local bit of the first byte, insert ff:fe in the middle.
        assert_eq!(GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
        assert_eq!(mac_string(Some(HOST_MAC)), "ee:ee:ee:ee:ee:ee");
        assert_eq!(
            host_prefix("10.1.0.5".parse().expect("ip")).to_string(),
            "10.1.0.5/32"
        );
    }
}
