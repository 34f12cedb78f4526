//! policy-cni called exactly as a container runtime calls it: `CNI_*` variables, the network
//! configuration on stdin, `CNI_PATH=/usr/lib/cni` for Debian's host-local IPAM, run inside a
//! "node" network namespace the test creates, wiring "pod" namespaces it creates too, with a
//! stub policyd on a unix socket in a temporary directory. Needs root; never touches the root
//! network namespace.

use enforcer::api::{EndpointInfo, EndpointRegistration, Request, Response};
use enforcer::cni::netns;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const PLUGIN: &str = env!("CARGO_BIN_EXE_policy-cni");
const CNI_PATH: &str = "/usr/lib/cni";

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "plc{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn ip(args: &[&str]) -> std::process::Output {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Debian packages these tests run (`scripts/setup.sh` installs them).
fn preflight() {
    for (path, package) in [
        ("/usr/lib/cni/host-local", "containernetworking-plugins"),
        ("/usr/bin/ping", "iputils-ping"),
        ("/usr/bin/ip", "iproute2"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install the Debian package {package} (./scripts/setup.sh)"
        );
    }
}

/// A network namespace made by `ip netns add`, deleted on drop (also when the test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        preflight();
        let name = unique(tag);
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Link names in this namespace.
    fn links(&self) -> Vec<String> {
        let out = ip(&["-n", &self.name, "-o", "link", "show"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    fn plc_links(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l.starts_with("plc"))
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A directory removed with its contents on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    Refuse,
}

/// A stand-in for policyd: answers each request line with a JSON response line, as policyd
/// does, and records every request. Endpoints it accepted are answered to `endpoint_get`.
struct Stub {
    path: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    endpoints: Arc<Mutex<BTreeMap<(String, String), EndpointRegistration>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn info(reg: &EndpointRegistration) -> EndpointInfo {
    EndpointInfo {
        container_id: reg.container_id.clone(),
        ifname: reg.ifname.clone(),
        netns: reg.netns.clone(),
        host_ifname: reg.host_ifname.clone(),
        host_ifindex: 0,
        namespace: reg.namespace.clone(),
        pod_name: reg.pod_name.clone(),
        ips: reg.ips.clone(),
        workload: None,
        identity: 0,
        ingress_enforced: false,
        egress_enforced: false,
    }
}

impl Stub {
    fn start(dir: &Path, mode: Mode) -> Stub {
        let path = dir.join("policyd.sock");
        let listener = UnixListener::bind(&path).expect("bind the stub socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let endpoints = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, endpoints, stop) = (requests.clone(), endpoints.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    serve(conn, mode, &requests, &endpoints);
                }
            })
        };
        Stub {
            path,
            requests,
            endpoints,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// Forgets every endpoint, as a policyd that lost them would; returns them.
    fn forget_all(&self) -> BTreeMap<(String, String), EndpointRegistration> {
        std::mem::take(&mut *self.endpoints.lock().expect("lock"))
    }

    fn restore(&self, endpoints: BTreeMap<(String, String), EndpointRegistration>) {
        *self.endpoints.lock().expect("lock") = endpoints;
    }
}

fn serve(
    conn: UnixStream,
    mode: Mode,
    requests: &Mutex<Vec<Request>>,
    endpoints: &Mutex<BTreeMap<(String, String), EndpointRegistration>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let reader = BufReader::new(conn);
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let response = match serde_json::from_str::<Request>(&line) {
            Err(e) => Response::err(format!("bad request: {e}")),
            Ok(request) => {
                requests.lock().expect("lock").push(request.clone());
                let mut eps = endpoints.lock().expect("lock");
                match (request, mode) {
                    (_, Mode::Refuse) => Response::err("the test's policyd refuses everything"),
                    (Request::EndpointAdd(reg), Mode::Accept) => {
                        let answer = Response::ok(info(&reg));
                        eps.insert((reg.container_id.clone(), reg.ifname.clone()), reg);
                        answer
                    }
                    (
                        Request::EndpointDel {
                            container_id,
                            ifname,
                        },
                        Mode::Accept,
                    ) => {
                        eps.remove(&(container_id, ifname));
                        Response::ok(Value::Null)
                    }
                    (
                        Request::EndpointGet {
                            container_id,
                            ifname,
                        },
                        Mode::Accept,
                    ) => match eps.get(&(container_id, ifname)) {
                        Some(reg) => Response::ok(info(reg)),
                        None => Response::err("no such endpoint"),
                    },
                    (other, Mode::Accept) => Response::err(format!("not in the stub: {other:?}")),
                }
            }
        };
        let mut text = serde_json::to_string(&response).expect("response json");
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A process holding a namespace (`sleep` under `ip netns exec`), killed on drop.
struct Holder(std::process::Child);

impl Holder {
    /// Waits until the process is inside the namespace (`ip netns exec` enters it, then execs
    /// `sleep` in the same process): both files then name the same nsfs inode.
    fn spawn(ns: &Netns) -> Holder {
        use std::os::unix::fs::MetadataExt;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let holder = Holder(child);
        let target = std::fs::metadata(ns.path()).expect("netns file").ino();
        let own = format!("/proc/{}/ns/net", holder.0.id());
        for _ in 0..1000 {
            if std::fs::metadata(&own).is_ok_and(|m| m.ino() == target) {
                return holder;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the holder process did not enter {}", ns.name);
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the plugin printed and how it exited.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "the plugin failed: stdout {} stderr {}",
            self.stdout, self.stderr
        );
        self
    }

    /// The spec's error object with `code`, and a non-zero exit.
    fn error(&self, code: u64) -> Value {
        assert_ne!(self.code, 0, "expected a failure, got {}", self.stdout);
        let v = self.json();
        assert_eq!(v["code"], json!(code), "error: {v}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["cniVersion"].is_string(), "{v}");
        v
    }
}

/// One attachment: a container id, its pod namespace and interface, its CNI_ARGS.
struct Attach<'a> {
    container_id: &'a str,
    netns: &'a str,
    ifname: &'a str,
    args: &'a str,
}

/// Runs the plugin as a runtime does, inside the node namespace.
fn cni(node: &Netns, command: &str, a: &Attach<'_>, conf: &Value) -> Out {
    cni_env(node, command, a, conf, &[])
}

fn cni_env(node: &Netns, command: &str, a: &Attach<'_>, conf: &Value, drop_vars: &[&str]) -> Out {
    cni_raw(node, command, a, conf.to_string().as_bytes(), drop_vars)
}

/// The plugin with `stdin` as it is (possibly not JSON at all), without `drop_vars`.
fn cni_raw(node: &Netns, command: &str, a: &Attach<'_>, stdin: &[u8], drop_vars: &[&str]) -> Out {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.name, PLUGIN])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let vars = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", a.container_id),
        ("CNI_NETNS", a.netns),
        ("CNI_IFNAME", a.ifname),
        ("CNI_ARGS", a.args),
        ("CNI_PATH", CNI_PATH),
    ];
    for (k, v) in vars {
        if !drop_vars.contains(&k) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the plugin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write the configuration");
    let out = child.wait_with_output().expect("wait for the plugin");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A network configuration with host-local IPAM keeping its state under `dir`.
fn conf(name: &str, dir: &TempDir, socket: &Path, ranges: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "policy-cni",
        "socket": socket,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "dataDir": dir.path.join("ipam"),
        },
    })
}

fn v4_range(subnet: &str) -> Value {
    json!([[{ "subnet": subnet }]])
}

/// The addresses host-local holds for network `name` (one file per address).
fn reserved(dir: &TempDir, name: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.path.join("ipam").join(name)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}

/// The result's first address, without its prefix.
fn pod_ip(result: &Value) -> IpAddr {
    let addr = result["ips"][0]["address"]
        .as_str()
        .expect("ips[0].address");
    addr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("address")
}

fn ping(from: &Netns, to: IpAddr) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &from.name, "ping", "-c1", "-W2"])
        .arg(to.to_string())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Sends a line over TCP from one pod to a listener in another and reads the echo back.
