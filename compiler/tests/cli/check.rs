//! `policyc check`: one human and one JSON snapshot per diagnostic fixture, the CI formats on a
//! file with several findings, and the exit-status contract.

use crate::util::{self, policyc, relative, workspace_root};
use policy_lang::Code;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

/// Codes whose validators have not landed in policy-lang yet: their fixtures may still produce
/// no finding at all. Remove a code from here when its validator lands (and re-accept the
/// fixture's snapshots); from then on its fixture must produce exactly the expected finding.
const PENDING: &[&str] = &[];

const FIXTURES: &str = "testdata/diagnostics";
const MIXED: &str = "testdata/diagnostics/mixed/storefront.yaml";
const CLEAN: &str = "testdata/diagnostics/clean";
const MISSING: &str = "testdata/diagnostics/no-such-file.yaml";

/// The `# expect: PL301 at line 12: what` line that opens every fixture.
#[derive(Debug, PartialEq)]
struct Expectation {
    code: String,
    line: u64,
}

impl Expectation {
    fn parse(first_line: &str) -> Option<Expectation> {
        let rest = first_line.strip_prefix("# expect: ")?;
        let (code, rest) = rest.split_once(" at line ")?;
        let (line, what) = rest.split_once(": ")?;
        if what.trim().is_empty() {
            return None;
        }
        Some(Expectation {
            code: code.to_owned(),
            line: line.parse().ok()?,
        })
    }

    fn of(path: &Path) -> Expectation {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let first = text.lines().next().unwrap_or_default();
        Expectation::parse(first).unwrap_or_else(|| {
            panic!(
                "{} must open with `# expect: CODE at line N: what`, not {first:?}",
                path.display()
            )
        })
    }
}

