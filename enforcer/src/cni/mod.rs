//! `policy-cni`, the project's CNI plugin (specification 1.0.0): wires a pod to the node with a
//! veth pair and routes, delegates addresses to an IPAM plugin, and registers the endpoint with
//! policyd over its socket so that policy applies from the pod's first packet.
//!
//! The submodules: `config` (environment and network configuration), `result` (what goes to
//! stdout), `ipam` (the delegated plugin), `wire` (veth, addresses, routes), `netlink` and
//! `netns` (the kernel calls behind `wire`).

pub mod config;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod result;
pub mod wire;

use crate::api::{self, ClientError, EndpointInfo, EndpointRegistration, Request};
use config::{Command, Env, NetConf};
use ipnet::IpNet;
use result::{CniError, CniResult, ErrorCode, Interface, IpConfig, RouteConfig};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

/// What the plugin prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// stdout: a result, VERSION's answer, an error object, or nothing (DEL, CHECK).
    pub stdout: String,
    /// Notes for people (stderr).
    pub notes: Vec<String>,
    pub exit_code: i32,
}

/// Runs one invocation: `var` reads the environment, `stdin` is the network configuration.
pub fn run(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let mut notes = Vec::new();
    let version = config::version_of(stdin).unwrap_or_else(|| config::LATEST.to_string());
    match invoke(&var, stdin, &mut notes) {
        Ok(stdout) => Outcome {
            stdout,
            notes,
            exit_code: 0,
        },
        Err(e) => {
            notes.push(format!("policy-cni: {e}"));
            Outcome {
                stdout: e.to_text(&version),
                notes,
                exit_code: 1,
            }
        }
    }
}

/// The outcome when stdin cannot be read at all.
pub fn read_error(e: std::io::Error) -> Outcome {
    let err = CniError::new(
        ErrorCode::Io,
        "cannot read the network configuration",
        e.to_string(),
    );
    Outcome {
        stdout: err.to_text(config::LATEST),
        notes: vec![format!("policy-cni: {err}")],
        exit_code: 1,
    }
}

fn invoke(
    var: &impl Fn(&str) -> Option<String>,
    stdin: &[u8],
    notes: &mut Vec<String>,
) -> Result<String, CniError> {
    let env = Env::from_vars(var)?;
    if env.command == Command::Version {
        return Ok(result::version_text());
    }
    let conf = NetConf::parse(stdin)?;
    match env.command {
        Command::Add => add(&env, &conf).map(|r| r.to_text(&conf.cni_version)),
        Command::Del => del(&env, &conf, notes).map(|()| String::new()),
        Command::Check => check(&env, &conf).map(|()| String::new()),
        Command::Version => Ok(result::version_text()),
    }
}

fn interface_error(e: std::io::Error) -> CniError {
    CniError::new(
        ErrorCode::Interface,
        "cannot set up the pod's network",
        e.to_string(),
    )
}

/// Maps a failed policyd call to the error the runtime sees: an agent that cannot be reached
/// or does not answer is a transient condition (11), a refusal is final (102).
fn policyd_error(what: &str, e: ClientError) -> CniError {
    match e {
        ClientError::Refused(reason) => CniError::new(
            ErrorCode::Refused,
            format!("policyd refused to {what}"),
            reason,
        ),
        other => CniError::new(
            ErrorCode::TryAgainLater,
            format!("cannot {what}: policyd did not answer"),
            other.to_string(),
        ),
    }
}

fn open_netns(env: &Env) -> Result<std::fs::File, CniError> {
    netns::open(Path::new(&env.netns)).map_err(|e| {
        CniError::new(
            ErrorCode::InvalidEnv,
            format!("cannot open the network namespace CNI_NETNS={}", env.netns),
            e.to_string(),
        )
    })
}

