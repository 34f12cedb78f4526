//! Walks the paths a user gives, reads every YAML or JSON file, and splits them into objects.

use crate::decode::Cx;
use crate::diagnostic::{Code, Diagnostic};
use crate::kinds::{self, Decoded};
use crate::model::Tree;
use crate::source::{FileId, SourceFile, SourceMap, Span};
use crate::yaml::{self, Node};
use crate::SkippedObject;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// A Kubernetes object found in a document, before typing.
#[derive(Debug)]
pub struct RawObject<'a> {
    pub api_version: String,
    pub kind: String,
    pub node: Node<'a>,
    /// Items of a `List` carry no kind of their own when the list is typed (`PodList`).
    pub kind_implied: bool,
}

/// What loading found: the sources, the typed objects and the findings.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: SourceMap,
    pub tree: Tree,
    pub diagnostics: Vec<Diagnostic>,
    pub skipped: Vec<SkippedObject>,
    pub documents: usize,
    /// Policy objects seen, including those too broken to type.
    pub policies: usize,
}

/// One file's share of the result, before files are merged in order.
#[derive(Default)]
struct FileOutcome {
    tree: Tree,
    diagnostics: Vec<Diagnostic>,
    skipped: Vec<SkippedObject>,
    documents: usize,
    policies: usize,
}

fn is_policy_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every file below the given paths, in a stable order; missing paths become findings.
pub fn collect_files(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => diagnostics.push(Diagnostic::at_path(
                Code::Io,
                path.clone(),
                format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
            )),
            Ok(m) if m.is_dir() => walk_dir(path, &mut files, diagnostics),
            // A file named explicitly is read whatever its extension.
            Ok(_) => files.push(path.clone()),
        }
    }
    files
}

fn walk_dir(dir: &Path, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diagnostics.push(Diagnostic::at_path(
                Code::Io,
                dir.to_path_buf(),
                format!(
                    "cannot read directory `{}`: {}",
                    dir.display(),
                    io_reason(&e)
                ),
            ));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    children.sort();
    for child in children {
        let name = child.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Hidden entries are VCS metadata or git-sync's staging directories.
        if name.starts_with('.') {
            continue;
        }
        match std::fs::metadata(&child) {
            Ok(m) if m.is_dir() => walk_dir(&child, files, diagnostics),
            Ok(_) if is_policy_file(&child) => files.push(child),
            Ok(_) => {}
            Err(e) => diagnostics.push(Diagnostic::at_path(
                Code::Io,
                child.clone(),
                format!("cannot read `{}`: {}", child.display(), io_reason(&e)),
            )),
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads, parses and types every file below `paths`, on every core: the YAML tree of a file
/// lives only while its objects are typed, so memory holds text and typed objects, never trees.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut diagnostics = Vec::new();
    let files = collect_files(paths, &mut diagnostics);
    // Each worker reads every file into the same buffer: a fresh allocation per file would
    // take fresh pages from the allocator, which the kernel zeroes first.
    let read = |path: &PathBuf, buf: &mut Vec<u8>| -> Result<(), Diagnostic> {
        buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, buf))
            .map(|_| ())
            .map_err(|e| {
                Diagnostic::at_path(
                    Code::Io,
                    path.clone(),
                    format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
                )
            })
    };
    let results = crate::parallel::map_with(&files, Vec::new, |buf, id, path| {
        if let Err(d) = read(path, buf) {
            return (
                None,
                FileOutcome {
                    diagnostics: vec![d],
                    ..Default::default()
                },
            );
        }
        let (text, bad_utf8) = match std::str::from_utf8(buf) {
            Ok(text) => (Cow::Borrowed(text), None),
            Err(e) => (String::from_utf8_lossy(buf), Some(e.valid_up_to())),
        };
        let id = FileId(id as u32);
        let line_starts = crate::source::line_starts(&text);
        let mut outcome = process_text_lines(id, &text, &line_starts);
        if let Some(at) = bad_utf8 {
            // The first invalid byte became U+FFFD (3 bytes) at `at`.
            outcome.diagnostics.push(
                Diagnostic::new(
                    Code::YamlSyntax,
                    Span::new(id, at, at + char_len(&text, at)),
                    "the file is not valid UTF-8",
                )
                .with_help("save the file as UTF-8; invalid bytes were read as U+FFFD"),
            );
        }
        // The text of an ASCII file without findings is not kept: positions come from its
        // line starts, and `finish` reads it again if a later check reports on it.
        let file = if outcome.diagnostics.is_empty() && text.is_ascii() {
            SourceFile::unloaded_with_line_starts(path.clone(), line_starts)
        } else {
            SourceFile::with_line_starts(path.clone(), text.into_owned(), line_starts)
        };
        (Some(file), outcome)
    });
    let mut loaded = Loaded {
        diagnostics,
        ..Default::default()
    };
    // The merged vectors get their final sizes at once: growing them would copy the tree
    // several times over, on one core.
    let total = |count: fn(&FileOutcome) -> usize| -> usize {
        results.iter().map(|(_, outcome)| count(outcome)).sum()
    };
    let tree = &mut loaded.tree;
    tree.policies
        .reserve_exact(total(|o| o.tree.policies.len()));
    tree.namespaces
        .reserve_exact(total(|o| o.tree.namespaces.len()));
    tree.workloads
        .reserve_exact(total(|o| o.tree.workloads.len()));
    tree.services
        .reserve_exact(total(|o| o.tree.services.len()));
    tree.endpoint_slices
        .reserve_exact(total(|o| o.tree.endpoint_slices.len()));
    loaded.diagnostics.reserve(total(|o| o.diagnostics.len()));
    loaded.skipped.reserve_exact(total(|o| o.skipped.len()));
    for (path, (file, outcome)) in files.into_iter().zip(results) {
        // Every file gets its id, read or not, so ids match positions.
        loaded
            .sources
            .push(file.unwrap_or_else(|| SourceFile::new(path, String::new())));
        merge(&mut loaded, outcome);
    }
    loaded
}

