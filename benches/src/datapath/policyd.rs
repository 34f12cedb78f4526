//! Runs a policyd binary on a node of its own, enforcing the bench's policy for the bench's two
//! pods, and reads its resident memory once it enforces it.

use super::policy::{self, CLIENT_IF, CLIENT_IP, SERVER_IF, SERVER_IP};
use super::topo::{self, World};
use crate::netns::Netns;
use crate::run::{signals, TempTree};
use enforcer::api::{self, EndpointRegistration, Request};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// policyd's command line when none is given: main's `policyd run` (see docs/policyd.md).
pub const DEFAULT_ARGS: &[&str] = &[
    "--bpffs-root",
    "{pin_dir}",
    "--socket",
    "{socket}",
    "run",
    "--source",
    "{tree}",
    "--state-dir",
    "{state_dir}",
    "--metrics-address",
    "none",
];

pub struct Options<'a> {
    pub bin: &'a Path,
    /// Arguments with placeholders (`{tree}`, `{bundle}`, `{pin_dir}`, `{socket}`,
    /// `{state_dir}`, `{netns}`); empty for [`DEFAULT_ARGS`].
    pub args: &'a [String],
    /// Policy entries of the server.
    pub entries: usize,
    /// A directory on a bpffs for policyd's pins.
    pub bpffs: &'a Path,
    /// How long policyd may take to enforce the tree.
    pub timeout: Duration,
    /// How long it runs once it enforces, before its memory is read.
    pub settle: Duration,
    /// Endpoints to register (at least the client and the server).
    pub endpoints: usize,
}

/// What was read.
pub struct Report {
    pub vm_rss: String,
    pub vm_hwm: String,
    /// From `policyd status`, when policyd was driven through its socket.
    pub status: Option<String>,
}

/// policyd as a child; stopped (SIGTERM, then SIGKILL after 5 s) on drop.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n    ")
}

