//! `compile` is deterministic: the bundle depends on the objects of a tree, not on how they are
//! laid out in files.
//!
//! What "whatever the file order" can honestly mean, since each rule's origin (file, line,
//! column) is part of the bundle:
//!
//! - The same files, copied as-is into two different directories (created in opposite orders,
//!   so that directory listings may differ) and loaded by the same *relative* path: the bundles
//!   are byte-identical.
//! - The same objects, shuffled between and within files (documents reordered, files split and
//!   merged, renamed so that they sort differently, moved into subdirectories): the bundles are
//!   byte-identical once each rule origin's `file`, `line` and `column` are blanked. Nothing
//!   else may change.

use compiler::bundle::{Bundle, Options};
use compiler::lower::compile;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Tests that change the working directory hold this (it is process-wide).
static CWD: Mutex<()> = Mutex::new(());

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "policyc-determinism-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn examples(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/netpol-analyzer/tests")
        .join(name)
}

/// Every file below `dir`, as (relative path, bytes), sorted by path.
fn files_below(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("below root").to_path_buf();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, bytes).expect("write");
    }
}

/// Compiles the tree below `path` (as given: relative paths stay relative in origins).
fn compile_path(path: &Path) -> Bundle {
    let checked = policy_lang::check(&[path.to_path_buf()]);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_lang::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    compile(&checked.tree, &checked.sources, None, Options::default()).bundle
}

/// The bundle with every rule origin's file, line and column blanked.
fn without_locations(mut b: Bundle) -> Vec<u8> {
    for o in &mut b.rules {
        o.file.clear();
        o.line = 0;
        o.column = 0;
    }
    b.to_bytes()
}

/// The first difference of two byte strings, with some context, for failure messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let ctx = |s: &[u8]| {
        String::from_utf8_lossy(&s[i.saturating_sub(200)..(i + 200).min(s.len())]).into_owned()
    };
    format!(
        "lengths {} and {}, first difference at byte {i}:\n  {}\n  {}",
        a.len(),
        b.len(),
        ctx(a),
        ctx(b)
    )
}

// ------------------------------------------------------------------------------------------
// Same files, two directories, relative paths: byte-identical
// ------------------------------------------------------------------------------------------

fn same_files_in_two_dirs(source: &Path) {
    let files = files_below(source);
    assert!(!files.is_empty(), "{}: no files", source.display());
    let (a, b) = (TempDir::new("a"), TempDir::new("b"));
    // Created in opposite orders, so that the directories' listing orders may differ.
    write_files(&a.0.join("tree"), &files);
    let reversed: Vec<_> = files.iter().rev().cloned().collect();
    write_files(&b.0.join("tree"), &reversed);

    // With absolute paths the origins name the two directories: the bundles differ (which is
    // why the comparison below uses relative paths).
    let abs_a = compile_path(&a.0.join("tree"));
    let abs_b = compile_path(&b.0.join("tree"));
    if !abs_a.rules.is_empty() {
        assert_ne!(abs_a.to_bytes(), abs_b.to_bytes());
    }
    assert_eq!(
        without_locations(abs_a.clone()),
        without_locations(abs_b),
        "{}",
        source.display()
    );

    let _guard = CWD.lock().unwrap_or_else(|e| e.into_inner());
    let cwd = std::env::current_dir().expect("cwd");
    std::env::set_current_dir(&a.0).expect("cd a");
    let rel_a = compile_path(Path::new("tree"));
    std::env::set_current_dir(&b.0).expect("cd b");
    let rel_b = compile_path(Path::new("tree"));
    // Twice, to rule out state kept between compiles.
    let rel_b2 = compile_path(Path::new("tree"));
    std::env::set_current_dir(cwd).expect("cd back");
    let (x, y) = (rel_a.to_bytes(), rel_b.to_bytes());
    assert!(x == y, "{}: {}", source.display(), first_difference(&x, &y));
    assert_eq!(y, rel_b2.to_bytes());
    // The origins really are the relative paths.
    assert!(rel_a.rules.iter().all(|o| o.file.starts_with("tree")));
}

