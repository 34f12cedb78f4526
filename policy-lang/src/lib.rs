//! Reads Kubernetes and Cilium policy trees with exact locations, types them and validates them.
//!
//! Architecture invariant: loading never fails as a whole. Every problem becomes a
//! [`Diagnostic`] with a span, and every good document of a file is kept even when another
//! document of the same file is broken. Nothing here knows about BPF or the datapath.

pub mod diagnostic;
pub mod formats;
pub mod source;

pub use diagnostic::{Code, Diagnostic, LocatedDiagnostic, Location, Severity};
pub use source::{FileId, LineCol, SourceFile, SourceMap, Span, Spanned};
pub mod decode;
pub mod kinds;
pub mod load;
pub mod model;
pub mod parallel;
pub mod selector;
pub mod validate;
pub mod yaml;

use std::path::PathBuf;

/// Counts for the summary line of `policyc check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub documents: usize,
    pub policies: usize,
    pub workloads: usize,
}

/// An object of a kind that nothing here reads (listed by `policyc check --verbose`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedObject {
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
    pub span: Span,
}

/// Everything `policyc check` reports about a tree.
#[derive(Debug, Default)]
pub struct Checked {
    pub sources: SourceMap,
    pub tree: model::Tree,
    /// Sorted by file, position and code.
    pub diagnostics: Vec<Diagnostic>,
    pub summary: Summary,
    pub skipped: Vec<SkippedObject>,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// Whether a path could not be read (the CLI exits 2 then).
    pub fn has_io_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.code == Code::Io)
    }
}

/// Loads, types and validates every file below `paths`.
pub fn check(paths: &[PathBuf]) -> Checked {
    finish(load::load_paths(paths))
}

/// Types and validates files already in memory (path, text); used by tests and fuzzing.
pub fn check_sources(files: Vec<(PathBuf, String)>) -> Checked {
    finish(load::load_sources(files))
}

fn finish(loaded: load::Loaded) -> Checked {
    let load::Loaded {
        sources,
        tree,
        mut diagnostics,
        skipped,
        documents,
        policies,
    } = loaded;
    let mut sources = sources;
    validate::validate(&tree, &mut sources, &mut diagnostics);
    for d in &diagnostics {
        if let Some(span) = d.span() {
            sources.load_text(span.file);
        }
    }
    diagnostics.sort_by_cached_key(|d| d.sort_key(&sources));
    Checked {
        summary: Summary {
            files: sources.len(),
            documents,
            policies,
            workloads: tree.workloads.len(),
        },
        sources,
        tree,
        diagnostics,
        skipped,
    }
}
