//! Walks the paths a user gives, reads every YAML or JSON file, and splits them into objects.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, SourceMap, Span};
use crate::yaml::{self, Node};
use std::path::{Path, PathBuf};

/// A Kubernetes object found in a document, before typing.
#[derive(Debug)]
pub struct RawObject {
    pub api_version: String,
    pub kind: String,
    pub node: Node,
    /// Items of a `List` carry no kind of their own when the list is typed (`PodList`).
    pub kind_implied: bool,
}

/// What loading found: the sources, the raw objects and the findings so far.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: SourceMap,
    pub objects: Vec<RawObject>,
    pub diagnostics: Vec<Diagnostic>,
    pub documents: usize,
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

/// Reads and parses every file below `paths`.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let files = collect_files(paths, &mut loaded.diagnostics);
    for path in files {
        match std::fs::read(&path) {
            Err(e) => loaded.diagnostics.push(Diagnostic::at_path(
                Code::Io,
                path.clone(),
                format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
            )),
            Ok(bytes) => {
                let text = match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(e) => {
                        let at = e.utf8_error().valid_up_to();
                        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                        let id = loaded.sources.add(path.clone(), text);
                        loaded.diagnostics.push(
                            Diagnostic::new(
                                Code::YamlSyntax,
                                Span::new(id, at, at + 1),
                                "the file is not valid UTF-8",
                            )
                            .with_help("save the file as UTF-8"),
                        );
                        continue;
                    }
                };
                add_text(&mut loaded, path, text);
            }
        }
    }
    loaded
}

/// Parses one file's text (already read) into the result.
pub fn add_text(loaded: &mut Loaded, path: PathBuf, text: String) -> FileId {
    let id = loaded.sources.add(path, text);
    let Some(file) = loaded.sources.get(id) else {
        return id;
    };
    let parsed = yaml::parse_file(id, &file.text);
    loaded.documents += parsed.document_count;
    loaded.diagnostics.extend(parsed.diagnostics);
    for doc in parsed.documents {
        let Some(root) = doc.root else { continue };
        split_objects(root, &mut loaded.objects, &mut loaded.diagnostics, doc.span);
    }
    id
}

/// Turns a document's root into objects, unpacking `List` and `<Kind>List`.
fn split_objects(
    root: Node,
    out: &mut Vec<RawObject>,
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
        let at = Span::new(
            at.file,
            at.start as usize,
            (at.start as usize + first_line_len(&root)).max(at.start as usize),
        );
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

fn first_line_len(node: &Node) -> usize {
    let _ = node;
    1
}