#[test]
fn online_shop_same_files_two_dirs_byte_identical() {
    same_files_in_two_dirs(&examples("online-shop"));
}

#[test]
fn generated_tree_same_files_two_dirs_byte_identical() {
    let dir = TempDir::new("gen");
    write_files(
        &dir.0,
        &[(
            PathBuf::from("generated.yaml"),
            generated_tree(7).into_bytes(),
        )],
    );
    same_files_in_two_dirs(&dir.0);
}

// ------------------------------------------------------------------------------------------
// Same objects, shuffled between and within files: identical but for origin locations
// ------------------------------------------------------------------------------------------

/// The YAML documents of a text (split at `---` lines), without those holding only comments
/// and blank lines.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().expect("a document");
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// A small deterministic generator (xorshift), so that shuffles are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The documents of every YAML/JSON file below `source`, shuffled and dealt into files.
/// `files`: how many files (1 = everything merged into one); names sort in an order unrelated
/// to the original one, some in subdirectories.
fn shuffled_layout(source: &Path, seed: u64, files: Option<usize>) -> Vec<(PathBuf, Vec<u8>)> {
    let mut docs: Vec<String> = Vec::new();
    for (rel, bytes) in files_below(source) {
        let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml") {
            // JSON files (and anything else) are kept whole, under a new name.
            if ext == "json" {
                let mut text = String::from_utf8(bytes).expect("utf-8");
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                docs.push(text);
            }
            continue;
        }
        docs.extend(documents(&String::from_utf8(bytes).expect("utf-8")));
    }
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for i in (1..docs.len()).rev() {
        let j = rng.below(i + 1);
        docs.swap(i, j);
    }
    let n = files.unwrap_or_else(|| 1 + rng.below(docs.len()));
    let mut out: Vec<(PathBuf, Vec<String>)> = (0..n)
        .map(|i| {
            // Reverse-numbered names, every third one in a subdirectory.
            let name = format!("{:02}-part.yaml", 99 - i);
            let path = if i % 3 == 2 {
                PathBuf::from(format!("z{}", rng.below(3))).join(name)
            } else {
                PathBuf::from(name)
            };
            (path, Vec::new())
        })
        .collect();
    for (i, d) in docs.into_iter().enumerate() {
        // Every file gets one document, the rest go anywhere.
        let f = if i < n { i } else { rng.below(n) };
        out[f].1.push(d);
    }
    out.into_iter()
        .map(|(p, docs)| {
            // JSON documents cannot share a file with YAML ones in JSON syntax, but JSON is
            // YAML: a JSON document is a valid YAML document of a multi-document file.
            (p, docs.join("---\n").into_bytes())
        })
        .collect()
}

fn shuffled_objects(source: &Path) -> usize {
    let original = without_locations(compile_path(source));
    let mut layouts = 0;
    for (seed, files) in [
        (1, Some(1)),
        (2, None),
        (3, None),
        (4, None),
        (5, Some(usize::MAX)),
    ] {
        let n_docs: usize = files_below(source)
            .iter()
            .map(|(_, b)| documents(&String::from_utf8_lossy(b)).len())
            .sum();
        let files = files.map(|f| f.min(n_docs.max(1)));
        let layout = shuffled_layout(source, seed, files);
        let dir = TempDir::new("shuffled");
        write_files(&dir.0, &layout);
        let got = without_locations(compile_path(&dir.0));
        assert!(
            got == original,
            "{}: layout {seed} ({} files) gives another bundle: {}",
            source.display(),
            layout.len(),
            first_difference(&original, &got)
        );
        layouts += 1;
    }
    layouts
}

#[test]
fn online_shop_shuffled_objects_same_bundle() {
    assert_eq!(shuffled_objects(&examples("online-shop")), 5);
}

