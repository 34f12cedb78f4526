//! GitOps end to end: a real Git repository, 20+ commits each changing who may talk to whom,
//! applied by re-pointing a git-sync-style symlink (and, in a second test, fetched by
//! `policyd run --git`), while a probe loop runs between every pair of pods. Flows that two
//! consecutive revisions agree on never flip; flows that change switch once and stay
//! switched; after each revision the whole `policyc matrix` of it matches the probes. Broken
//! commits are refused with file:line and change nothing; SIGKILL during swaps converges; the
//! `--established` switch decides what happens to connections a revision no longer allows.

mod node;

use compiler::bundle::Options;
use compiler::lower::compile;
use compiler::matrix::{self, PortProto};
use enforcer::api::Request;
use node::*;
use policy_lang::model::Protocol;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APPS: [&str; 4] = ["a", "b", "c", "d"];
const PORT: u16 = 80;
/// A probe waits this long for the handshake.
const PROBE: Duration = Duration::from_millis(500);

fn workloads() -> String {
    let mut s = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: g}\n");
    for app in APPS {
        s.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {app}, namespace: g}}\n\
             spec:\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n\
             \x20   spec: {{containers: [{{name: c, image: i, ports: [{{containerPort: {PORT}}}]}}]}}\n"
        ));
    }
    s
}

/// Who may reach each destination: `None`, no policy selects it (everything may); `Some`,
/// exactly these sources.
type Model = [Option<Vec<usize>>; 4];

fn policies(m: &Model) -> String {
    let mut s = String::new();
    for (dst, allowed) in m.iter().enumerate() {
        let Some(sources) = allowed else { continue };
        s.push_str(&format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: to-{}, namespace: g}}\nspec:\n  podSelector: {{matchLabels: {{app: {}}}}}\n  policyTypes: [Ingress]\n",
            APPS[dst], APPS[dst]
        ));
        if !sources.is_empty() {
            let names: Vec<&str> = sources.iter().map(|i| APPS[*i]).collect();
            s.push_str(&format!(
                "  ingress:\n  - from:\n    - podSelector:\n        matchExpressions: [{{key: app, operator: In, values: [{}]}}]\n    ports: [{{port: {PORT}}}]\n",
                names.join(", ")
            ));
        }
    }
    s
}

fn allowed(m: &Model, src: usize, dst: usize) -> bool {
    src == dst || m[dst].as_ref().is_none_or(|s| s.contains(&src))
}

/// `n` models, each different from the one before, from a fixed seed.
fn models(n: usize) -> Vec<Model> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out: Vec<Model> = Vec::new();
    while out.len() < n {
        let mut m: Model = Default::default();
        for (dst, slot) in m.iter_mut().enumerate() {
            let r = next();
            *slot = if r % 5 == 0 {
                None
            } else {
                Some(
                    (0..4)
                        .filter(|src| *src != dst && (r >> (8 + src)) & 1 == 1)
                        .collect(),
                )
            };
        }
        if out.last() != Some(&m) {
            out.push(m);
        }
    }
    out
}

