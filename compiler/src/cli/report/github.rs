//! `--format github`: GitHub Actions workflow commands, one annotation per finding.

use super::summary_line;
use policy_lang::{Checked, Diagnostic, LocatedDiagnostic, Location, Severity};
use std::io::{self, Write};

/// How many annotations of each kind GitHub shows for one step; the rest are dropped.
pub const ANNOTATION_CAP: usize = 10;

pub fn write(out: &mut dyn Write, checked: &Checked) -> io::Result<()> {
    for d in &checked.diagnostics {
        writeln!(out, "{}", command(d, checked))?;
    }
    writeln!(out, "{}", summary_line(checked))
}

/// The workflow command for one finding, for example
/// `::error file=a.yaml,line=3,col=5,endLine=3,endColumn=9,title=PL105 duplicate-key::...`.
fn command(d: &Diagnostic, checked: &Checked) -> String {
    let located = LocatedDiagnostic::new(d, &checked.sources);
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut props = vec![format!("file={}", escape_property(&located.file))];
    // A finding about a whole path (I/O) has no position.
    if let Location::Span(_) = d.location {
        props.push(format!("line={}", located.line));
        props.push(format!("col={}", located.column));
        props.push(format!("endLine={}", located.end_line));
        props.push(format!("endColumn={}", located.end_column));
    }
    let title = format!("{} {}", d.code.as_str(), d.code.name());
    props.push(format!("title={}", escape_property(&title)));
    let mut message = d.message.clone();
    if let Some(help) = d.help.as_deref().filter(|h| !h.is_empty()) {
        message.push_str(&format!(" (help: {help})"));
    }
    format!("::{kind} {}::{}", props.join(","), escape_data(&message))
}

/// The note for stderr when GitHub would drop some annotations.
pub fn annotation_cap_note(checked: &Checked) -> Option<String> {
    if checked.errors() <= ANNOTATION_CAP && checked.warnings() <= ANNOTATION_CAP {
        return None;
    }
    Some(format!(
        "note: {} errors and {} warnings, but GitHub shows at most {ANNOTATION_CAP} error and \
         {ANNOTATION_CAP} warning annotations per step; upload `policyc check --format sarif` \
         to code scanning to see every finding",
        checked.errors(),
        checked.warnings()
    ))
}

/// Escapes a command's message (after `::`).
pub fn escape_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a property value (`file=`, `title=`): like data, plus `:` and `,`.
pub fn escape_property(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' => out.push_str("%3A"),
            ',' => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_escapes_percent_cr_and_lf_only() {
        assert_eq!(escape_data("100% sure"), "100%25 sure");
        assert_eq!(escape_data("a\r\nb"), "a%0D%0Ab");
        assert_eq!(escape_data("key: a, b"), "key: a, b");
        // Escaping `%` first keeps an existing escape from being read back as one.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn properties_also_escape_colon_and_comma() {
        assert_eq!(escape_property("C:\\x,y.yaml"), "C%3A\\x%2Cy.yaml");
        assert_eq!(escape_property("a%b\nc"), "a%25b%0Ac");
        assert_eq!(
            escape_property("PL101 unknown-field"),
            "PL101 unknown-field"
        );
    }

    fn checked(path: &str, text: &str) -> Checked {
        policy_lang::check_sources(vec![(path.into(), text.to_owned())])
    }

    #[test]
    fn one_command_per_finding_with_position_and_title() {
        let c = checked(
            "dir/a,b.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n",
        );
        let mut buf = Vec::new();
        write(&mut buf, &c).expect("write to a Vec");
        let text = String::from_utf8(buf).expect("utf-8");
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.starts_with(
                "::error file=dir/a%2Cb.yaml,line=5,col=3,endLine=5,endColumn=7,\
                 title=PL105 duplicate-key::duplicate key `name`"
            ),
            "{first}"
        );
        assert_eq!(
            lines.next(),
            Some("checked 1 file, 1 document: 0 policies, 1 workload; 1 error, 0 warnings")
        );
    }

    #[test]
    fn path_findings_have_no_position() {
        let c = policy_lang::check(&["no/such/dir".into()]);
        let line = c
            .diagnostics
            .first()
            .map(|d| command(d, &c))
            .unwrap_or_default();
        assert!(
            line.starts_with("::error file=no/such/dir,title=PL001 io-error::cannot read"),
            "{line}"
        );
    }

    #[test]
    fn warnings_use_the_warning_command() {
        let c = checked("a.yaml", "replicas: 2\n");
        let line = c
            .diagnostics
            .first()
            .map(|d| command(d, &c))
            .unwrap_or_default();
        assert!(line.starts_with("::warning file=a.yaml,line=1,"), "{line}");
    }

    #[test]
    fn cap_note_only_past_ten_of_a_kind() {
        let ten = "x: 1\n---\n".repeat(10);
        assert_eq!(annotation_cap_note(&checked("a.yaml", &ten)), None);
        let eleven = "x: 1\n---\n".repeat(11);
        let note = annotation_cap_note(&checked("a.yaml", &eleven)).unwrap_or_default();
        assert!(note.contains("at most 10"), "{note}");
        assert!(note.contains("--format sarif"), "{note}");
    }
}