#[test]
fn generated_tree_shuffled_objects_same_bundle() {
    for seed in [1, 2, 3] {
        let dir = TempDir::new("gen");
        write_files(
            &dir.0,
            &[(
                PathBuf::from("generated.yaml"),
                generated_tree(seed).into_bytes(),
            )],
        );
        shuffled_objects(&dir.0);
    }
}

#[test]
fn conformance_corpus_shuffled_objects_same_bundle() {
    for dir in [
        "onlineboutique",
        "new_online_boutique",
        "core_pods_without_host_ip",
        "test_with_named_ports",
        "semanticDiff-different-topologies-policy-b-with-ipblock",
    ] {
        shuffled_objects(&corpus_dir(dir));
    }
}

// ------------------------------------------------------------------------------------------
// A generated tree
// ------------------------------------------------------------------------------------------

/// A tree of some size with every policy kind and most peer kinds, varied by `seed`.
fn generated_tree(seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let namespaces = ["north", "south", "east", "west"];
    let apps = ["web", "api", "db", "cache", "queue"];
    let mut docs: Vec<String> = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        docs.push(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    team: t{}\n",
            i % 2
        ));
    }
    for i in 0..24 {
        let ns = namespaces[rng.below(namespaces.len())];
        let app = apps[rng.below(apps.len())];
        let port = [80, 443, 5432, 6379, 8080][rng.below(5)];
        let name = ["http", "https", "db", "redis", "alt"][rng.below(5)];
        match rng.below(3) {
            0 => docs.push(format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{i}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n        tier: t{}\n    spec:\n      containers:\n        - name: c\n          image: example/app:1\n          ports:\n            - name: {name}\n              containerPort: {port}\n",
                i % 3
            )),
            1 => docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: {ns}\n  labels:\n    app: {app}\nspec:\n  containers:\n    - name: c\n      image: example/app:1\n      ports:\n        - name: {name}\n          containerPort: {port}\n          protocol: TCP\nstatus:\n  podIP: 10.1.{}.{}\n",
                i / 8,
                10 + i
            )),
            _ => docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: rs{i}\n  namespace: {ns}\n  labels:\n    app: {app}\n  ownerReferences:\n    - apiVersion: apps/v1\n      kind: ReplicaSet\n      name: owner-{}\n      controller: true\nspec:\n  containers:\n    - name: c\n      image: example/app:1\nstatus:\n  podIP: 10.2.0.{}\n",
                i % 4,
                10 + i
            )),
        }
    }
    for i in 0..16 {
        let ns = namespaces[rng.below(namespaces.len())];
        let app = apps[rng.below(apps.len())];
        let peer_app = apps[rng.below(apps.len())];
        let port = [80, 443, 5432][rng.below(3)];
        docs.push(match rng.below(6) {
            0 => format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np{i}\n  namespace: {ns}\nspec:\n  podSelector:\n    matchLabels:\n      app: {app}\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              app: {peer_app}\n        - namespaceSelector:\n            matchLabels:\n              team: t1\n      ports:\n        - port: {port}\n        - port: http\n  egress:\n    - to:\n        - ipBlock:\n            cidr: 10.0.0.0/8\n            except:\n              - 10.2.0.0/16\n      ports:\n        - port: 1000\n          endPort: 2000\n          protocol: UDP\n"
            ),
            1 => format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np{i}\n  namespace: {ns}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n"
            ),
            2 => format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp{i}\n  namespace: {ns}\nspec:\n  endpointSelector:\n    matchLabels:\n      app: {app}\n  ingress:\n    - fromEndpoints:\n        - matchLabels:\n            app: {peer_app}\n            k8s:io.kubernetes.pod.namespace: {}\n      toPorts:\n        - ports:\n            - port: \"{port}\"\n              protocol: TCP\n          rules:\n            http:\n              - method: GET\n                path: /api/.*\n  egressDeny:\n    - toCIDRSet:\n        - cidr: 0.0.0.0/0\n          except:\n            - 10.0.0.0/8\n      toPorts:\n        - ports:\n            - port: \"25\"\n",
                namespaces[rng.below(namespaces.len())]
            ),
            3 => format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp{i}\n  namespace: {ns}\nspec:\n  endpointSelector: {{}}\n  egress:\n    - toEndpoints:\n        - matchLabels:\n            k8s:io.kubernetes.pod.namespace: kube-system\n            k8s:k8s-app: kube-dns\n      toPorts:\n        - ports:\n            - port: \"53\"\n              protocol: ANY\n          rules:\n            dns:\n              - matchPattern: \"*.example.com\"\n    - toFQDNs:\n        - matchName: api.example.com\n        - matchPattern: \"*.example.org\"\n      toPorts:\n        - ports:\n            - port: \"443\"\n"
            ),
            4 => format!(
                "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: ccnp{i}\nspecs:\n  - endpointSelector:\n      matchExpressions:\n        - key: app\n          operator: In\n          values: [{app}, {peer_app}]\n    ingress:\n      - fromEntities: [cluster, host]\n    egress:\n      - toEntities: [world]\n        icmps:\n          - fields:\n              - type: 8\n  - endpointSelector:\n      matchLabels:\n        app: {app}\n    enableDefaultDeny:\n      egress: false\n    egress:\n      - toCIDR: [192.168.0.0/16]\n"
            ),
            _ => format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp{i}\n  namespace: {ns}\nspec:\n  endpointSelector:\n    matchLabels:\n      app: {app}\n  ingressDeny:\n    - fromEndpoints:\n        - matchLabels:\n            app: {peer_app}\n      toPorts:\n        - ports:\n            - port: \"8000\"\n              endPort: 9000\n              protocol: TCP\n  ingress:\n    - {{}}\n"
            ),
        });
    }
    docs.join("---\n")
}

