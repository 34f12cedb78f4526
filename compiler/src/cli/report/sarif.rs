//! `--format sarif`: a SARIF 2.1.0 log as GitHub code scanning accepts it.
//!
//! One run; the driver lists every rule of [`Code::ALL`] so that `ruleIndex` is stable across
//! runs, and results carry 1-based regions with columns in Unicode code points.

use policy_lang::{Checked, Code, Diagnostic, LocatedDiagnostic, Location, Severity};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Component, Path};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

#[derive(Serialize)]
struct Log {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    tool: Tool,
    column_kind: &'static str,
    results: Vec<ResultObject>,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    semantic_version: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: &'static str,
    name: &'static str,
    short_description: Text,
    full_description: Text,
    help: Text,
    default_configuration: Configuration,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultObject {
    rule_id: &'static str,
    rule_index: usize,
    level: &'static str,
    message: Text,
    locations: Vec<ResultLocation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultLocation {
    physical_location: PhysicalLocation,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_column: Option<u32>,
}

pub fn write(out: &mut dyn Write, checked: &Checked) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &log(checked))?;
    writeln!(out)
}

fn log(checked: &Checked) -> Log {
    let version = env!("CARGO_PKG_VERSION");
    Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "policyc",
                    version,
                    semantic_version: version,
                    rules: Code::ALL.iter().map(|&c| rule(c)).collect(),
                },
            },
            column_kind: "unicodeCodePoints",
            results: checked
                .diagnostics
                .iter()
                .map(|d| result(d, checked))
                .collect(),
        }],
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn rule(code: Code) -> Rule {
    let description = code.description();
    Rule {
        id: code.as_str(),
        name: code.name(),
        short_description: Text {
            text: first_sentence(description).to_owned(),
        },
        full_description: Text {
            text: description.to_owned(),
        },
        help: Text {
            text: format!("{} ({}): {description}", code.as_str(), code.name()),
        },
        default_configuration: Configuration {
            level: level(code.severity()),
        },
    }
}

fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(i) => &text[..=i],
        None => text,
    }
}

fn result(d: &Diagnostic, checked: &Checked) -> ResultObject {
    let located = LocatedDiagnostic::new(d, &checked.sources);
    let mut text = d.message.clone();
    if let Some(help) = d.help.as_deref().filter(|h| !h.is_empty()) {
        text.push_str(&format!("\nhelp: {help}"));
    }
    let (path, region) = match &d.location {
        Location::Span(span) => (
            checked.sources.path(span.file),
            Region {
                start_line: located.line,
                start_column: Some(located.column),
                end_line: Some(located.end_line),
                end_column: Some(located.end_column),
            },
        ),
        // I/O findings are about a whole path. Code scanning wants a region on every result
        // (at least `startLine`), so they point at the first line.
        Location::Path(path) => (
            path.as_path(),
            Region {
                start_line: 1,
                start_column: None,
                end_line: None,
                end_column: None,
            },
        ),
    };
    ResultObject {
        rule_id: d.code.as_str(),
        rule_index: Code::ALL.iter().position(|&c| c == d.code).unwrap_or(0),
        level: level(d.severity),
        message: Text { text },
        locations: vec![ResultLocation {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation { uri: uri(path) },
                region,
            },
        }],
    }
}

/// A path as a URI reference: relative paths stay relative (code scanning resolves them against
/// the repository root), absolute ones become `file://` URIs. Separators become `/`, `.`
/// components go, and every byte outside RFC 3986's unreserved set is percent-encoded.
pub fn uri(path: &Path) -> String {
    let mut segments: Vec<String> = Vec::new();
    let mut absolute = false;
    for component in path.components() {
        match component {
            Component::Prefix(p) => segments.push(encode(&p.as_os_str().to_string_lossy())),
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => segments.push("..".to_owned()),
            Component::Normal(s) => segments.push(encode(&s.to_string_lossy())),
        }
    }
    let joined = segments.join("/");
    if absolute {
        format!("file:///{joined}")
    } else {
        joined
    }
}

fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn sarif(files: Vec<(&str, &str)>) -> Value {
        let c = policy_lang::check_sources(
            files
                .into_iter()
                .map(|(p, t)| (p.into(), t.to_owned()))
                .collect(),
        );
        let mut buf = Vec::new();
        write(&mut buf, &c).expect("write to a Vec");
        serde_json::from_slice(&buf).expect("SARIF output is JSON")
    }

    fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("<missing>")
    }

    fn u64_at(v: &Value, pointer: &str) -> u64 {
        v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
    }

    #[test]
    fn log_has_the_required_top_level_properties() {
        let v = sarif(vec![(
            "a.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n",
        )]);
        assert_eq!(str_at(&v, "/version"), "2.1.0");
        assert!(str_at(&v, "/$schema").contains("sarif-2.1.0"));
        assert_eq!(
            v.pointer("/runs").and_then(Value::as_array).map(Vec::len),
            Some(1)
        );
        assert_eq!(str_at(&v, "/runs/0/tool/driver/name"), "policyc");
        assert_eq!(
            str_at(&v, "/runs/0/tool/driver/version"),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(str_at(&v, "/runs/0/columnKind"), "unicodeCodePoints");
        assert_eq!(
            v.pointer("/runs/0/results")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(0)
        );
    }

    #[test]
    fn every_code_is_a_rule_in_code_order() {
        let v = sarif(vec![]);
        let rules = v
            .pointer("/runs/0/tool/driver/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert_eq!(rules.len(), Code::ALL.len());
        for (rule, code) in rules.iter().zip(Code::ALL) {
            assert_eq!(str_at(rule, "/id"), code.as_str());
            assert_eq!(str_at(rule, "/name"), code.name());
            assert_eq!(str_at(rule, "/fullDescription/text"), code.description());
            assert!(!str_at(rule, "/shortDescription/text").is_empty());
            assert!(str_at(rule, "/help/text").contains(code.description()));
            assert_eq!(
                str_at(rule, "/defaultConfiguration/level"),
                code.severity().as_str()
            );
        }
    }

    #[test]
    fn results_point_at_rules_and_regions() {
        let v = sarif(vec![(
            "./team a/policy.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n",
        )]);
        let result = v.pointer("/runs/0/results/0").cloned().unwrap_or_default();
        assert_eq!(str_at(&result, "/ruleId"), "PL105");
        let index = u64_at(&result, "/ruleIndex") as usize;
        assert_eq!(
            str_at(&v, &format!("/runs/0/tool/driver/rules/{index}/id")),
            "PL105"
        );
        assert_eq!(str_at(&result, "/level"), "error");
        assert!(str_at(&result, "/message/text").starts_with("duplicate key `name`"));
        let location = "/locations/0/physicalLocation";
        assert_eq!(
            str_at(&result, &format!("{location}/artifactLocation/uri")),
            "team%20a/policy.yaml"
        );
        let region = |k: &str| u64_at(&result, &format!("{location}/region/{k}"));
        assert_eq!((region("startLine"), region("startColumn")), (5, 3));
        assert_eq!((region("endLine"), region("endColumn")), (5, 7));
    }

    #[test]
    fn io_findings_point_at_the_first_line_of_the_path() {
        let c = policy_lang::check(&["missing dir".into()]);
        let mut buf = Vec::new();
        write(&mut buf, &c).expect("write to a Vec");
        let v: Value = serde_json::from_slice(&buf).expect("SARIF output is JSON");
        let location = "/runs/0/results/0/locations/0/physicalLocation";
        assert_eq!(str_at(&v, "/runs/0/results/0/ruleId"), "PL001");
        assert_eq!(
            str_at(&v, &format!("{location}/artifactLocation/uri")),
            "missing%20dir"
        );
        assert_eq!(
            v.pointer(&format!("{location}/region")),
            Some(&serde_json::json!({"startLine": 1}))
        );
    }

    #[test]
    fn uris_are_relative_with_forward_slashes_and_encoded() {
        assert_eq!(uri(Path::new("deploy/netpol.yaml")), "deploy/netpol.yaml");
        assert_eq!(uri(Path::new("./deploy//a b.yaml")), "deploy/a%20b.yaml");
        assert_eq!(uri(Path::new("../x/100%#.yaml")), "../x/100%25%23.yaml");
        assert_eq!(
            uri(Path::new("/srv/repo/ä.yaml")),
            "file:///srv/repo/%C3%A4.yaml"
        );
    }

    #[test]
    fn first_sentence_stops_at_the_first_full_stop() {
        assert_eq!(first_sentence("One. Two."), "One.");
        assert_eq!(first_sentence("Only one."), "Only one.");
    }
}