/// Types files already in memory.
pub fn load_sources(files: Vec<(PathBuf, String)>) -> Loaded {
    let mut loaded = Loaded::default();
    for (id, (path, text)) in files.into_iter().enumerate() {
        let outcome = process_text(FileId(id as u32), &text);
        loaded.sources.add(path, text);
        merge(&mut loaded, outcome);
    }
    loaded
}

fn merge(loaded: &mut Loaded, outcome: FileOutcome) {
    let FileOutcome {
        tree,
        mut diagnostics,
        mut skipped,
        documents,
        policies,
    } = outcome;
    loaded.tree.policies.extend(tree.policies);
    loaded.tree.namespaces.extend(tree.namespaces);
    loaded.tree.workloads.extend(tree.workloads);
    loaded.tree.services.extend(tree.services);
    loaded.tree.endpoint_slices.extend(tree.endpoint_slices);
    loaded.diagnostics.append(&mut diagnostics);
    loaded.skipped.append(&mut skipped);
    loaded.documents += documents;
    loaded.policies += policies;
}

/// Parses one file's text and types its objects.
fn process_text(id: FileId, text: &str) -> FileOutcome {
    process_text_lines(id, text, &crate::source::line_starts(text))
}

/// [`process_text`] with the text's line starts known.
fn process_text_lines(id: FileId, text: &str, line_starts: &[u32]) -> FileOutcome {
    let mut out = FileOutcome::default();
    let parsed = yaml::parse_file_lines(id, text, line_starts);
    out.documents = parsed.document_count;
    out.diagnostics = parsed.diagnostics;
    let mut objects = Vec::new();
    for doc in parsed.documents {
        let Some(root) = doc.root else { continue };
        split_objects(text, root, &mut objects, &mut out.diagnostics, doc.span);
    }
    let mut cx = Cx {
        diags: &mut out.diagnostics,
    };
    for raw in &objects {
        if matches!(
            raw.kind.as_str(),
            "NetworkPolicy" | "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy"
        ) {
            out.policies += 1;
        }
        match kinds::decode(&mut cx, raw) {
            Decoded::Policy(p) => out.tree.policies.push(p),
            Decoded::Namespace(n) => out.tree.namespaces.push(n),
            Decoded::Workload(w) => out.tree.workloads.push(w),
            Decoded::Service(s) => out.tree.services.push(s),
            Decoded::EndpointSlice(e) => out.tree.endpoint_slices.push(e),
            Decoded::Skipped => out.skipped.push(SkippedObject {
                api_version: raw.api_version.clone(),
                kind: raw.kind.clone(),
                name: raw
                    .node
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
                span: crate::decode::head(&raw.node),
            }),
            Decoded::Broken => {}
        }
    }
    out
}

/// Turns a document's root into objects, unpacking `List` and `<Kind>List`.
fn split_objects<'a>(
    text: &str,
    root: Node<'a>,
    out: &mut Vec<RawObject<'a>>,
    diags: &mut Vec<Diagnostic>,
    doc_span: Span,
) {
    let kind = root.get("kind").and_then(|k| k.as_str()).map(str::to_owned);
    let api_version = root
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .map(str::to_owned);
    let (Some(kind), Some(api_version)) = (kind, api_version) else {
        let at = if root.as_map().is_some() {
            root.span
        } else {
            doc_span
        };
        let at = first_line(text, at);
        diags.push(
            Diagnostic::new(
                Code::NotAnObject,
                at,
                "document is not a Kubernetes object (no `apiVersion` and `kind`); skipped",
            )
            .with_help("add `apiVersion` and `kind`, or move the file out of the policy tree"),
        );
        return;
    };
    if let Some(item_kind) = kind.strip_suffix("List") {
        if let Some(items) = root.get("items").and_then(|i| i.as_seq()) {
            for item in items {
                let own_kind = item.get("kind").and_then(|k| k.as_str());
                let own_api = item.get("apiVersion").and_then(|k| k.as_str());
                let (kind, api, implied) = match own_kind {
                    Some(k) => (
                        k.to_owned(),
                        own_api.unwrap_or(&api_version).to_owned(),
                        false,
                    ),
                    None if !item_kind.is_empty() => (
                        item_kind.to_owned(),
                        own_api.unwrap_or(&api_version).to_owned(),
                        true,
                    ),
                    None => {
                        diags.push(
                            Diagnostic::new(
                                Code::NotAnObject,
                                item.span,
                                "list item has no `kind`; skipped",
                            )
                            .with_help("give each item of a `List` its `apiVersion` and `kind`"),
                        );
                        continue;
                    }
                };
                out.push(RawObject {
                    api_version: api,
                    kind,
                    node: item.clone(),
                    kind_implied: implied,
                });
            }
            return;
        }
    }
    out.push(RawObject {
        api_version,
        kind,
        node: root,
        kind_implied: false,
    });
}

/// The byte length of the character at `at` (0 at the end of the text).
pub fn char_len(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|t| t.chars().next())
        .map(char::len_utf8)
        .unwrap_or(0)
}

/// The first non-blank line of a span, for underlining a whole document by its start.
fn first_line(text: &str, span: Span) -> Span {
    let body = text
        .get(span.start as usize..span.end as usize)
        .unwrap_or("");
    let mut offset = span.start as usize;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "---" {
            let lead = line.len() - line.trim_start().len();
            return Span::new(span.file, offset + lead, offset + lead + trimmed.len());
        }
        offset += line.len();
    }
    Span::new(span.file, span.start as usize, span.start as usize)
}