/// ADD: addresses from IPAM, the veth pair and routes, then policyd's registration. Any
/// failure undoes what was done before it.
fn add(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
    let pod_ns = open_netns(env)?;
    let allocated = ipam::exec(env, conf, Command::Add)?.unwrap_or_default();
    let release = |e: CniError| -> CniError {
        if let Err(again) = ipam::exec(env, conf, Command::Del) {
            return CniError::new(
                e.code,
                e.msg,
                format!("{}; releasing the address failed too: {again}", e.details),
            );
        }
        e
    };

    let ips: Vec<IpAddr> = allocated.ips.iter().map(|c| c.address.addr()).collect();
    let extra_routes: Vec<IpNet> = allocated
        .routes
        .iter()
        .map(|r| r.dst)
        .filter(|d| d.prefix_len() > 0)
        .collect();
    let host_ifname = wire::host_ifname(&env.container_id, &env.ifname);
    let plan = wire::Plan {
        host_ifname: &host_ifname,
        ifname: &env.ifname,
        ips: &ips,
        routes: &extra_routes,
        mtu: conf.mtu,
    };
    let wired = wire::setup(&pod_ns, &plan)
        .map_err(interface_error)
        .map_err(release)?;

    let registration = EndpointRegistration {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        netns: env.netns.clone(),
        host_ifname: host_ifname.clone(),
        namespace: env
            .args
            .pod_namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod_name: env
            .args
            .pod_name
            .clone()
            .unwrap_or_else(|| env.container_id.clone()),
        pod_uid: env.args.pod_uid.clone(),
        ips: ips.clone(),
    };
    if let Err(e) = api::call(&conf.socket, &Request::EndpointAdd(registration)) {
        let err = policyd_error("register the endpoint", e);
        let err = match wire::teardown(&host_ifname) {
            Ok(_) => err,
            Err(again) => CniError::new(
                err.code,
                err.msg,
                format!(
                    "{}; deleting {host_ifname} failed too: {again}",
                    err.details
                ),
            ),
        };
        return Err(release(err));
    }

    // Our interfaces come after the previous plugins' (a chain's earlier results are kept).
    let mut out = conf.prev_result.clone().unwrap_or_default();
    let base = out.interfaces.len();
    out.interfaces.push(Interface {
        name: host_ifname,
        mac: wire::mac_string(wired.host.mac),
        sandbox: String::new(),
    });
    out.interfaces.push(Interface {
        name: env.ifname.clone(),
        mac: wire::mac_string(wired.pod.mac),
        sandbox: env.netns.clone(),
    });
    for ip in &ips {
        out.ips.push(IpConfig {
            address: wire::host_prefix(*ip),
            gateway: Some(wire::gateway_for(*ip)),
            interface: Some(base + 1),
        });
    }
    let mut seen = BTreeSet::new();
    for ip in &ips {
        if seen.insert(ip.is_ipv4()) {
            out.routes.push(RouteConfig {
                dst: wire::default_route(*ip),
                gw: Some(wire::gateway_for(*ip)),
            });
        }
    }
    for dst in &extra_routes {
        if let Some(ip) = ips.iter().find(|ip| ip.is_ipv4() == dst.addr().is_ipv4()) {
            out.routes.push(RouteConfig {
                dst: dst.trunc(),
                gw: Some(wire::gateway_for(*ip)),
            });
        }
    }
    out.dns = conf
        .dns
        .clone()
        .or_else(|| allocated.dns.is_object().then(|| allocated.dns.clone()))
        .or_else(|| out.dns.is_object().then(|| out.dns.clone()))
        .unwrap_or_else(|| serde_json::json!({}));
    out.cni_version = conf.cni_version.clone();
    Ok(out)
}

/// DEL: idempotent. policyd forgets the endpoint (an agent that is not running is told
/// nothing: it drops endpoints whose interface is gone when it starts), the veth pair goes,
/// and the IPAM plugin releases the address.
fn del(env: &Env, conf: &NetConf, notes: &mut Vec<String>) -> Result<(), CniError> {
    let request = Request::EndpointDel {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    };
    match api::call(&conf.socket, &request) {
        Ok(_) => {}
        Err(ClientError::Connect { path, source }) => notes.push(format!(
            "policy-cni: note: policyd is not reachable at {path} ({source}); deleting anyway, \
             policyd drops endpoints whose interface is gone when it starts"
        )),
        Err(e) => return Err(policyd_error("unregister the endpoint", e)),
    }
    let host_ifname = wire::host_ifname(&env.container_id, &env.ifname);
    wire::teardown(&host_ifname).map_err(|e| {
        CniError::new(
            ErrorCode::Interface,
            format!("cannot delete {host_ifname}"),
            e.to_string(),
        )
    })?;
    ipam::exec(env, conf, Command::Del)?;
    Ok(())
}