fn tcp_roundtrip(from: &Netns, to: &Netns, to_ip: IpAddr) {
    let listener = netns::run_in_path(Path::new(&to.path()), || TcpListener::bind((to_ip, 0)))
        .expect("listen in the server pod");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf)?;
        conn.write_all(&buf)
    });
    let mut stream = netns::run_in_path(Path::new(&from.path()), || {
        TcpStream::connect_timeout(&(to_ip, port).into(), Duration::from_secs(10))
    })
    .expect("connect from the client pod");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(b"hello").expect("send");
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"hello");
    server
        .join()
        .expect("server thread")
        .expect("server side of the TCP exchange");
}

#[test]
fn version_lists_the_supported_versions() {
    let mut child = Command::new(PLUGIN)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"cniVersion":"1.0.0"}"#)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}"#
    );
}

#[test]
fn add_wires_two_pods_that_reach_each_other_and_registers_them() {
    let node = Netns::new("node");
    let pod1 = Netns::new("pod1");
    let pod2 = Netns::new("pod2");
    let dir = TempDir::new("add");
    let stub = Stub::start(&dir.path, Mode::Accept);
    let conf = conf("podnet", &dir, &stub.path, v4_range("10.244.1.0/24"));

    let args1 = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;\
                 K8S_POD_INFRA_CONTAINER_ID=c0ffee01;K8S_POD_UID=uid-1";
    let a1 = Attach {
        container_id: "c0ffee01",
        netns: &pod1.path(),
        ifname: "eth0",
        args: args1,
    };
    let r1 = cni(&node, "ADD", &a1, &conf).ok().json();
    let a2 = Attach {
        container_id: "c0ffee02",
        netns: &pod2.path(),
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=db-0",
    };
    let r2 = cni(&node, "ADD", &a2, &conf).ok().json();

    // The result, as the 1.0.0 specification shapes it.
    assert_eq!(r1["cniVersion"], "1.0.0");
    let ifaces = r1["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 2, "{r1}");
    let host = ifaces[0]["name"].as_str().expect("host name");
    assert!(host.starts_with("plc") && host.len() <= 15, "{host}");
    assert_eq!(ifaces[0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert!(ifaces[0].get("sandbox").is_none());
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(ifaces[1]["sandbox"], json!(pod1.path()));
    assert_eq!(ifaces[1]["mac"].as_str().map(str::len), Some(17));
    let ips = r1["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0]["interface"], 1);
    assert_eq!(ips[0]["gateway"], "169.254.1.1");
    assert!(
        ips[0].get("version").is_none(),
        "1.0.0 has no ips[].version"
    );
    let addr = ips[0]["address"].as_str().expect("address");
    assert!(
        addr.starts_with("10.244.1.") && addr.ends_with("/32"),
        "{addr}"
    );
    assert_eq!(
        r1["routes"],
        json!([{ "dst": "0.0.0.0/0", "gw": "169.254.1.1" }])
    );
    assert!(r1["dns"].is_object());
    let (ip1, ip2) = (pod_ip(&r1), pod_ip(&r2));
    assert_ne!(ip1, ip2);

    // The node: both host ends up, a /32 route to each pod, forwarding on.
    let links = node.plc_links();
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links.contains(&host.to_string()));
    let routes = String::from_utf8_lossy(&ip(&["-n", &node.name, "route"]).stdout).into_owned();
    assert!(
        routes.contains(&format!("{ip1} dev {host} scope link")),
        "{routes}"
    );
    let neigh =
        String::from_utf8_lossy(&ip(&["-n", &node.name, "neigh", "show", "dev", host]).stdout)
            .into_owned();
    assert!(
        neigh.contains(&format!(
            "{ip1} lladdr {}",
            ifaces[1]["mac"].as_str().unwrap_or("?")
        )) && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let proxy_arp = ip(&[
        "netns",
        "exec",
        &node.name,
        "cat",
        &format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp"),
    ]);
    assert_eq!(String::from_utf8_lossy(&proxy_arp.stdout).trim(), "1");

    // The pod: its address as /32, the default route through the link-local gateway.
    let addrs = String::from_utf8_lossy(&ip(&["-n", &pod1.name, "addr", "show", "eth0"]).stdout)
        .into_owned();
    assert!(addrs.contains(&format!("inet {ip1}/32")), "{addrs}");
    let pod_routes = String::from_utf8_lossy(&ip(&["-n", &pod1.name, "route"]).stdout).into_owned();
    assert!(
        pod_routes.contains("default via 169.254.1.1 dev eth0"),
        "{pod_routes}"
    );

    // policyd was told who the pod is.
    let regs: Vec<EndpointRegistration> = stub
        .requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::EndpointAdd(reg) => Some(reg),
            _ => None,
        })
        .collect();
    assert_eq!(regs.len(), 2);
    assert_eq!(
        regs[0],
        EndpointRegistration {
            container_id: "c0ffee01".into(),
            ifname: "eth0".into(),
            netns: pod1.path(),
            host_ifname: host.into(),
            namespace: "shop".into(),
            pod_name: "web-0".into(),
            pod_uid: Some("uid-1".into()),
            ips: vec![ip1],
        }
    );
    assert_eq!(regs[1].pod_name, "db-0");
    assert_eq!(regs[1].pod_uid, None);
    assert_eq!(regs[1].ips, vec![ip2]);

    // Real packets, pod to pod through the node namespace.
    assert!(ping(&pod1, ip2), "pod1 cannot ping pod2 ({ip2})");
    assert!(ping(&pod2, ip1), "pod2 cannot ping pod1 ({ip1})");
    tcp_roundtrip(&pod1, &pod2, ip2);
    tcp_roundtrip(&pod2, &pod1, ip1);

    for a in [&a1, &a2] {
        cni(&node, "DEL", a, &conf).ok();
    }
    assert!(node.plc_links().is_empty());
}

#[test]
fn del_is_idempotent_and_releases_the_address() {
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let pod_b = Netns::new("podb");
    let dir = TempDir::new("del");
    let stub = Stub::start(&dir.path, Mode::Accept);
    // A range of a single address: a second pod gets it only once the first released it.
    let conf = conf(
        "one",
        &dir,
        &stub.path,
        json!([[{ "subnet": "10.244.2.0/24", "rangeStart": "10.244.2.10", "rangeEnd": "10.244.2.10" }]]),
    );
    let a = Attach {
        container_id: "d1",
        netns: &pod.path(),
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
    };
    let b = Attach {
        container_id: "d2",
        netns: &pod_b.path(),
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=q",
    };
    let r = cni(&node, "ADD", &a, &conf).ok().json();
    assert_eq!(pod_ip(&r).to_string(), "10.244.2.10");
    assert_eq!(reserved(&dir, "one"), vec!["10.244.2.10"]);
    // The range is exhausted: host-local's own error comes through.
    let full = cni(&node, "ADD", &b, &conf);
    assert_ne!(full.code, 0);
    assert!(full.json()["code"].as_u64().is_some(), "{}", full.stdout);
    assert!(!pod_b.links().contains(&"eth0".to_string()));

    let del = cni(&node, "DEL", &a, &conf).ok();
    assert!(del.stdout.is_empty(), "DEL prints nothing: {}", del.stdout);
    assert!(reserved(&dir, "one").is_empty());
    assert!(node.plc_links().is_empty());
    assert!(!pod.links().contains(&"eth0".to_string()));
    assert!(stub.requests().contains(&Request::EndpointDel {
        container_id: "d1".into(),
        ifname: "eth0".into()
    }));
    // Again: nothing left to delete is not an error.
    cni(&node, "DEL", &a, &conf).ok();
    // And without a namespace (the runtime may have removed it already).
    let gone = Attach { netns: "", ..a };
    cni(&node, "DEL", &gone, &conf).ok();

    // The address is free again.
    let rb = cni(&node, "ADD", &b, &conf).ok().json();
    assert_eq!(pod_ip(&rb).to_string(), "10.244.2.10");
    cni(&node, "DEL", &b, &conf).ok();
    assert!(reserved(&dir, "one").is_empty());
}

#[test]
fn del_succeeds_when_policyd_is_not_running() {
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let dir = TempDir::new("nopolicyd");
    let stub = Stub::start(&dir.path, Mode::Accept);
    let conf = conf("nop", &dir, &stub.path, v4_range("10.244.3.0/24"));
    let a = Attach {
        container_id: "n1",
        netns: &pod.path(),
        ifname: "eth0",
        args: "",
    };
    cni(&node, "ADD", &a, &conf).ok();
    assert_eq!(reserved(&dir, "nop").len(), 1);
    drop(stub); // the socket file goes with it
    let del = cni(&node, "DEL", &a, &conf).ok();
    assert!(del.stderr.contains("not reachable"), "{}", del.stderr);
    assert!(node.plc_links().is_empty());
    assert!(reserved(&dir, "nop").is_empty());
}

#[test]
fn add_errors_are_the_spec_error_object() {
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let dir = TempDir::new("errors");
    let stub = Stub::start(&dir.path, Mode::Accept);
    let good = conf("errs", &dir, &stub.path, v4_range("10.244.4.0/24"));
    let a = Attach {
        container_id: "e1",
        netns: &pod.path(),
        ifname: "eth0",
        args: "",
    };

    let mut no_ipam_plugin = good.clone();
    no_ipam_plugin["ipam"]["type"] = json!("no-such-ipam");
    let e = cni(&node, "ADD", &a, &no_ipam_plugin).error(7);
    assert_eq!(e["cniVersion"], "1.0.0");
    assert!(
        e["details"].as_str().is_some_and(|d| d.contains(CNI_PATH)),
        "{e}"
    );

    let mut no_ipam = good.clone();
    no_ipam.as_object_mut().expect("object").remove("ipam");
    cni(&node, "ADD", &a, &no_ipam).error(7);

    let mut old = good.clone();
    old["cniVersion"] = json!("0.2.0");
    cni(&node, "ADD", &a, &old).error(1);

    let mut bad_mtu = good.clone();
    bad_mtu["mtu"] = json!("big");
    cni(&node, "ADD", &a, &bad_mtu).error(6);

    cni_raw(&node, "ADD", &a, b"{ not json", &[]).error(6);
    cni_raw(&node, "ADD", &a, b"[1, 2]", &[]).error(6);

    let out = cni_env(&node, "ADD", &a, &good, &["CNI_NETNS"]);
    out.error(4);
    let nowhere = Attach {
        netns: "/var/run/netns/plc-no-such-namespace",
        ..a
    };
    cni(&node, "ADD", &nowhere, &good).error(4);
    let bad_if = Attach {
        ifname: "this-name-is-too-long",
        ..a
    };
    cni(&node, "ADD", &bad_if, &good).error(4);

    // None of it left anything behind, and policyd heard nothing.
    assert!(node.plc_links().is_empty());
    assert!(reserved(&dir, "errs").is_empty());
    assert!(stub.requests().is_empty());
}

#[test]
fn add_rolls_back_when_policyd_refuses_or_is_away() {
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let dir = TempDir::new("refuse");
    let stub = Stub::start(&dir.path, Mode::Refuse);
    let conf = conf("ref", &dir, &stub.path, v4_range("10.244.5.0/24"));
    let a = Attach {
        container_id: "r1",
        netns: &pod.path(),
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
    };
    let e = cni(&node, "ADD", &a, &conf).error(102);
    assert!(
        e["details"]
            .as_str()
            .is_some_and(|d| d.contains("refuses everything")),
        "{e}"
    );
    assert!(matches!(
        stub.requests().as_slice(),
        [Request::EndpointAdd(_)]
    ));
    assert!(node.plc_links().is_empty());
    assert!(!pod.links().contains(&"eth0".to_string()));
    assert!(reserved(&dir, "ref").is_empty());

    // No policyd at all: a transient condition, "try again later", rolled back the same.
    drop(stub);
    cni(&node, "ADD", &a, &conf).error(11);
    assert!(node.plc_links().is_empty());
    assert!(!pod.links().contains(&"eth0".to_string()));
    assert!(reserved(&dir, "ref").is_empty());
}

#[test]
fn check_confirms_the_attachment_and_finds_what_is_off() {
    let node = Netns::new("node");
    let pod = Netns::new("pod");
    let dir = TempDir::new("check");
    let stub = Stub::start(&dir.path, Mode::Accept);
    let conf = conf("chk", &dir, &stub.path, v4_range("10.244.6.0/24"));
    let a = Attach {
        container_id: "k1",
        netns: &pod.path(),
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
    };
    let result = cni(&node, "ADD", &a, &conf).ok().json();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result.clone();

    let ok = cni(&node, "CHECK", &a, &with_prev).ok();
    assert!(ok.stdout.is_empty(), "{}", ok.stdout);
    assert!(stub.requests().contains(&Request::EndpointGet {
        container_id: "k1".into(),
        ifname: "eth0".into()
    }));

    // CHECK needs prevResult and a version that has CHECK.
    cni(&node, "CHECK", &a, &conf).error(7);
    let mut old = with_prev.clone();
    old["cniVersion"] = json!("0.3.1");
    cni(&node, "CHECK", &a, &old).error(1);

    // policyd lost the endpoint.
    let known = stub.forget_all();
    cni(&node, "CHECK", &a, &with_prev).error(102);
    stub.restore(known);
    cni(&node, "CHECK", &a, &with_prev).ok();
    let again = result;

    // The pod lost its address.
    let addr = again["ips"][0]["address"]
        .as_str()
        .expect("address")
        .to_string();
    ip(&["-n", &pod.name, "addr", "del", &addr, "dev", "eth0"]);
    let e = cni(&node, "CHECK", &a, &with_prev).error(103);
    assert!(e["msg"].as_str().is_some_and(|m| m.contains(&addr)), "{e}");

    // The host end is gone altogether.
    let host = again["interfaces"][0]["name"]
        .as_str()
        .expect("host")
        .to_string();
    ip(&["-n", &node.name, "link", "del", &host]);
    cni(&node, "CHECK", &a, &with_prev).error(103);

    cni(&node, "DEL", &a, &conf).ok();
    assert!(reserved(&dir, "chk").is_empty());
}

#[test]
fn older_versions_and_dual_stack() {
    let node = Netns::new("node");
    let pod1 = Netns::new("pod1");
    let pod2 = Netns::new("pod2");
    let dir = TempDir::new("dual");
    let stub = Stub::start(&dir.path, Mode::Accept);
    let mut conf = conf(
        "dual",
        &dir,
        &stub.path,
        json!([[{ "subnet": "10.244.8.0/24" }], [{ "subnet": "fd00:244:8::/64" }]]),
    );
    conf["cniVersion"] = json!("0.4.0");
    conf["mtu"] = json!(1400);
    // The second pod's namespace is named the way a runtime without `ip netns` names it:
    // /proc/PID/ns/net of a process inside it.
    let holder = Holder::spawn(&pod2);
    let pod2_path = format!("/proc/{}/ns/net", holder.0.id());
    let a1 = Attach {
        container_id: "v1",
        netns: &pod1.path(),
        ifname: "eth0",
        args: "",
    };
    let a2 = Attach {
        container_id: "v2",
        netns: &pod2_path,
        ifname: "net1",
        args: "",
    };
    let r1 = cni(&node, "ADD", &a1, &conf).ok().json();
    let r2 = cni(&node, "ADD", &a2, &conf).ok().json();

    // A 0.4.0 result: same shape, plus ips[].version.
    assert_eq!(r1["cniVersion"], "0.4.0");
    let ips = r1["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 2, "{r1}");
    assert_eq!(ips[0]["version"], "4");
    assert_eq!(ips[1]["version"], "6");
    assert!(ips[1]["address"]
        .as_str()
        .is_some_and(|a| a.ends_with("/128")));
    assert_eq!(ips[1]["gateway"], "fe80::ecee:eeff:feee:eeee");
    assert_eq!(
        r1["routes"],
        json!([
            { "dst": "0.0.0.0/0", "gw": "169.254.1.1" },
            { "dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee" },
        ])
    );
    assert_eq!(r2["interfaces"][1]["name"], "net1");
    assert_eq!(r2["interfaces"][1]["sandbox"], json!(pod2_path));
    let link = String::from_utf8_lossy(&ip(&["-n", &pod2.name, "link", "show", "net1"]).stdout)
        .into_owned();
    assert!(link.contains("mtu 1400"), "{link}");

    let v6 = |r: &Value| -> IpAddr {
        r["ips"][1]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("v6 address")
    };
    assert!(ping(&pod1, pod_ip(&r2)));
    assert!(ping(&pod1, v6(&r2)), "no IPv6 between the pods");
    tcp_roundtrip(&pod2, &pod1, v6(&r1));

    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r2.clone();
    cni(&node, "CHECK", &a2, &with_prev).ok();

    cni(&node, "DEL", &a1, &conf).ok();
    cni(&node, "DEL", &a2, &conf).ok();
    assert!(reserved(&dir, "dual").is_empty());
    assert!(node.plc_links().is_empty());
}
