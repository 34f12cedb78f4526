//! `policyd` killed with SIGKILL and started again: the pinned programs and maps keep
//! enforcing throughout (probed continuously: the denied flow never connects, the allowed one
//! always does, an established connection lives on), and an endpoint deleted while the agent
//! was down is forgotten at the next start.

mod node;

use enforcer::api::Request;
use node::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TREE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  selector: {matchLabels: {app: client}}
  template: {metadata: {labels: {app: client}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 5432}]
"#;

#[derive(Default, Debug)]
struct Tally {
    allowed_ok: u32,
    allowed_failed: u32,
    denied_blocked: u32,
    denied_leaked: u32,
}

#[test]
fn a_killed_agent_leaves_enforcement_in_place_and_a_restart_adopts_it() {
    let mut node = Node::with_files("restart", &[("tree.yaml", TREE)]);
    let ipam = node.host_local("10.202.0.0/24");
    let client = node.add_pod("shop", "client-7c9d8-aaaaa", &ipam);
    let db = node.add_pod("shop", "db-5f6b7-bbbbb", &ipam);
    let gone = node.add_pod("shop", "client-7c9d8-ccccc", &ipam);
    // A server on the denied port too: a leak would connect, not time out.
    let _servers = Servers::start(&db, &[5432, 6000], &[]);

    let allowed = SocketAddr::new(db.ip, 5432);
    let denied = SocketAddr::new(db.ip, 6000);
    assert_eq!(
        tcp_probe(&client, allowed, Duration::from_secs(1)),
        Reach::Connected
    );
    assert_eq!(
        tcp_probe(&client, denied, Duration::from_millis(300)),
        Reach::TimedOut
    );
    let mut established = in_netns(&client.netns, move || {
        TcpStream::connect_timeout(&allowed, Duration::from_secs(1)).expect("connect")
    });
    established
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");

    // Probe without pause from the client's namespace while the agent dies and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let ns = client.netns.clone();
    let prober = std::thread::spawn(move || {
        in_netns(&ns, move || {
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match tcp_connect(allowed, Duration::from_secs(1)) {
                    Reach::Connected => t.allowed_ok += 1,
                    _ => t.allowed_failed += 1,
                }
                match tcp_connect(denied, Duration::from_millis(100)) {
                    Reach::TimedOut => t.denied_blocked += 1,
                    _ => t.denied_leaked += 1,
                }
            }
            t
        })
    });

    let exchange = |conn: &mut TcpStream, tag: u8| {
        let msg = [tag; 64];
        conn.write_all(&msg)
            .expect("write on the established connection");
        let mut back = [0u8; 64];
        conn.read_exact(&mut back)
            .expect("the established connection answers");
        assert_eq!(back, msg);
    };
    exchange(&mut established, 1);
    for round in 0..2u8 {
        std::thread::sleep(Duration::from_millis(500));
        node.kill_policyd();
        if round == 1 {
            // Deleted while nobody listens on the socket: the plugin still cleans up.
            let out = node.del_pod(&gone, &ipam);
            assert!(
                out.status.success(),
                "DEL without policyd: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(700));
        exchange(&mut established, 10 + round);
        node.start_policyd();
        exchange(&mut established, 20 + round);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let tally = prober.join().expect("prober");
    eprintln!("{tally:?}");
    assert!(
        tally.allowed_ok >= 5 && tally.denied_blocked >= 5,
        "{tally:?}"
    );
    assert_eq!(
        tally.denied_leaked, 0,
        "the denied flow got through: {tally:?}"
    );
    assert_eq!(
        tally.allowed_failed, 0,
        "the allowed flow failed: {tally:?}"
    );

    // The restarted agent adopted both pods and forgot the one deleted while it was down.
    let eps = node.ask(&Request::EndpointList);
    let names: Vec<&str> = eps
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["pod_name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 2, "{eps}");
    assert!(!names.contains(&gone.name.as_str()), "{eps}");
    let log = node.log();
    assert!(log.contains("adopted its pinned programs"), "{log}");
    assert!(log.contains("went away while policyd was down"), "{log}");
    let pins: Vec<String> = std::fs::read_dir(node.bpffs.join("links"))
        .expect("links dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(pins.len(), 4, "two links per remaining endpoint: {pins:?}");
}