fn status_field(pid: u32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Starts policyd in a fresh node namespace (with the bench's client and server pods wired
/// to it), with the `entries`-entry policy as its tree (and as a bundle file, for a
/// command line that takes one). With the socket in its arguments (the default), the bench
/// registers both pods as the CNI plugin would, waits until policyd's status shows both
/// endpoints and the policy map holds the entries, and checks that the probed flows pass and
/// the unlisted port is dropped: memory is read from an agent that enforces the policy.
/// Otherwise it only waits `settle`.
pub fn measure(o: &Options<'_>) -> Result<Report, String> {
    let tmp = TempTree::new(false);
    let dir = tmp.path.clone();
    let tree_dir = dir.join("tree");
    let state_dir = dir.join("state");
    for d in [&tree_dir, &state_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let write = |path: PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        tree_dir.join("tree.yaml"),
        policy::tree_yaml(o.entries).as_bytes(),
    )?;
    let bundle_path = dir.join("bundle.json");
    write(bundle_path.clone(), &policy::bundle(o.entries).to_bytes())?;
    let socket = dir.join("policyd.sock");
    let pin_dir = o.bpffs.join("policyd");
    std::fs::create_dir_all(&pin_dir).map_err(|e| format!("{}: {e}", pin_dir.display()))?;

    let world = World::create("p")?;
    let template: Vec<String> = if o.args.is_empty() {
        DEFAULT_ARGS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        o.args.to_vec()
    };
    let driven = template.iter().any(|a| a.contains("{socket}"));
    let fill = |a: &str| {
        a.replace("{tree}", &tree_dir.display().to_string())
            .replace("{bundle}", &bundle_path.display().to_string())
            .replace("{pin_dir}", &pin_dir.display().to_string())
            .replace("{socket}", &socket.display().to_string())
            .replace("{state_dir}", &state_dir.display().to_string())
            .replace("{netns}", world.node.name())
    };
    let args: Vec<String> = template.iter().map(|a| fill(a)).collect();
    let stderr_path = dir.join("policyd.stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", world.node.name()])
        .arg(o.bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", o.bin.display()))?;
    // `ip netns exec` execs the program: the child's pid is policyd's.
    let pid = child.id();
    let mut running = Running { child };
    let exited = |r: &mut Running| -> Result<(), String> {
        match r.child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => Err(format!(
                "policyd exited ({status}); its last lines:\n    {}",
                stderr_tail(&stderr_path)
            )),
            None => Ok(()),
        }
    };
    let interrupted = || signals::RECEIVED.load(Ordering::Relaxed) != 0;

    let mut status = None;
    if driven {
        let deadline = Instant::now() + o.timeout;
        let timed_out = |what: &str| {
            format!(
                "policyd did not {what} within {:?}; its last lines:\n    {}",
                o.timeout,
                stderr_tail(&stderr_path)
            )
        };
        // The socket answers.
        while api::call(&socket, &Request::Status).is_err() {
            exited(&mut running)?;
            if Instant::now() > deadline || interrupted() {
                return Err(timed_out("answer on its socket"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The pods, registered as policy-cni registers them.
        for (pod, netns, host_if, ip) in [
            ("client", &world.client, CLIENT_IF, CLIENT_IP),
            ("server", &world.server, SERVER_IF, SERVER_IP),
        ] {
            register(&socket, pod, netns, host_if, IpAddr::V4(ip))?;
        }
        // The other endpoints: pods the tree does not name (no policy selects them), each
        // on a veth of its own in the node namespace.
        for i in 0..o.endpoints.saturating_sub(2) {
            if interrupted() {
                return Err("interrupted".into());
            }
            let host = format!("plcbe{i}");
            world.node.ip(&[
                "link",
                "add",
                &host,
                "type",
                "veth",
                "peer",
                "name",
                &format!("plcbq{i}"),
            ])?;
            world.node.ip(&["link", "set", &host, "up"])?;
            let ip = std::net::Ipv4Addr::new(10, 250, (i / 250) as u8, (i % 250) as u8 + 1);
            register(
                &socket,
                &format!("extra-{i}"),
                &world.node,
                &host,
                IpAddr::V4(ip),
            )?;
        }
        // Enforcing: both endpoints, the policy map full, the probes as the policy says.
        let sockets = world.sockets()?;
        loop {
            exited(&mut running)?;
            if Instant::now() > deadline || interrupted() {
                return Err(timed_out("enforce the tree"));
            }
            let body = api::call(&socket, &Request::Status).map_err(|e| e.to_string())?;
            let endpoints = body["endpoints"].as_u64().unwrap_or(0);
            let policy_entries = body["maps"]
                .as_array()
                .and_then(|maps| {
                    maps.iter()
                        .find(|m| m["name"] == enforcer::datapath::maps::POLICY)
                })
                .and_then(|m| m["entries"].as_u64())
                .unwrap_or(0);
            if endpoints >= o.endpoints as u64 && policy_entries >= o.entries as u64 {
                let c = topo::check(&world, &sockets)?;
                if c.udp_received && c.tcp_accepted && c.denied_received == 0 {
                    status = Some(format!(
                        "{endpoints} endpoints, {policy_entries} policy entries, compile {} ms, swap {} ms, generation {}; probes pass, the unlisted port is dropped",
                        body["policy"]["compile_ms"],
                        body["policy"]["swap_ms"],
                        body["live_generation"],
                    ));
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let settle = Instant::now() + o.settle;
    while Instant::now() < settle && !interrupted() {
        exited(&mut running)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    exited(&mut running)?;
    let report = Report {
        vm_rss: status_field(pid, "VmRSS:"),
        vm_hwm: status_field(pid, "VmHWM:"),
        status,
    };
    // Stop policyd before its namespaces go; then its pins.
    drop(running);
    drop(world);
    let _ = std::fs::remove_dir_all(&pin_dir);
    Ok(report)
}

fn register(
    socket: &Path,
    pod: &str,
    netns: &Netns,
    host_if: &str,
    ip: IpAddr,
) -> Result<(), String> {
    let reg = EndpointRegistration {
        container_id: format!("plcb-{pod}"),
        ifname: "eth0".to_owned(),
        netns: format!("/run/netns/{}", netns.name()),
        host_ifname: host_if.to_owned(),
        namespace: policy::NAMESPACE.to_owned(),
        pod_name: pod.to_owned(),
        pod_uid: None,
        ips: vec![ip],
    };
    api::call(socket, &Request::EndpointAdd(reg))
        .map(|_| ())
        .map_err(|e| format!("registering {pod} with policyd: {e}"))
}
