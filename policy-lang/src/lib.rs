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
pub mod load;
pub mod model;
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
    let mut loaded = load::Loaded::default();
    for (path, text) in files {
        load::add_text(&mut loaded, path, text);
    }
    finish(loaded)
}

fn finish(loaded: load::Loaded) -> Checked {
    let mut checked = Checked {
        summary: Summary {
            files: loaded.sources.len(),
            documents: loaded.documents,
            ..Default::default()
        },
        diagnostics: loaded.diagnostics,
        ..Default::default()
    };
    let mut cx = decode::Cx {
        diags: &mut checked.diagnostics,
    };
    let mut tree = model::Tree::default();
    for raw in &loaded.objects {
        match kinds::decode(&mut cx, raw) {
            kinds::Decoded::Policy(p) => tree.policies.push(p),
            kinds::Decoded::Namespace(n) => tree.namespaces.push(n),
            kinds::Decoded::Workload(w) => tree.workloads.push(w),
            kinds::Decoded::Service(s) => tree.services.push(s),
            kinds::Decoded::EndpointSlice(e) => tree.endpoint_slices.push(e),
            kinds::Decoded::Skipped => checked.skipped.push(SkippedObject {
                api_version: raw.api_version.clone(),
                kind: raw.kind.clone(),
                name: raw
                    .node
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
                span: decode::head(&raw.node),
            }),
            kinds::Decoded::Broken => {}
        }
    }
    checked.summary.policies = loaded
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o.kind.as_str(),
                "NetworkPolicy" | "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy"
            )
        })
        .count();
    checked.summary.workloads = tree.workloads.len();
    validate::validate(&tree, &loaded.sources, &mut checked.diagnostics);
    checked.tree = tree;
    checked.sources = loaded.sources;
    let sources = &checked.sources;
    checked
        .diagnostics
        .sort_by_cached_key(|d| d.sort_key(sources));
    checked
}
pub mod decode;
pub mod kinds;
pub mod selector;
pub mod validate;
