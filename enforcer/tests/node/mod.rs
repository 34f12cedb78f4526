//! End-to-end harness: a "node" network namespace running the real `policyd`, pods wired by
//! the real `policy-cni` exactly as a container runtime calls it, servers and probes on real
//! sockets inside the pods' namespaces. Everything is removed on drop, also when a test fails.

// setns(2) of probe threads into the pods' namespaces.
#![allow(unsafe_code)]
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const POLICYD: &str = env!("CARGO_BIN_EXE_policyd");
pub const POLICY_CNI: &str = env!("CARGO_BIN_EXE_policy-cni");

/// A unique short name for this test process's namespaces (`plc<pid><n><tag>`).
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "plc{}x{}{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn a command")
}

fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread that entered the network namespace `netns` (a name under
/// /var/run/netns). Sockets it creates stay in that namespace wherever they are used later.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: a valid namespace fd; CLONE_NEWNET affects only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// A pod wired by the CNI plugin.
#[derive(Clone, Debug)]
pub struct Pod {
    pub netns: String,
    pub namespace: String,
    pub name: String,
    pub container_id: String,
    pub ip: IpAddr,
    /// The ADD result as the plugin printed it.
    pub result: serde_json::Value,
}

/// The node: its namespace, a bpffs, policyd, and the pods.
pub struct Node {
    pub netns: String,
    pub dir: PathBuf,
    pub bpffs: PathBuf,
    /// What follows `policyd run` (the source and its options).
    pub run_args: Vec<String>,
    policyd: Option<Child>,
    pub pods: Vec<Pod>,
    pod_count: u32,
}

impl Node {
    /// A node namespace with policyd enforcing a tree made of `files` (name, YAML), written
    /// under the node's test directory.
    pub fn with_files(tag: &str, files: &[(&str, &str)]) -> Node {
        let netns = unique(tag);
        let dir = std::env::temp_dir().join(format!("{netns}-e2e"));
        let tree = write_tree(&dir.join("tree"), files);
        Node::start(netns, dir, source_args(&tree))
    }

    /// A node namespace with policyd enforcing the tree at `tree`.
    pub fn with_tree(tag: &str, tree: &Path) -> Node {
        let netns = unique(tag);
        let dir = std::env::temp_dir().join(format!("{netns}-e2e"));
        let _ = std::fs::remove_dir_all(&dir);
        Node::start(netns, dir, source_args(tree))
    }

    /// A node whose `policyd run` arguments `prepare` returns, after writing what they need
    /// into the node's (fresh) test directory.
    pub fn with_args(tag: &str, prepare: impl FnOnce(&Path) -> Vec<String>) -> Node {
        let netns = unique(tag);
        let dir = std::env::temp_dir().join(format!("{netns}-e2e"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let args = prepare(&dir);
        Node::start(netns, dir, args)
    }

    fn start(netns: String, dir: PathBuf, run_args: Vec<String>) -> Node {
        std::fs::create_dir_all(&dir).expect("test dir");
        let bpffs = dir.join("bpf");
        std::fs::create_dir_all(&bpffs).expect("bpffs dir");
        let mut node = Node {
            netns: netns.clone(),
            dir,
            bpffs: bpffs.clone(),
            run_args,
            policyd: None,
            pods: Vec::new(),
            pod_count: 0,
        };
        let out = run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&bpffs));
        assert!(
            out.status.success(),
            "mount bpffs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ip(&["netns", "add", &netns]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        node.start_policyd();
        node
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("policyd.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("policyd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts policyd in the node namespace and waits until its socket answers.
    pub fn start_policyd(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, POLICYD])
            .arg("--socket")
            .arg(self.socket())
            .arg("--bpffs-root")
            .arg(&self.bpffs)
            .arg("run")
            .args(&self.run_args)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn policyd");
        self.policyd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if enforcer::api::call(&self.socket(), &enforcer::api::Request::Status).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.policyd.as_mut().map(|c| c.try_wait()) {
                panic!("policyd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "policyd did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash or an OOM kill would end it.
    pub fn kill_policyd(&mut self) {
        if let Some(mut c) = self.policyd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a `policyd` CLI command against this node's agent and maps.
    pub fn policyd(&self, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.netns, POLICYD])
            .arg("--socket")
            .arg(self.socket())
            .arg("--bpffs-root")
            .arg(&self.bpffs)
            .args(args))
    }

    fn cni_config(&self, ipam: &serde_json::Value) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "plc-e2e",
            "type": "policy-cni",
            "socket": self.socket(),
            "ipam": ipam,
        })
        .to_string()
    }

    /// host-local IPAM from `subnet`, state under the test directory.
    pub fn host_local(&self, subnet: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "host-local",
            "ranges": [[{ "subnet": subnet }]],
            "dataDir": self.dir.join("ipam"),
        })
    }

    /// static IPAM with one address.
    pub fn static_ip(ip: IpAddr) -> serde_json::Value {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        serde_json::json!({
            "type": "static",
            "addresses": [{ "address": format!("{ip}/{bits}") }],
        })
    }

    /// Calls the plugin in the node namespace as a runtime does.
    pub fn cni(
        &self,
        command: &str,
        netns: &str,
        container_id: &str,
        k8s: (&str, &str),
        ipam: &serde_json::Value,
        prev_result: Option<&serde_json::Value>,
    ) -> Output {
        let mut config: serde_json::Value =
            serde_json::from_str(&self.cni_config(ipam)).expect("config");
        if let Some(prev) = prev_result {
            config["prevResult"] = prev.clone();
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.netns, POLICY_CNI])
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", format!("/var/run/netns/{netns}"))
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID=uid-{container_id}",
                    k8s.0, k8s.1
                ),
            )
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn policy-cni");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(config.to_string().as_bytes())
            .expect("write config");
        child.wait_with_output().expect("policy-cni")
    }

    /// Creates a pod namespace and wires it through the plugin (ADD).
    pub fn add_pod(&mut self, namespace: &str, name: &str, ipam: &serde_json::Value) -> Pod {
        self.pod_count += 1;
        let netns = format!("{}p{}", self.netns, self.pod_count);
        ip(&["netns", "add", &netns]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        let container_id = format!(
            "{:064x}",
            (self.pod_count as u128) << 64 | std::process::id() as u128
        );
        let out = self.cni("ADD", &netns, &container_id, (namespace, name), ipam, None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "CNI ADD {namespace}/{name} failed: {stdout}\n{}\npolicyd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let result: serde_json::Value = serde_json::from_str(&stdout).expect("ADD result JSON");
        let address = result["ips"][0]["address"]
            .as_str()
            .expect("ips[0].address");
        let ip: IpAddr = address
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("an address");
        let pod = Pod {
            netns,
            namespace: namespace.into(),
            name: name.into(),
            container_id,
            ip,
            result,
        };
        self.pods.push(pod.clone());
        pod
    }

    /// CNI DEL of a pod; its namespace is removed too.
    pub fn del_pod(&mut self, pod: &Pod, ipam: &serde_json::Value) -> Output {
        let out = self.cni(
            "DEL",
            &pod.netns,
            &pod.container_id,
            (&pod.namespace, &pod.name),
            ipam,
            None,
        );
        let _ = run(Command::new("ip").args(["netns", "del", &pod.netns]));
        self.pods.retain(|p| p.netns != pod.netns);
        out
    }

    /// The agent's answer to a request, as JSON.
    pub fn ask(&self, request: &enforcer::api::Request) -> serde_json::Value {
        enforcer::api::call(&self.socket(), request)
            .unwrap_or_else(|e| panic!("policyd: {e}\n{}", self.log()))
    }

    /// Waits until the agent has read the datapath's events (it polls every 100 ms).
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_policyd();
        for p in &self.pods {
            let _ = run(Command::new("ip").args(["netns", "del", &p.netns]));
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.netns]));
        let _ = run(Command::new("umount").arg("-l").arg(&self.bpffs));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Listening sockets in a pod: TCP listeners that echo what they read, UDP sockets that echo