#[test]
fn generated_tree_is_rich() {
    let text = generated_tree(7);
    let checked = policy_lang::check_sources(vec![("g.yaml".into(), text.clone())]);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_lang::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    let compiled = compile(&checked.tree, &checked.sources, None, Options::default());
    assert!(compiled.inventory.workloads.len() >= 15);
    assert!(compiled.bundle.rules.len() >= 16);
    assert!(!compiled.bundle.l7.is_empty());
    assert!(!compiled.bundle.fqdn_selectors.is_empty());
}

// ------------------------------------------------------------------------------------------
// Objects that fold into one workload
// ------------------------------------------------------------------------------------------

/// Two controllers of different kinds may share a name in a namespace (a Deployment `web` and
/// a StatefulSet `web`). The inventory folds them into one workload `shop/web`; whichever
/// comes first in the files gives its labels, so the bundle depends on the object order.
#[test]
fn same_name_controllers_fold_independently_of_order() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector:\n    matchLabels:\n      app: a\n  template:\n    metadata:\n      labels:\n        app: a\n    spec:\n      containers:\n        - name: c\n          image: example/a:1\n          ports:\n            - name: http\n              containerPort: 80\n";
    let stateful_set = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  serviceName: web\n  selector:\n    matchLabels:\n      app: b\n  template:\n    metadata:\n      labels:\n        app: b\n    spec:\n      containers:\n        - name: c\n          image: example/b:1\n          ports:\n            - name: http\n              containerPort: 8080\n";
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: only-a\n  namespace: shop\nspec:\n  podSelector:\n    matchLabels:\n      app: a\n  ingress:\n    - ports:\n        - port: http\n";
    let bundle = |docs: &[&str]| {
        let checked = policy_lang::check_sources(vec![("t.yaml".into(), docs.join("---\n"))]);
        assert_eq!(checked.errors(), 0, "{:?}", checked.diagnostics);
        without_locations(compile(&checked.tree, &checked.sources, None, Options::default()).bundle)
    };
    let a = bundle(&[deployment, stateful_set, policy]);
    let b = bundle(&[stateful_set, deployment, policy]);
    assert!(a == b, "{}", first_difference(&a, &b));
}
