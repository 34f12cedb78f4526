//! `--format json`: one object with every finding and the summary counts.

use policy_lang::{Checked, LocatedDiagnostic};
use serde::Serialize;
use std::io::{self, Write};

/// The document written; field order is the wire order.
#[derive(Serialize)]
struct Report {
    diagnostics: Vec<LocatedDiagnostic>,
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    files: usize,
    documents: usize,
    policies: usize,
    workloads: usize,
    errors: usize,
    warnings: usize,
}

pub fn write(out: &mut dyn Write, checked: &Checked) -> io::Result<()> {
    let s = &checked.summary;
    let report = Report {
        diagnostics: checked
            .diagnostics
            .iter()
            .map(|d| LocatedDiagnostic::new(d, &checked.sources))
            .collect(),
        summary: Summary {
            files: s.files,
            documents: s.documents,
            policies: s.policies,
            workloads: s.workloads,
            errors: checked.errors(),
            warnings: checked.warnings(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_in_the_documented_order() {
        let c = policy_lang::check_sources(vec![(
            "a.yaml".into(),
            "apiVersion: v1\nkind: Pod\nkind: Pod\n".into(),
        )]);
        let mut buf = Vec::new();
        write(&mut buf, &c).expect("write to a Vec");
        let text = String::from_utf8(buf).expect("utf-8");
        let keys = [
            "\"code\"",
            "\"severity\"",
            "\"message\"",
            "\"file\"",
            "\"line\"",
            "\"column\"",
            "\"end_line\"",
            "\"end_column\"",
            "\"help\"",
            "\"summary\"",
            "\"files\"",
            "\"documents\"",
            "\"policies\"",
            "\"workloads\"",
            "\"errors\"",
            "\"warnings\"",
        ];
        let positions: Vec<usize> = keys.iter().filter_map(|k| text.find(k)).collect();
        assert_eq!(positions.len(), keys.len(), "{text}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }
}
