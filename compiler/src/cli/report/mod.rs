//! Renders a check's findings and summary in each output format (`--format`).

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use clap::ValueEnum;
use policy_lang::Checked;
use std::io::{self, Write};

/// The `--format` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Annotated source snippets and a summary line, for people.
    #[default]
    Human,
    /// One JSON object: `diagnostics` (code, severity, message, file, 1-based line and column
    /// of start and end, help) and `summary` (counts).
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=...::message`), then the summary line.
    Github,
}

/// Settings of the human renderer.
#[derive(Clone, Debug)]
pub struct Options {
    pub color: bool,
    /// Width that messages wrap at.
    pub width: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            color: false,
            width: 100,
        }
    }
}

/// Writes the findings and summary of `checked` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    checked: &Checked,
    options: &Options,
) -> io::Result<()> {
    match format {
        Format::Human => human::write(out, checked, options),
        Format::Json => json::write(out, checked),
        Format::Sarif => sarif::write(out, checked),
        Format::Github => github::write(out, checked),
    }
}

/// `checked 12 files, 30 documents: 5 policies, 20 workloads; 2 errors, 1 warning`
pub fn summary_line(checked: &Checked) -> String {
    let s = &checked.summary;
    format!(
        "checked {}, {}: {}, {}; {}, {}",
        count(s.files, "file", "files"),
        count(s.documents, "document", "documents"),
        count(s.policies, "policy", "policies"),
        count(s.workloads, "workload", "workloads"),
        count(checked.errors(), "error", "errors"),
        count(checked.warnings(), "warning", "warnings"),
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_pluralises() {
        let c = policy_lang::check_sources(vec![("a.yaml".into(), "x: 1\nx: 2\n".into())]);
        assert_eq!(
            summary_line(&c),
            "checked 1 file, 1 document: 0 policies, 0 workloads; 1 error, 1 warning"
        );
    }
}