/// A Git repository the test commits to, and git-sync-style checkouts of it.
struct Repo {
    dir: PathBuf,
    checkouts: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@example.com")
        .env("GIT_COMMITTER_NAME", "e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Repo {
    fn init(base: &Path) -> Repo {
        let dir = base.join("repo");
        std::fs::create_dir_all(&dir).expect("repo dir");
        git(&dir, &["init", "--quiet", "--initial-branch=main"]);
        let checkouts = base.join("checkouts");
        std::fs::create_dir_all(&checkouts).expect("checkouts");
        Repo { dir, checkouts }
    }

    /// Commits `files` (relative path, text) as the whole tree under `policies/`.
    fn commit(&self, files: &[(&str, String)], message: &str) -> String {
        let tree = self.dir.join("policies");
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).expect("policies dir");
        for (name, text) in files {
            std::fs::write(tree.join(name), text).expect("write");
        }
        git(&self.dir, &["add", "-A"]);
        git(
            &self.dir,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    /// A worktree of `commit`, as git-sync makes one, and the link re-pointed to it.
    fn sync(&self, commit: &str, link: &Path) {
        let wt = self.checkouts.join(commit);
        git(
            &self.dir,
            &[
                "worktree",
                "add",
                "--quiet",
                "--detach",
                &wt.display().to_string(),
                commit,
            ],
        );
        let tmp = link.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(wt.join("policies"), &tmp).expect("symlink");
        std::fs::rename(&tmp, link).expect("re-point the link");
    }
}

fn files(m: &Model) -> Vec<(&'static str, String)> {
    vec![
        ("workloads.yaml", workloads()),
        ("policies.yaml", policies(m)),
    ]
}

/// One probe result of one ordered pair.
#[derive(Clone, Copy, Debug)]
struct Sample {
    pair: (usize, usize),
    start: Instant,
    through: bool,
}

/// A probe loop from every pod to every other, until dropped.
struct Prober {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(pods: &[Pod]) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (s, src) in pods.iter().enumerate() {
            for (d, dst) in pods.iter().enumerate() {
                if s == d {
                    continue;
                }
                let (stop, samples) = (stop.clone(), samples.clone());
                let netns = src.netns.clone();
                let to = SocketAddr::new(dst.ip, PORT);
                threads.push(std::thread::spawn(move || {
                    in_netns(&netns, move || {
                        let deadline = Instant::now() + Duration::from_secs(600);
                        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                            let start = Instant::now();
                            let through = tcp_connect(to, PROBE).reached();
                            if let Ok(mut v) = samples.lock() {
                                v.push(Sample {
                                    pair: (s, d),
                                    start,
                                    through,
                                });
                            }
                            if through {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    })
                }));
            }
        }
        Prober {
            stop,
            samples,
            threads,
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until every pair has a probe that started after `t`, and returns the first.
    fn first_after(&self, t: Instant, pairs: usize) -> Vec<Sample> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut firsts: Vec<Sample> = Vec::new();
            for s in self.samples().into_iter().filter(|s| s.start >= t) {
                if !firsts.iter().any(|f| f.pair == s.pair) {
                    firsts.push(s);
                }
            }
            if firsts.len() == pairs || Instant::now() > deadline {
                return firsts;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Prober {
    /// Every pair's first probe after `t` against model `m`; disagreements go to `problems`.
    fn check_now(&self, m: &Model, t: Instant, what: &str, problems: &mut Vec<String>) {
        for s in self.first_after(t, 12) {
            if s.through != allowed(m, s.pair.0, s.pair.1) {
                problems.push(format!(
                    "{what}: {} -> {} probed {}, the revision says {}",
                    APPS[s.pair.0],
                    APPS[s.pair.1],
                    s.through,
                    allowed(m, s.pair.0, s.pair.1)
                ));
            }
        }
    }

    /// A revision applied at `now` after `old` was applied at `from`: the window between
    /// switches at most once per pair, and every pair then agrees with `new`.
    fn check_revision(
        &self,
        from: Instant,
        now: Instant,
        (old, new): (&Model, &Model),
        what: &str,
        problems: &mut Vec<String>,
    ) {
        problems.extend(check_window(&self.samples(), from, now, old, new));
        self.check_now(new, now, what, problems);
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Checks every pair's probes in `[from, to)`: the old verdict, then (once) the new one.
fn check_window(
    samples: &[Sample],
    from: Instant,
    to: Instant,
    old: &Model,
    new: &Model,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (s, src) in APPS.iter().enumerate() {
        for (d, dst) in APPS.iter().enumerate() {
            if s == d {
                continue;
            }
            let seq: Vec<bool> = samples
                .iter()
                .filter(|x| x.pair == (s, d) && x.start >= from && x.start < to)
                .map(|x| x.through)
                .collect();
            let (a, b) = (allowed(old, s, d), allowed(new, s, d));
            let ok = if a == b {
                seq.iter().all(|t| *t == a)
            } else {
                let switch = seq.iter().position(|t| *t == b).unwrap_or(seq.len());
                seq[..switch].iter().all(|t| *t == a) && seq[switch..].iter().all(|t| *t == b)
            };
            if !ok {
                problems.push(format!(
                    "{src} -> {dst}: expected {a} then {b}, probed {seq:?}"
                ));
            }
        }
    }
    problems
}

/// Polls the agent until the revision in force is `commit`; returns when it saw it.
fn wait_applied(node: &Node, commit: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = enforcer::api::call(&node.socket(), &Request::Status) {
            if s["policy"]["commit"].as_str() == Some(commit) {
                return Instant::now();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{commit} was not applied within 60 s:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the agent's history until `commit` was refused; returns its errors.
fn wait_rejected(node: &Node, commit: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(h) = enforcer::api::call(&node.socket(), &Request::History { last: None }) {
            if let Some(e) = h.as_array().and_then(|a| {
                a.iter()
                    .find(|e| e["commit"] == commit && e["result"] == "rejected")
            }) {
                return e["errors"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{commit} was not refused within 60 s:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The matrix of a revision's tree, from the compiler, as a model check.
fn matrix_agrees(tree: &Path, m: &Model) {
    let checked = policy_lang::check(&[tree.to_owned()]);
    assert_eq!(checked.errors(), 0);
    let compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    let cells = matrix::compute(
        &compiled,
        &[PortProto {
            port: PORT,
            protocol: Protocol::Tcp,
        }],
    );
    for c in cells {
        let s = APPS
            .iter()
            .position(|a| c.from == format!("g/{a}"))
            .expect("from");
        let d = APPS
            .iter()
            .position(|a| c.to == format!("g/{a}"))
            .expect("to");
        assert_eq!(c.allowed, allowed(m, s, d), "matrix {} -> {}", c.from, c.to);
    }
}

fn add_pods(node: &mut Node) -> Vec<Pod> {
    let ipam = node.host_local("10.203.0.0/24");
    APPS.iter()
        .map(|app| node.add_pod("g", &format!("{app}-5d9c7b8f4-x2x7q"), &ipam))
        .collect()
}

/// A node whose policyd follows a git-sync-style link to a repository's first commit (the
/// tree of `first`), with `extra` arguments. Returns the node, the repository, the link and
/// the first commit.
fn synced_node(tag: &str, first: &Model, extra: &[&str]) -> (Node, Repo, PathBuf, String) {
    let mut made: Option<(Repo, String)> = None;
    let node = Node::with_args(tag, |dir| {
        let repo = Repo::init(dir);
        let commit = repo.commit(&files(first), "first");
        let link = dir.join("current");
        repo.sync(&commit, &link);
        made = Some((repo, commit));
        let mut args = vec!["--source".to_owned(), link.display().to_string()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    });
    let (repo, commit) = made.expect("the repository was made");
    let link = node.dir.join("current");
    (node, repo, link, commit)
}

const BROKEN_SYNTAX: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: broken, namespace: g\nspec: {}\n";
const BROKEN_SEMANTICS: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad, namespace: g}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n  egress:\n  - toEntities: [wrld]\n  - toCIDR: [10.0.0.0/33]\n";

#[test]
fn git_sync_revisions_swap_atomically_under_a_probe_loop() {
    let revisions = models(22);
    let (mut node, repo, link, first) = synced_node("gsync", &revisions[0], &[]);
    let pods = add_pods(&mut node);
    let _servers: Vec<Servers> = pods
        .iter()
        .map(|p| Servers::start(p, &[PORT], &[]))
        .collect();
    let mut applied_at = wait_applied(&node, &first);
    let prober = Prober::start(&pods);
    let mut problems = Vec::new();
    prober.check_now(&revisions[0], applied_at, "revision 0", &mut problems);

    let mut in_force = revisions[0].clone();
    for (k, m) in revisions.iter().enumerate().skip(1) {
        // Two broken commits on the way: refused, and nothing changes.
        if k == 8 || k == 9 {
            let (name, text, code) = if k == 8 {
                ("broken.yaml", BROKEN_SYNTAX, "PL002")
            } else {
                ("bad.yaml", BROKEN_SEMANTICS, "PL501")
            };
            let mut f = files(&in_force);
            f.push((name, text.to_owned()));
            let commit = repo.commit(&f, &format!("broken {k}"));
            let t = Instant::now();
            repo.sync(&commit, &link);
            let errors = wait_rejected(&node, &commit);
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(&format!("{name}:")) && e.contains(code)),
                "{errors:?}"
            );
            let status = node.ask(&Request::Status);
            assert_eq!(status["rejected"]["commit"], commit.as_str());
            let shown = status["rejected"]["errors"][0].as_str().unwrap_or_default();
            let line_col: Vec<&str> = shown.splitn(4, ':').collect();
            assert!(
                line_col.len() == 4
                    && line_col[1].parse::<u32>().is_ok()
                    && line_col[2].parse::<u32>().is_ok(),
                "file:line:column in {shown}"
            );
            let human = String::from_utf8_lossy(&node.policyd(&["status"]).stdout).into_owned();
            assert!(
                human.contains("rejected:") && human.contains(code),
                "{human}"
            );
            prober.check_now(
                &in_force,
                t,
                &format!("after broken commit {k}"),
                &mut problems,
            );
            continue;
        }
        let commit = repo.commit(&files(m), &format!("revision {k}"));
        repo.sync(&commit, &link);
        let now = wait_applied(&node, &commit);
        prober.check_revision(
            applied_at,
            now,
            (&in_force, m),
            &format!("revision {k}"),
            &mut problems,
        );
        let tree = std::fs::canonicalize(&link).expect("link");
        matrix_agrees(&tree, m);
        in_force = m.clone();
        applied_at = now;
    }
    let samples = prober.samples().len();
    drop(prober);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The history lists every revision, applied and refused.
    let history = node.ask(&Request::History { last: None });
    let results: Vec<&str> = history
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["result"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(results.iter().filter(|r| **r == "applied").count(), 20);
    assert_eq!(results.iter().filter(|r| **r == "rejected").count(), 2);
    let human = String::from_utf8_lossy(&node.policyd(&["history"]).stdout).into_owned();
    assert!(human.contains("rejected revisions:"), "{human}");
    // The metrics count the same.
    let metrics = in_netns(&node.netns, || {
        let mut c = TcpStream::connect("127.0.0.1:9962").expect("metrics port");
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("request");
        let mut body = String::new();
        let _ = c.read_to_string(&mut body);
        body
    });
    assert!(
        metrics.contains("policyd_revisions_applied_total 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("policyd_revisions_rejected_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("policyd_swap_duration_seconds_count"),
        "{metrics}"
    );
    eprintln!("{samples} probes over 22 commits");
}

#[test]
fn policyd_fetches_a_branch_itself_with_git() {
    let revisions = models(6);
    let mut repo_holder: Option<Repo> = None;
    let mut first = String::new();
    let mut node = Node::with_args("gfetch", |dir| {
        let repo = Repo::init(dir);
        first = repo.commit(&files(&revisions[0]), "revision 0");
        let url = format!("file://{}", repo.dir.display());
        repo_holder = Some(repo);
        [
            "--git",
            &url,
            "--ref",
            "main",
            "--path",
            "policies",
            "--interval",
            "200ms",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    });
    let repo = repo_holder.expect("repo");
    let pods = add_pods(&mut node);
    let _servers: Vec<Servers> = pods
        .iter()
        .map(|p| Servers::start(p, &[PORT], &[]))
        .collect();
    let mut applied_at = wait_applied(&node, &first);
    let prober = Prober::start(&pods);
    let mut problems = Vec::new();
    let mut in_force = revisions[0].clone();
    for (k, m) in revisions.iter().enumerate().skip(1) {
        if k == 3 {
            let mut f = files(&in_force);
            f.push(("bad.yaml", BROKEN_SEMANTICS.to_owned()));
            let commit = repo.commit(&f, "broken");
            let errors = wait_rejected(&node, &commit);
            assert!(errors.iter().any(|e| e.contains("bad.yaml:")), "{errors:?}");
        }
        let commit = repo.commit(&files(m), &format!("revision {k}"));
        let now = wait_applied(&node, &commit);
        prober.check_revision(
            applied_at,
            now,
            (&in_force, m),
            &format!("revision {k}"),
            &mut problems,
        );
        in_force = m.clone();
        applied_at = now;
    }
    drop(prober);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sigkill_during_swaps_converges_without_a_mix_or_allow_all() {
    let revisions = models(8);
    let (mut node, repo, link, first) = synced_node("gkill", &revisions[0], &[]);
    let pods = add_pods(&mut node);
    let _servers: Vec<Servers> = pods
        .iter()
        .map(|p| Servers::start(p, &[PORT], &[]))
        .collect();
    let mut applied_at = wait_applied(&node, &first);
    let prober = Prober::start(&pods);
    let mut problems = Vec::new();
    let mut in_force = revisions[0].clone();
    for (k, m) in revisions.iter().enumerate().skip(1) {
        let commit = repo.commit(&files(m), &format!("revision {k}"));
        repo.sync(&commit, &link);
        // Into the compile or the swap (about 20-150 ms after the flip here).
        std::thread::sleep(Duration::from_millis(20 * k as u64));
        node.kill_policyd();
        std::thread::sleep(Duration::from_millis(200));
        node.start_policyd();
        let now = wait_applied(&node, &commit);
        prober.check_revision(
            applied_at,
            now,
            (&in_force, m),
            &format!("revision {k}"),
            &mut problems,
        );
        in_force = m.clone();
        applied_at = now;
    }
    drop(prober);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_established_switch_decides_the_fate_of_connections_a_revision_denies() {
    let open: Model = [None, None, None, None];
    let closed: Model = [None, Some(vec![]), None, None];
    for keep in [false, true] {
        let mode = if keep { "keep" } else { "recheck" };
        let (mut node, repo, link, first) = synced_node(
            if keep { "gkeep" } else { "gcut" },
            &open,
            &["--established", mode],
        );
        let pods = add_pods(&mut node);
        let _servers = Servers::start(&pods[1], &[PORT], &[]);
        wait_applied(&node, &first);
        let to = SocketAddr::new(pods[1].ip, PORT);
        let mut conn = in_netns(&pods[0].netns, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(1)).expect("connect")
        });
        conn.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        let echo = |conn: &mut TcpStream, b: u8| -> bool {
            let msg = [b; 32];
            if conn.write_all(&msg).is_err() {
                return false;
            }
            let mut back = [0u8; 32];
            conn.read_exact(&mut back).is_ok() && back == msg
        };
        assert!(echo(&mut conn, 1));
        let commit = repo.commit(&files(&closed), "close b");
        repo.sync(&commit, &link);
        wait_applied(&node, &commit);
        // New connections are refused either way.
        assert_eq!(tcp_probe(&pods[0], to, PROBE), Reach::TimedOut);
        assert_eq!(echo(&mut conn, 2), keep, "--established {mode}");
        let status = node.ask(&Request::Status);
        assert_eq!(status["keep_established"], keep);
    }
}
