//! End to end on one node: pods wired by `policy-cni`, `policyd` enforcing a tree, real TCP,
//! UDP and ICMP between the pods; established connections, drop events and `policyd explain`,
//! the CLI's views of the maps, and the CNI verbs.

mod node;

use enforcer::api::Request;
use node::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {team: demo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: demo}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: server, namespace: demo}
spec:
  selector: {matchLabels: {app: server}}
  template:
    metadata: {labels: {app: server}}
    spec:
      containers:
      - name: c
        image: nginx
        ports: [{containerPort: 8080}, {containerPort: 5353, protocol: UDP}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: other, namespace: demo}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: nginx}]}
"#;

// The server takes TCP 8080 and UDP 5353 from the client, and may open nothing itself: its
// replies travel only because conntrack knows the connection.
const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: demo}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080, protocol: TCP}, {port: 5353, protocol: UDP}, {port: 9000, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-no-egress, namespace: demo}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Egress]
"#;

const DENY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-admin-port, namespace: demo}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
"#;

const T: Duration = Duration::from_millis(400);

fn addr(pod: &Pod, port: u16) -> SocketAddr {
    SocketAddr::new(pod.ip, port)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "policyd CLI failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The pod's host-side veth, as the plugin's ADD result names it (the interface without a
/// sandbox).
fn host_veth(pod: &Pod) -> String {
    pod.result["interfaces"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i.get("sandbox").is_none()))
        .and_then(|i| i["name"].as_str())
        .unwrap_or_else(|| panic!("no host interface in {}", pod.result))
        .to_string()
}