/// datagrams. They stop when dropped.
pub struct Servers {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Servers {
    pub fn start(pod: &Pod, tcp: &[u16], udp: &[u16]) -> Servers {
        let ip = pod.ip;
        let (tcp, udp) = (tcp.to_vec(), udp.to_vec());
        let (listeners, sockets) = in_netns(&pod.netns, move || {
            let listeners: Vec<TcpListener> = tcp
                .iter()
                .map(|p| {
                    let l = TcpListener::bind(SocketAddr::new(ip, *p)).expect("bind tcp");
                    l.set_nonblocking(true).expect("nonblocking");
                    l
                })
                .collect();
            let sockets: Vec<UdpSocket> = udp
                .iter()
                .map(|p| {
                    let s = UdpSocket::bind(SocketAddr::new(ip, *p)).expect("bind udp");
                    s.set_nonblocking(true).expect("nonblocking");
                    s
                })
                .collect();
            (listeners, sockets)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                let mut idle = true;
                for l in &listeners {
                    while let Ok((conn, _)) = l.accept() {
                        idle = false;
                        std::thread::spawn(move || echo(conn));
                    }
                }
                for s in &sockets {
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        idle = false;
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Servers {
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(mut conn: TcpStream) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = [0u8; 2048];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a TCP connection attempt met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The handshake completed.
    Connected,
    /// The peer answered with a reset: the packets got through, nobody listens.
    Refused,
    /// No answer: dropped on the way.
    TimedOut,
}

impl Reach {
    pub fn reached(self) -> bool {
        self != Reach::TimedOut
    }
}

/// One TCP connection attempt from `from` to `to`.
pub fn tcp_probe(from: &Pod, to: SocketAddr, timeout: Duration) -> Reach {
    in_netns(&from.netns, move || tcp_connect(to, timeout))
}

/// A TCP connection attempt from the calling thread's namespace.
pub fn tcp_connect(to: SocketAddr, timeout: Duration) -> Reach {
    match TcpStream::connect_timeout(&to, timeout) {
        Ok(_) => Reach::Connected,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
        Err(_) => Reach::TimedOut,
    }
}

/// A UDP datagram from the calling thread's namespace, and whether its echo came back.
pub fn udp_echo(to: SocketAddr, timeout: Duration) -> bool {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let Ok(s) = UdpSocket::bind(bind) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    if s.send_to(b"probe", to).is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.recv_from(&mut buf), Ok((5, from)) if from == to)
}

/// One ping (ICMP echo) from a pod, with the system's `ping`.
pub fn ping(from: &Pod, to: IpAddr) -> bool {
    run(Command::new("ip").args([
        "netns",
        "exec",
        &from.netns,
        "ping",
        "-c1",
        "-W1",
        &to.to_string(),
    ]))
    .status
    .success()
}

fn source_args(tree: &Path) -> Vec<String> {
    vec!["--source".into(), tree.display().to_string()]
}

/// Writes a policy tree into a fresh directory.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("tree dir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write tree file");
    }
    dir.to_owned()
}