/// (code, line) of every finding in `policyc check --format json` output.
fn findings(json: &Value) -> Vec<(String, u64)> {
    let list = json["diagnostics"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_owned(),
                d["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn each_code_fixture() {
    insta::glob!("../../../testdata/diagnostics", "*.yaml", |path| {
        let rel = relative(path);
        let expect = Expectation::of(path);
        let human = policyc(&["check", &rel]);
        let json = policyc(&["check", "--format", "json", &rel]);
        insta::assert_snapshot!("human", human.stdout);
        insta::assert_snapshot!("json", json.stdout);

        let parsed = util::json(&json.stdout);
        let errors = parsed["summary"]["errors"].as_u64().unwrap_or_default();
        let status = if errors > 0 { 1 } else { 0 };
        assert_eq!(human.code, status, "{rel}: exit status\n{}", human.stderr);
        assert_eq!(json.code, status, "{rel}: exit status of --format json");

        let found = findings(&parsed);
        if found.is_empty() && PENDING.contains(&expect.code.as_str()) {
            return;
        }
        assert_eq!(
            found,
            vec![(expect.code.clone(), expect.line)],
            "{rel}: a fixture must produce exactly the finding its first line announces"
        );
    });
}

#[test]
fn every_code_has_exactly_one_fixture() {
    let dir = workspace_root().join(FIXTURES);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    for code in Code::ALL.iter().filter(|&&c| c != Code::Io) {
        let prefix = format!("{}-", code.as_str());
        let own: Vec<&String> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
        assert_eq!(own.len(), 1, "{code}: expected one fixture, found {own:?}");
        if let Some(name) = own.first() {
            assert_eq!(
                Expectation::of(&dir.join(name)).code,
                code.as_str(),
                "{name}"
            );
        }
    }
    let known = |code: &str| Code::ALL.iter().find(|c| c.as_str() == code).copied();
    for name in &names {
        let code = name.split('-').next().unwrap_or_default();
        assert!(
            known(code).is_some_and(|c| c != Code::Io),
            "{name}: fixtures are named `<CODE>-<name>.yaml` after a code other than PL001"
        );
    }
    for code in PENDING {
        assert!(known(code).is_some(), "PENDING lists unknown code {code}");
    }
}

#[test]
fn expectation_line_parses() {
    assert_eq!(
        Expectation::parse("# expect: PL301 at line 12: prefix /33"),
        Some(Expectation {
            code: "PL301".into(),
            line: 12
        })
    );
    assert_eq!(Expectation::parse("# expect: PL301 at line x: y"), None);
    assert_eq!(Expectation::parse("# PL301"), None);
}

#[test]
fn missing_path_is_an_io_error() {
    let human = policyc(&["check", MISSING]);
    assert_eq!(human.code, 2, "{}", human.stderr);
    insta::assert_snapshot!("PL001-missing-path_human", human.stdout);
    let json = policyc(&["check", "--format", "json", MISSING]);
    assert_eq!(json.code, 2);
    insta::assert_snapshot!("PL001-missing-path_json", json.stdout);
}

#[test]
fn a_missing_path_beside_a_clean_tree_still_exits_2() {
    let run = policyc(&["check", "--format", "json", CLEAN, MISSING]);
    assert_eq!(run.code, 2);
    let parsed = util::json(&run.stdout);
    assert_eq!(findings(&parsed), vec![("PL001".to_owned(), 1)]);
    assert_eq!(parsed["diagnostics"][0]["file"], MISSING);
    assert_eq!(parsed["summary"]["files"], 1);
}

#[test]
fn a_clean_tree_exits_0_and_prints_only_the_summary() {
    let run = policyc(&["check", CLEAN]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("checked 1 file, 4 documents: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with("; 0 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1);
    assert_eq!(run.stderr, "");
}

#[test]
fn warnings_pass_unless_denied() {
    let fixture = "testdata/diagnostics/PL003-not-a-kubernetes-object.yaml";
    assert_eq!(policyc(&["check", fixture]).code, 0);
    assert_eq!(policyc(&["check", "--deny-warnings", fixture]).code, 1);
}

#[test]
fn errors_exit_1_in_every_format() {
    for format in ["human", "json", "sarif", "github"] {
        let run = policyc(&["check", "--format", format, MIXED]);
        assert_eq!(run.code, 1, "--format {format}: {}", run.stderr);
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["check"][..],
        &["check", "--format", "xml", CLEAN],
        &["check", "--color", "sometimes", CLEAN],
        &["check", "--no-such-flag", CLEAN],
        &["frobnicate"],
    ] {
        let run = policyc(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!(run.stdout, "", "{args:?}: usage errors go to stderr");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn help_documents_every_flag() {
    let run = policyc(&["check", "--help"]);
    assert_eq!(run.code, 0);
    for flag in [
        "--format",
        "human",
        "json",
        "sarif",
        "github",
        "--deny-warnings",
        "--verbose",
        "--color",
        "NO_COLOR",
        "Exit status",
    ] {
        assert!(
            run.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn sarif_on_several_findings() {
    let run = policyc(&["check", "--format", "sarif", MIXED]);
    let version = format!(r#""{}""#, env!("CARGO_PKG_VERSION").replace('.', r"\."));
    insta::with_settings!({filters => vec![(version.as_str(), r#""[version]""#)]}, {
        insta::assert_snapshot!("mixed_sarif", run.stdout);
    });
    let parsed = util::json(&run.stdout);
    assert_eq!(parsed["version"], "2.1.0");
    let results = parsed["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let json = util::json(&policyc(&["check", "--format", "json", MIXED]).stdout);
    assert_eq!(results.len(), findings(&json).len());
    for r in &results {
        let uri = &r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
        assert_eq!(uri, MIXED);
    }
}

#[test]
fn github_on_several_findings() {
    let run = policyc(&["check", "--format", "github", MIXED]);
    insta::assert_snapshot!("mixed_github", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let (summary, commands) = lines.split_last().unwrap_or((&"", &[]));
    assert!(summary.starts_with("checked 1 file"), "{summary}");
    assert!(!commands.is_empty());
    for line in commands {
        assert!(
            line.starts_with("::error file=") || line.starts_with("::warning file="),
            "{line}"
        );
    }
}

#[test]
fn github_notes_the_annotation_cap_on_stderr() {
    let dir = std::env::temp_dir().join(format!("policyc-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("many.yaml");
    // Each document repeats a key (an error) and is no object (a warning): 11 of each.
    std::fs::write(&file, "a: 1\na: 2\n---\n".repeat(11)).unwrap_or_else(|e| panic!("{e}"));
    let path = file.to_string_lossy().into_owned();
    let run = policyc(&["check", "--format", "github", &path]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("at most 10"), "{}", run.stderr);
    assert!(run.stderr.contains("--format sarif"), "{}", run.stderr);
    let few = policyc(&["check", "--format", "github", MIXED]);
    assert_eq!(few.stderr, "");
}

#[test]
fn colour_is_off_in_a_pipe_and_on_when_forced() {
    let fixture = "testdata/diagnostics/PL105-duplicate-key.yaml";
    let plain = policyc(&["check", fixture]);
    assert!(!plain.stdout.contains('\u{1b}'));
    let forced = policyc(&["check", "--color", "always", fixture]);
    assert!(forced.stdout.contains('\u{1b}'), "{}", forced.stdout);
    let global = policyc(&["--color", "always", "check", fixture]);
    assert_eq!(global.stdout, forced.stdout);
    let never = policyc(&["check", "--color", "never", fixture]);
    assert_eq!(never.stdout, plain.stdout);
}

#[test]
fn verbose_logs_skipped_objects_on_stderr_only() {
    let quiet = policyc(&["check", CLEAN]);
    let verbose = policyc(&["check", "--verbose", CLEAN]);
    assert_eq!(verbose.stdout, quiet.stdout);
    assert_eq!(verbose.code, quiet.code);
    for line in verbose.stderr.lines() {
        assert!(line.starts_with("policyc: skipped "), "{line}");
    }
    // The tree's ConfigMap, once policy-lang reports skipped objects.
    assert!(
        verbose.stderr.is_empty()
            || verbose.stderr.contains(
                "skipped ConfigMap `web-settings` (apiVersion v1) at \
                 testdata/diagnostics/clean/storefront.yaml:"
            ),
        "{}",
        verbose.stderr
    );
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_verdict() {
    let mut child = util::command(&["check", FIXTURES])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run policyc: {e}"));
    // Close the reading end before policyc writes (as `policyc check | head -0` would).
    drop(child.stdout.take());
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("policyc did not finish: {e}"));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(output.status.code(), Some(1));
}