/// A packet counter of `link` in namespace `netns` (`ip netns exec` mounts that namespace's
/// /sys).
fn link_packets(netns: &str, link: &str, counter: &str) -> u64 {
    let path = format!("/sys/class/net/{link}/statistics/{counter}");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns, "cat", &path])
        .output()
        .expect("run ip netns exec");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "{path} in {netns}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn text(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "policyd CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_wired_by_the_plugin_get_exactly_the_tree_s_connectivity() {
    let mut node = Node::with_files(
        "basic",
        &[
            ("workloads.yaml", WORKLOADS),
            ("policies.yaml", POLICIES),
            ("deny.yaml", DENY),
        ],
    );
    let ipam = node.host_local("10.201.0.0/24");
    let client = node.add_pod("demo", "client-5d9c7b8f4-x2x7q", &ipam);
    let server = node.add_pod("demo", "server-6f7d8c9b5-abcde", &ipam);
    let other = node.add_pod("demo", "other-0", &ipam);
    let _s = Servers::start(&server, &[8080, 9000, 7000], &[5353, 5354]);
    let _o = Servers::start(&other, &[8080], &[5353]);

    // TCP: allowed, default deny, deny rule; the server may open nothing.
    assert_eq!(tcp_probe(&client, addr(&server, 8080), T), Reach::Connected);
    assert_eq!(tcp_probe(&client, addr(&server, 7000), T), Reach::TimedOut);
    assert_eq!(tcp_probe(&client, addr(&server, 9000), T), Reach::TimedOut);
    assert_eq!(tcp_probe(&server, addr(&other, 8080), T), Reach::TimedOut);
    assert_eq!(tcp_probe(&client, addr(&other, 8080), T), Reach::Connected);
    // Nobody listens on 8081 at `other`, nothing selects it: the reset comes back.
    assert_eq!(tcp_probe(&client, addr(&other, 8081), T), Reach::Refused);

    // UDP: the echo of an allowed datagram comes back through conntrack.
    let to = addr(&server, 5353);
    assert!(in_netns(&client.netns, move || udp_echo(to, T)));
    let to = addr(&server, 5354);
    assert!(!in_netns(&client.netns, move || udp_echo(to, T)));
    let to = addr(&other, 5353);
    assert!(in_netns(&client.netns, move || udp_echo(to, T)));

    // ICMP: echo requests are judged like any flow.
    assert!(ping(&client, other.ip));
    assert!(!ping(&client, server.ip));
    assert!(!ping(&server, client.ip));

    // An established connection keeps working although the server's egress allows nothing.
    let to = addr(&server, 8080);
    let mut conn = in_netns(&client.netns, move || {
        TcpStream::connect_timeout(&to, T).expect("connect to the server")
    });
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let server_veth = host_veth(&server);
    let veth_sent = link_packets(&node.netns, &server_veth, "tx_packets");
    let pod_received = link_packets(&server.netns, "eth0", "rx_packets");
    for i in 0..20u8 {
        let msg = [b'a' + i; 100];
        conn.write_all(&msg).expect("write");
        let mut back = [0u8; 100];
        conn.read_exact(&mut back).expect("the server's reply");
        assert_eq!(back, msg);
    }
    // Local delivery: the client's packets went straight into the server's namespace, never
    // out through the server's host-side veth (the server's ingress was judged on the way).
    let veth_sent = link_packets(&node.netns, &server_veth, "tx_packets") - veth_sent;
    let pod_received = link_packets(&server.netns, "eth0", "rx_packets") - pod_received;
    assert!(
        pod_received >= 20 && veth_sent < 5,
        "server's eth0 received {pod_received}, its host-side veth {server_veth} sent {veth_sent}"
    );

    // The drop of the denied connection is an event that names the deny rule.
    node.settle();
    // `--json` prints one event per line, as `hubble observe -o json` does.
    let dropped = text(&node.policyd(&["observe", "--verdict", "dropped", "--json"]));
    let events: Vec<serde_json::Value> = dropped
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert!(events.iter().all(|e| e["verdict"] == "dropped"));
    assert!(
        events.iter().any(|e| e["destination"]["port"] == 7000
            && e["reason"] == "default-deny"
            && e["destination"]["name"] == "demo/server"
            && e["source"]["name"] == "demo/client"),
        "{dropped}"
    );
    let lines = text(&node.policyd(&["observe", "--verdict", "dropped"]));
    assert!(
        lines
            .lines()
            .any(|l| l.contains(&format!("{}:9000", server.ip))
                && l.contains("policy-deny")
                && l.contains("deny.yaml:7")),
        "no drop event for :9000 naming deny.yaml:7 in:\n{lines}"
    );
    let explained = json(&node.policyd(&[
        "explain",
        "--from",
        &client.ip.to_string(),
        "--to",
        &server.ip.to_string(),
        "--port",
        "9000",
        "--protocol",
        "TCP",
        "--json",
    ]));
    assert_eq!(explained["verdict"], "denied");
    assert_eq!(explained["agrees"], true);
    let ingress = &explained["sides"][1];
    assert_eq!(ingress["side"], "ingress of demo/server");
    assert_eq!(ingress["reason"], "denied by a deny rule");
    let rule = ingress["rules"][0].as_str().unwrap_or_default();
    assert!(
        rule.ends_with("deny.yaml:7 (CiliumNetworkPolicy demo/no-admin-port rule #0)"),
        "{rule}"
    );
    // The default deny names the policies that put the server in it, with their files.
    let human = text(&node.policyd(&["explain", "--to", &server.ip.to_string(), "--port", "7000"]));
    assert!(human.contains("default deny"), "{human}");
    assert!(
        human.contains("NetworkPolicy demo/server-ingress at ")
            && human.contains("policies.yaml:2"),
        "{human}"
    );

    // The CLI's views of the agent and of the maps.
    let status = json(&node.policyd(&["status", "--json"]));
    assert_eq!(status["endpoints"], 3);
    assert!(status["policy"]["generation"].as_u64().unwrap_or(0) >= 1);
    assert!(status["rejected"].is_null());
    let eps = json(&node.policyd(&["endpoint", "list", "--json"]));
    let server_ep = eps
        .as_array()
        .and_then(|a| a.iter().find(|e| e["pod_name"] == server.name.as_str()))
        .expect("the server in the endpoint list")
        .clone();
    assert_eq!(server_ep["workload"], "demo/server");
    assert_eq!(server_ep["ingress_enforced"], true);
    assert_eq!(server_ep["egress_enforced"], true);
    let policy = text(&node.policyd(&["bpf", "policy", "get", "demo/server-6f7d8c9b5-abcde"]));
    assert!(
        policy.lines().any(|l| l.starts_with("ingress")
            && l.contains("TCP")
            && l.contains("8080")
            && l.contains("allow")),
        "{policy}"
    );
    assert!(
        policy
            .lines()
            .any(|l| l.contains("9000") && l.contains("deny")),
        "{policy}"
    );
    let ipcache = text(&node.policyd(&["bpf", "ipcache", "list"]));
    for p in [&client, &server, &other] {
        assert!(ipcache.contains(&format!("{}/32", p.ip)), "{ipcache}");
    }
    let ct = json(&node.policyd(&["bpf", "ct", "list", "--json"]));
    let open = format!("{}:8080", server.ip);
    assert!(
        ct.as_array().is_some_and(|rows| rows
            .iter()
            .any(|r| r["peer"] == open.as_str() && r["seen_reply"] == true)),
        "no established entry towards {open}: {ct}"
    );
    drop(conn);

    // CHECK agrees with the ADD result; DEL is idempotent and forgets the endpoint.
    let out = node.cni(
        "CHECK",
        &other.netns,
        &other.container_id,
        ("demo", "other-0"),
        &ipam,
        Some(&other.result),
    );
    assert!(
        out.status.success(),
        "CHECK: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = node.del_pod(&other, &ipam);
    assert!(
        out.status.success(),
        "DEL: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = node.cni(
        "DEL",
        &other.netns,
        &other.container_id,
        ("demo", "other-0"),
        &ipam,
        None,
    );
    assert!(
        out.status.success(),
        "second DEL: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let eps = node.ask(&Request::EndpointList);
    assert_eq!(eps.as_array().map(Vec::len), Some(2), "{eps}");
    // host-local released the address (it keeps one file per address in use).
    let lease = node
        .dir
        .join("ipam")
        .join("plc-e2e")
        .join(other.ip.to_string());
    assert!(!lease.exists(), "{} is still leased", other.ip);
    let lease = node
        .dir
        .join("ipam")
        .join("plc-e2e")
        .join(client.ip.to_string());
    assert!(
        lease.exists(),
        "host-local keeps {} in {}",
        client.ip,
        lease.display()
    );
}
