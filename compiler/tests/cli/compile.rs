//! `policyc compile` and `policyc inspect`: a compiled bundle reads back, the listing of the
//! shop fixture, and the exit statuses.

use crate::util::{json, policyc, workspace_root};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

const TREE: &str = "testdata/trace/shop";

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("policyc-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn compile_then_inspect_round_trips() {
    let scratch = Scratch::new("roundtrip");
    let file = scratch.path("shop.bundle");
    let run = policyc(&["compile", TREE, "-o", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with("policyc: compiled 4 endpoints, "),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // Writing to stdout gives the same bytes.
    let stdout = policyc(&["compile", TREE, "-o", "-"]);
    let written = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stdout.stdout, written);

    let inspect = policyc(&["inspect", &file, "--format", "json"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let v = json(&inspect.stdout);
    let bundle = json(&written);
    assert_eq!(v["version"], bundle["version"]);
    assert_eq!(
        v["endpoints"].as_array().map(Vec::len),
        bundle["endpoints"].as_array().map(Vec::len)
    );
    assert_eq!(
        v["identities"].as_array().map(Vec::len),
        bundle["identities"].as_array().map(Vec::len)
    );
    assert_eq!(
        v["ipcache"],
        serde_json::json!([
            {"identity": 16777216, "name": "cidr 0.0.0.0/0", "prefix": "0.0.0.0/0"},
            {"identity": 16777217, "name": "cidr 10.0.0.0/8", "prefix": "10.0.0.0/8"},
            {"identity": 16777218, "name": "cidr 169.254.169.254/32", "prefix": "169.254.169.254/32"},
        ])
    );
    // Every entry names its rules with a real line.
    for e in v["endpoints"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        for entry in e["entries"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            for rule in entry["rules"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
            {
                assert!(rule["line"].as_u64().unwrap_or(0) > 1, "{rule}");
                assert!(
                    rule["file"].as_str().unwrap_or("").starts_with(TREE),
                    "{rule}"
                );
            }
        }
    }

    let human = policyc(&["inspect", &file]);
    assert_eq!(human.code, 0);
    insta::assert_snapshot!("inspect_shop_human", human.stdout);
    let one = policyc(&[
        "inspect",
        &file,
        "--endpoint",
        "shop/api",
        "--format",
        "json",
    ]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    insta::assert_snapshot!("inspect_shop_api_json", one.stdout);
    let one_human = policyc(&["inspect", &file, "--endpoint", "shop/web"]);
    insta::assert_snapshot!("inspect_shop_web_human", one_human.stdout);
}

/// A FIFO (as `/dev/null`, a device) is written in place, never renamed over.
#[test]
fn a_fifo_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let scratch = Scratch::new("fifo");
    let fifo = scratch.path("out.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {fifo}");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap_or_else(|e| panic!("{e}")))
    };
    let run = policyc(&["compile", TREE, "-o", &fifo]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let read = reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    assert_eq!(
        read,
        policyc(&["compile", TREE, "-o", "-"]).stdout.as_bytes()
    );
    let kind = std::fs::symlink_metadata(&fifo).map(|m| m.file_type());
    assert!(
        kind.is_ok_and(|k| k.is_fifo()),
        "{fifo} is no longer a FIFO"
    );
}

#[test]
fn inspect_reads_stdin() {
    let bundle = policyc(&["compile", TREE, "-o", "-"]).stdout;
    let mut child = crate::util::command(&["inspect", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(bundle.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["endpoints"].as_array().map(Vec::len), Some(4));
}

#[test]
fn exit_statuses() {
    let scratch = Scratch::new("status");
    // A tree with errors: its findings on stderr, no bundle written.
    let out = scratch.path("broken.bundle");
    let broken = policyc(&[
        "compile",
        "testdata/diagnostics/PL105-duplicate-key.yaml",
        "-o",
        &out,
    ]);
    assert_eq!(broken.code, 2);
    assert!(broken.stderr.contains("PL105"), "{}", broken.stderr);
    assert!(!std::path::Path::new(&out).exists());
    // An unwritable target.
    let nowhere = scratch.path("no/such/dir/x.bundle");
    assert_eq!(policyc(&["compile", TREE, "-o", &nowhere]).code, 2);
    // A missing path, a missing -o.
    assert_eq!(
        policyc(&["compile", "testdata/no-such-dir", "-o", &out]).code,
        2
    );
    assert_eq!(policyc(&["compile", TREE]).code, 2);

    // inspect: not a bundle, a missing file, an unknown endpoint, another version.
    let yaml = workspace_root().join(TREE).join("workloads.yaml");
    let yaml = yaml.to_string_lossy().into_owned();
    let not_bundle = policyc(&["inspect", &yaml]);
    assert_eq!(not_bundle.code, 2);
    assert!(
        not_bundle.stderr.contains("not a bundle"),
        "{}",
        not_bundle.stderr
    );
    assert_eq!(policyc(&["inspect", &scratch.path("missing")]).code, 2);
    let good = scratch.path("good.bundle");
    assert_eq!(policyc(&["compile", TREE, "-o", &good]).code, 0);
    let unknown = policyc(&["inspect", &good, "--endpoint", "shop/nope"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("shop/nope"));
    let text = std::fs::read_to_string(&good).unwrap_or_default();
    let future = scratch.path("future.bundle");
    std::fs::write(&future, text.replacen("\"version\":1", "\"version\":99", 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let old = policyc(&["inspect", &future]);
    assert_eq!(old.code, 2);
    assert!(old.stderr.contains("version 99"), "{}", old.stderr);
}

#[test]
fn warnings_do_not_stop_a_compile_but_are_mentioned() {
    let run = policyc(&[
        "compile",
        "testdata/diagnostics/PL603-egress-to-world.yaml",
        "-o",
        "-",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("(1 warning in the tree"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.starts_with("{\"version\":1,"), "{}", run.stdout);
}
