//! `policyc check`: loads and validates policy trees and reports every finding.

use super::report::{self, Format};
use super::{emit, log, ColorChoice, EXIT_ERROR, EXIT_FAILED, EXIT_OK};
use clap::Args;
use policy_lang::{Checked, SkippedObject, SourceMap};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Results go to stdout, logs to stderr.

Exit status:
  0  no failing finding (warnings pass unless --deny-warnings is given)
  1  at least one failing finding
  2  usage error, or a path that cannot be read (PL001)";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CheckArgs {
    /// Files and directories to check.
    ///
    /// Directories are walked recursively for `*.yaml`, `*.yml` and `*.json`, skipping hidden
    /// entries; a file named explicitly is read whatever its extension. Reports name files by
    /// the path given here, so give paths relative to the repository root for CI.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Output format for the findings and the summary.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Human)]
    pub format: Format,

    /// Fail (exit 1) on warnings too, not only on errors.
    #[arg(long)]
    pub deny_warnings: bool,

    /// Also list on stderr every object skipped because nothing reads its kind.
    ///
    /// One line per object: kind, apiVersion, name and file:line.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs `policyc check` and returns the exit status.
pub fn run(args: &CheckArgs, color: ColorChoice) -> u8 {
    let checked = policy_lang::check(&args.paths);
    if args.verbose {
        for skipped in &checked.skipped {
            log(format_args!("{}", skipped_line(skipped, &checked.sources)));
        }
    }
    let verdict = verdict(&checked, args.deny_warnings);
    let options = report::Options {
        color: color.for_stdout(),
        ..report::Options::default()
    };
    let status = emit(verdict, |out| {
        report::write(out, args.format, &checked, &options)
    });
    if args.format == Format::Github {
        if let Some(note) = report::github::annotation_cap_note(&checked) {
            log(format_args!("{note}"));
        }
    }
    // The process ends right after: freeing a large tree object by object only costs time.
    std::mem::forget(checked);
    status
}

/// The exit status that a check's findings call for.
pub fn verdict(checked: &Checked, deny_warnings: bool) -> u8 {
    if checked.has_io_errors() {
        EXIT_ERROR
    } else if checked.errors() > 0 || (deny_warnings && checked.warnings() > 0) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// The `--verbose` line for one skipped object.
fn skipped_line(skipped: &SkippedObject, sources: &SourceMap) -> String {
    let name = skipped.name.as_deref().unwrap_or("(unnamed)");
    let at = match sources.locate(skipped.span) {
        Some((file, start, _)) => format!("{}:{}", file.path.display(), start.line),
        None => "(unknown location)".to_owned(),
    };
    format!(
        "skipped {} `{}` (apiVersion {}) at {}",
        skipped.kind, name, skipped.api_version, at
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_lang::Span;

    fn checked(text: &str) -> Checked {
        policy_lang::check_sources(vec![("tree/a.yaml".into(), text.to_owned())])
    }

    #[test]
    fn skipped_line_names_kind_api_version_name_and_line() {
        let c = checked("a: 1\n---\napiVersion: v1\nkind: ConfigMap\n");
        let file = c
            .sources
            .files()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_default();
        let skipped = SkippedObject {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: Some("settings".into()),
            span: Span::new(file, 9, 20),
        };
        assert_eq!(
            skipped_line(&skipped, &c.sources),
            "skipped ConfigMap `settings` (apiVersion v1) at tree/a.yaml:3"
        );
    }

    #[test]
    fn warnings_fail_only_when_denied() {
        // A document that is not an object is a warning (PL003).
        let c = checked("replicas: 2\n");
        assert_eq!(c.warnings(), 1);
        assert_eq!(verdict(&c, false), EXIT_OK);
        assert_eq!(verdict(&c, true), EXIT_FAILED);
    }

    #[test]
    fn errors_fail_and_io_errors_win() {
        let c = checked("a: 1\na: 2\n");
        assert_eq!(verdict(&c, false), EXIT_FAILED);
        let missing = policy_lang::check(&["does/not/exist.yaml".into()]);
        assert_eq!(verdict(&missing, false), EXIT_ERROR);
    }
}
