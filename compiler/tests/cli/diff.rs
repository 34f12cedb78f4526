//! `policyc diff`: human, JSON and Markdown snapshots of the base/head fixture, the same diff
//! read from a throwaway Git repository, and the exit statuses.

use crate::util::{json, policyc, workspace_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BASE: &str = "testdata/diff/base";
const HEAD: &str = "testdata/diff/head";

#[test]
fn fixture_in_each_format() {
    let human = policyc(&["diff", BASE, HEAD]);
    let machine = policyc(&["diff", BASE, HEAD, "--format", "json"]);
    let markdown = policyc(&["diff", BASE, HEAD, "--format", "markdown"]);
    for run in [&human, &machine, &markdown] {
        assert_eq!(run.code, 1, "differences exit 1: {}", run.stderr);
        assert_eq!(run.stderr, "");
    }
    insta::assert_snapshot!("fixture_human", human.stdout);
    insta::assert_snapshot!("fixture_json", machine.stdout);
    insta::assert_snapshot!("fixture_markdown", markdown.stdout);

    let v = json(&machine.stdout);
    assert_eq!(
        v["summary"],
        serde_json::json!({"gained": 1, "lost": 2, "workloads_added": 1, "workloads_removed": 1})
    );
    let effects = |list: &str| -> Vec<(String, String)> {
        v[list]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c["causes"].as_array().cloned().unwrap_or_default())
            .map(|c| {
                (
                    c["tree"].as_str().unwrap_or_default().to_owned(),
                    c["effect"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let pair = |t: &str, e: &str| (t.to_owned(), e.to_owned());
    assert_eq!(effects("gained"), vec![pair("head", "allow")]);
    assert_eq!(
        effects("lost"),
        vec![
            pair("head", "default_deny"),
            pair("base", "allow_gone"),
            pair("head", "deny")
        ]
    );
}

#[test]
fn no_difference_exits_0() {
    for format in ["human", "json", "markdown"] {
        let run = policyc(&["diff", BASE, BASE, "--format", format]);
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
    }
    let run = policyc(&["diff", BASE, BASE]);
    assert!(
        run.stdout.contains("no change in connectivity"),
        "{}",
        run.stdout
    );
}

#[test]
fn ports_can_be_chosen() {
    let run = policyc(&["diff", BASE, HEAD, "--ports", "5432", "--format", "json"]);
    assert_eq!(run.code, 1);
    let v = json(&run.stdout);
    assert_eq!(v["ports"], serde_json::json!(["5432/TCP"]));
    assert_eq!(v["summary"]["gained"], 0);
    assert_eq!(v["summary"]["lost"], 1);
}

/// A directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("policyc-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=policyc tests",
            "-c",
            "user.email=tests@example.com",
        ])
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(status.success(), "git {args:?}");
}

/// Replaces `repo/policies` with the files of `from`.
fn put_tree(repo: &Path, from: &str) {
    let dest = repo.join("policies");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap_or_else(|e| panic!("{e}"));
    let src = workspace_root().join(from);
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// `(from, to, port)` of each flow of a list in `diff --format json`.
fn flows(v: &Value, list: &str) -> Vec<(String, String, String)> {
    v[list]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("from"), s("to"), s("port"))
        })
        .collect()
}

#[test]
fn git_revisions_diff_like_directories() {
    let scratch = Scratch::new("git");
    let repo = scratch.0.join("repo");
    let tmp = scratch.0.join("tmp");
    std::fs::create_dir_all(&repo).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{e}"));
    git(&repo, &["init", "--quiet"]);
    std::fs::write(repo.join("README.md"), "policies of the shop\n")
        .unwrap_or_else(|e| panic!("{e}"));
    put_tree(&repo, BASE);
    git(&repo, &["add", "--all"]);
    git(&repo, &["commit", "--quiet", "-m", "base"]);
    put_tree(&repo, HEAD);
    git(&repo, &["add", "--all"]);
    git(&repo, &["commit", "--quiet", "-m", "head"]);

    let repo_arg = repo.to_string_lossy().into_owned();
    let run = crate::util::command(&[
        "diff", "--git", &repo_arg, "HEAD~1", "HEAD", "--path", "policies", "--format", "json",
    ])
    .env("TMPDIR", &tmp)
    .output()
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let from_git = json(&stdout);
    let from_dirs = json(&policyc(&["diff", BASE, HEAD, "--format", "json"]).stdout);
    assert_eq!(from_git["base"], "HEAD~1");
    assert_eq!(from_git["head"], "HEAD");
    for key in ["ports", "summary", "workloads"] {
        assert_eq!(from_git[key], from_dirs[key], "{key}");
    }
    for list in ["gained", "lost"] {
        assert_eq!(flows(&from_git, list), flows(&from_dirs, list), "{list}");
    }
    // Rules are named by their path in the repository.
    let file = &from_git["lost"][1]["causes"][0]["rule"]["file"];
    assert_eq!(file, "policies/cilium-policies.yaml");
    // The extracted revisions are gone.
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The whole repository as the tree: the same flows.
    let whole = policyc(&[
        "diff", "--git", &repo_arg, "HEAD~1", "HEAD", "--format", "json",
    ]);
    assert_eq!(whole.code, 1, "{}", whole.stderr);
    assert_eq!(
        flows(&json(&whole.stdout), "lost"),
        flows(&from_dirs, "lost")
    );

    // No difference between a revision and itself.
    assert_eq!(
        policyc(&["diff", "--git", &repo_arg, "HEAD", "HEAD"]).code,
        0
    );

    // Revisions and subdirectories that do not exist.
    for args in [
        &["diff", "--git", &repo_arg, "HEAD~1", "no-such-branch"][..],
        &["diff", "--git", &repo_arg, "--output=x", "HEAD"],
        &[
            "diff", "--git", &repo_arg, "HEAD~1", "HEAD", "--path", "nowhere",
        ],
    ] {
        let run = policyc(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn errors_exit_2() {
    let missing = policyc(&["diff", BASE, "testdata/diff/nowhere"]);
    assert_eq!(missing.code, 2);
    let broken = policyc(&[
        "diff",
        BASE,
        "testdata/diagnostics/PL105-duplicate-key.yaml",
    ]);
    assert_eq!(broken.code, 2);
    assert!(
        broken.stderr.contains("the head tree has"),
        "{}",
        broken.stderr
    );
    assert_eq!(policyc(&["diff", BASE]).code, 2);
    assert_eq!(policyc(&["diff", BASE, HEAD, "--path", "x"]).code, 2);
}

#[test]
fn help_has_examples_and_exit_statuses() {
    let run = policyc(&["diff", "--help"]);
    assert_eq!(run.code, 0);
    for needle in [
        "--git",
        "--path",
        "--ports",
        "markdown",
        "Examples:",
        "Exit status",
    ] {
        assert!(run.stdout.contains(needle), "--help lacks {needle}");
    }
}