fn check_failed(msg: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg, details)
}

/// CHECK: the attachment is still what ADD reported in `prevResult`: the IPAM plugin agrees,
/// the pod's interface has its addresses, the host end is up with a route to each of them,
/// and policyd enforces the endpoint.
fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if !config::version_at_least(&conf.cni_version, "0.4.0") {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("CHECK is not defined for cniVersion {}", conf.cni_version),
            "CHECK needs cniVersion 0.4.0 or later",
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidConfig,
            "CHECK needs prevResult",
            "the runtime must pass the result of ADD as prevResult",
        )
    })?;
    ipam::exec(env, conf, Command::Check)?;

    // Our pod-side interface in the result, and the addresses that belong to it.
    let pod_index = prev
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname && i.sandbox == env.netns)
        .ok_or_else(|| {
            check_failed(
                format!(
                    "prevResult has no interface {} in {}",
                    env.ifname, env.netns
                ),
                "",
            )
        })?;
    let expected: Vec<IpNet> = prev
        .ips
        .iter()
        .filter(|c| c.interface == Some(pod_index))
        .map(|c| c.address)
        .collect();
    if expected.is_empty() {
        return Err(check_failed(
            format!("prevResult has no address on {}", env.ifname),
            "",
        ));
    }

    let pod_ns = netns::open(Path::new(&env.netns)).map_err(|e| {
        check_failed(
            format!("the network namespace {} is gone", env.netns),
            e.to_string(),
        )
    })?;
    let (link, addrs) = wire::pod_side(&pod_ns, &env.ifname)
        .map_err(interface_error)?
        .ok_or_else(|| check_failed(format!("{} is missing from {}", env.ifname, env.netns), ""))?;
    if !link.up {
        return Err(check_failed(format!("{} is down", env.ifname), ""));
    }
    let want_mac = &prev.interfaces[pod_index].mac;
    if !want_mac.is_empty() && !want_mac.eq_ignore_ascii_case(&wire::mac_string(link.mac)) {
        return Err(check_failed(
            format!("{} has another MAC address", env.ifname),
            format!("{} instead of {want_mac}", wire::mac_string(link.mac)),
        ));
    }
    for net in &expected {
        if !addrs.contains(net) {
            return Err(check_failed(
                format!("{} does not have {net}", env.ifname),
                format!(
                    "its addresses: {}",
                    addrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }

    let host_ifname = wire::host_ifname(&env.container_id, &env.ifname);
    let (host, routes) = wire::host_side(&host_ifname)
        .map_err(interface_error)?
        .ok_or_else(|| check_failed(format!("the host end {host_ifname} is missing"), ""))?;
    if !host.up {
        return Err(check_failed(format!("{host_ifname} is down"), ""));
    }
    for net in &expected {
        let dst = wire::host_prefix(net.addr());
        if !routes
            .iter()
            .any(|r| r.dst == dst && r.oif == Some(host.index) && r.gateway.is_none())
        {
            return Err(check_failed(
                format!("the node has no route to {dst} through {host_ifname}"),
                "",
            ));
        }
    }

    let request = Request::EndpointGet {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    };
    let body =
        api::call(&conf.socket, &request).map_err(|e| policyd_error("confirm the endpoint", e))?;
    let info: EndpointInfo = serde_json::from_value(body).map_err(|e| {
        CniError::new(
            ErrorCode::Decode,
            "policyd answered something that is not an endpoint",
            e.to_string(),
        )
    })?;
    let want: BTreeSet<IpAddr> = expected.iter().map(IpNet::addr).collect();
    let have: BTreeSet<IpAddr> = info.ips.iter().copied().collect();
    if want != have || info.host_ifname != host_ifname {
        return Err(check_failed(
            "policyd has the endpoint with other addresses or another interface",
            format!(
                "policyd: {:?} on {}; expected {:?} on {host_ifname}",
                have, info.host_ifname, want
            ),
        ));
    }
    Ok(())
}
