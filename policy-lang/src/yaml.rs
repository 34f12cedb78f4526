//! A YAML tree that keeps the byte span of every key and value, built from saphyr-parser events.
//!
//! A file is cut into documents at `---`/`...` lines before parsing, so that a syntax error in
//! one document costs only that document: YAML forbids those markers at column 0 inside any
//! node, which makes the cut exact.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::borrow::Cow;

/// How a scalar was written; quoted scalars are always strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// A node's content; scalars borrow from the file's text where the YAML allows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Scalar {
        text: Cow<'a, str>,
        style: Style,
        tag: Option<Box<str>>,
    },
    Seq(Vec<Node<'a>>),
    Map(Vec<(Node<'a>, Node<'a>)>),
}

/// A scalar as YAML 1.2's core schema resolves it.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    pub span: Span,
}

impl<'a> Node<'a> {
    pub fn as_map(&self) -> Option<&[(Node<'a>, Node<'a>)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node<'a>]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar as the core schema reads it; `None` for collections.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        let Value::Scalar { text, style, tag } = &self.value else {
            return None;
        };
        let t: &str = text;
        match tag.as_deref() {
            Some("tag:yaml.org,2002:str") => return Some(Resolved::Str(t)),
            Some("tag:yaml.org,2002:null") => return Some(Resolved::Null),
            _ => {}
        }
        if *style != Style::Plain {
            return Some(Resolved::Str(t));
        }
        Some(match t {
            "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
            "true" | "True" | "TRUE" => Resolved::Bool(true),
            "false" | "False" | "FALSE" => Resolved::Bool(false),
            _ => {
                if let Some(i) = parse_int(t) {
                    Resolved::Int(i)
                } else if let Some(f) = parse_float(t) {
                    Resolved::Float(f)
                } else {
                    Resolved::Str(t)
                }
            }
        })
    }

    /// The text of a scalar whatever its resolved type (a key, or a value read as a string).
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value when it is a string (quoted, or plain that is not null, bool or number).
    pub fn as_str(&self) -> Option<&str> {
        match self.resolve()? {
            Resolved::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        // `resolve` without trying the text as a number: asked of nearly every field.
        let Value::Scalar { text, style, tag } = &self.value else {
            return false;
        };
        match tag.as_deref() {
            Some("tag:yaml.org,2002:str") => false,
            Some("tag:yaml.org,2002:null") => true,
            _ => *style == Style::Plain && matches!(&**text, "" | "~" | "null" | "Null" | "NULL"),
        }
    }

    /// The value stored under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// What the node is, in the words a user reads in "expected X, found Y".
    pub fn kind_name(&self) -> &'static str {
        match self.resolve() {
            None => match self.value {
                Value::Seq(_) => "a list",
                _ => "a map",
            },
            Some(Resolved::Null) => "null",
            Some(Resolved::Bool(_)) => "a boolean",
            Some(Resolved::Int(_)) => "an integer",
            Some(Resolved::Float(_)) => "a number",
            Some(Resolved::Str(_)) => "a string",
        }
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let ok = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if ok {
        t.parse().ok()
    } else {
        None
    }
}

/// One document of a file: its root (absent for an empty document) and where it lies.
#[derive(Clone, Debug)]
pub struct Document<'a> {
    pub root: Option<Node<'a>>,
    pub span: Span,
    /// 0-based position of the document in its file.
    pub index: usize,
}

/// Documents parsed from a file, and the syntax findings of the ones that failed.
#[derive(Debug, Default)]
pub struct ParsedFile<'a> {
    pub documents: Vec<Document<'a>>,
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that held content, parsed or not.
    pub document_count: usize,
}

/// Aliases may expand to at most this many nodes per document ("billion laughs" guard).
const ALIAS_NODE_BUDGET: usize = 100_000;

/// Parses every document of a file's text.
pub fn parse_file(file: FileId, text: &str) -> ParsedFile<'_> {
    parse_file_lines(file, text, &crate::source::line_starts(text))
}

/// [`parse_file`] with the text's line starts (see [`crate::source::line_starts`]) known.
pub(crate) fn parse_file_lines<'a>(
    file: FileId,
    text: &'a str,
    line_starts: &[u32],
) -> ParsedFile<'a> {
    let mut out = ParsedFile::default();
    let mut scratch = Scratch::default();
    for (start, end) in document_chunks(text, line_starts) {
        let chunk = &text[start..end];
        if !has_content(chunk) {
            continue;
        }
        out.document_count += 1;
        let mut builder = TreeBuilder::new(file, start, chunk, &mut scratch);
        builder.run();
        out.diagnostics.append(&mut builder.diagnostics);
        for root in builder.roots {
            let index = out.documents.len();
            out.documents.push(Document {
                root,
                span: Span::new(file, start, end),
                index,
            });
        }
    }
    out
}

/// Byte ranges of the documents, cut before each `---` line and after each `...` line.
fn document_chunks(text: &str, line_starts: &[u32]) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut chunk_start = 0;
    for (i, &line_start) in line_starts.iter().enumerate() {
        let line_start = line_start as usize;
        if line_start >= text.len() {
            break;
        }
        let line_end = line_starts
            .get(i + 1)
            .map_or(text.len(), |&next| next as usize);
        let line = &text[line_start..line_end];
        if is_marker(line, "---") {
            if line_start > chunk_start {
                chunks.push((chunk_start, line_start));
            }
            chunk_start = line_start;
        } else if is_marker(line, "...") {
            chunks.push((chunk_start, line_end));
            chunk_start = line_end;
        }
    }
    if chunk_start < text.len() {
        chunks.push((chunk_start, text.len()));
    }
    chunks
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a chunk holds anything besides markers, comments and blank lines.
fn has_content(chunk: &str) -> bool {
    chunk.lines().any(|line| {
        let l = line.trim();
        !(l.is_empty() || l.starts_with('#') || l == "---" || l == "..." || l.starts_with("--- #"))
            && !(l.starts_with("---") && l[3..].trim_start().starts_with('#'))
            && !l.starts_with('%')
    })
}

/// An open collection. Its children wait in [`Scratch`] from `first` on, so that each
/// collection gets one allocation of its final size instead of growing its own vector.
struct Frame<'a> {
    is_map: bool,
    /// Index of the first child (item or entry) in the scratch vector of its kind.
    first: usize,
    pending_key: Option<Node<'a>>,
    start: usize,
    anchor: usize,
    /// Which kept paths run through this collection.
    below: PathMatch,
}

/// The kept paths (see [`kept_paths`]) that a collection lies on: the patterns (by bit) whose
/// parts matched every key above it, and whether one reached a final `**` (keep all below).
#[derive(Clone, Copy)]
struct PathMatch {
    alive: u32,
    all: bool,
}

impl PathMatch {
    const ANY: PathMatch = PathMatch {
        alive: u32::MAX,
        all: false,
    };
}

/// Children of the open collections, kept across the documents of a file.
#[derive(Default)]
struct Scratch<'a> {
    items: Vec<Node<'a>>,
    entries: Vec<(Node<'a>, Node<'a>)>,
}

struct TreeBuilder<'a, 's> {
    file: FileId,
    base: usize,
    chunk: &'a str,
    /// Byte offset of each char, only for non-ASCII chunks (saphyr counts chars).
    char_bytes: Option<Vec<u32>>,
    stack: Vec<Frame<'a>>,
    scratch: &'s mut Scratch<'a>,
    anchors: std::collections::HashMap<usize, Node<'a>>,
    alias_budget: usize,
    roots: Vec<Option<Node<'a>>>,
    current_root: Option<Node<'a>>,
    diagnostics: Vec<Diagnostic>,
    /// The parts of the current document that are kept (see [`kept_paths`]).
    keep: Option<&'static [&'static [&'static str]]>,
    /// Nesting depth inside a value being skipped (0: building).
    skip_depth: usize,
    /// Anchors defined inside skipped values; an alias to one reads as null.
    skipped_anchors: Vec<usize>,
}

/// For inventory kinds, the paths of a document that typing reads (`*` = any list item, a
/// final `**` = the whole subtree). Everything else is never built: a Deployment's container
/// images, environment and probes are most of a tree's bytes. `None` keeps everything.
fn kept_paths(kind: &str) -> Option<&'static [&'static [&'static str]]> {
    const CONTROLLER: &[&[&str]] = &[
        &["apiVersion"],
        &["kind"],
        &["metadata", "**"],
        &["spec", "template", "metadata", "**"],
        &["spec", "template", "spec", "containers", "*", "ports", "**"],
        &[
            "spec",
            "template",
            "spec",
            "initContainers",
            "*",
            "ports",
            "**",
        ],
        &["spec", "template", "spec", "hostNetwork"],
        &["spec", "template", "spec", "serviceAccountName"],
        &["spec", "template", "spec", "serviceAccount"],
    ];
    const CRON_JOB: &[&[&str]] = &[
        &["apiVersion"],
        &["kind"],
        &["metadata", "**"],
        &["spec", "jobTemplate", "spec", "template", "metadata", "**"],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
            "*",
            "ports",
            "**",
        ],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "initContainers",
            "*",
            "ports",
            "**",
        ],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "hostNetwork",
        ],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "serviceAccountName",
        ],
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "serviceAccount",
        ],
    ];
    const POD: &[&[&str]] = &[
        &["apiVersion"],
        &["kind"],
        &["metadata", "**"],
        &["spec", "containers", "*", "ports", "**"],
        &["spec", "initContainers", "*", "ports", "**"],
        &["spec", "hostNetwork"],
        &["spec", "serviceAccountName"],
        &["spec", "serviceAccount"],
        &["status", "podIP"],
        &["status", "podIPs", "**"],
    ];
    const SERVICE: &[&[&str]] = &[
        &["apiVersion"],
        &["kind"],
        &["metadata", "**"],
        &["spec", "selector", "**"],
        &["spec", "ports", "**"],
        &["spec", "clusterIP"],
        &["spec", "clusterIPs", "**"],
    ];
    const OTHER: &[&[&str]] = &[&["apiVersion"], &["kind"], &["metadata", "**"]];
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(CONTROLLER),
        "CronJob" => Some(CRON_JOB),
        "Pod" => Some(POD),
        "Service" => Some(SERVICE),
        "NetworkPolicy"
        | "CiliumNetworkPolicy"
        | "CiliumClusterwideNetworkPolicy"
        | "Namespace"
        | "EndpointSlice" => None,
        // Lists carry their items' kinds inside.
        k if k.ends_with("List") => None,
        _ => Some(OTHER),
    }
}

impl<'a, 's> TreeBuilder<'a, 's> {
    fn new(file: FileId, base: usize, chunk: &'a str, scratch: &'s mut Scratch<'a>) -> Self {
        let char_bytes = (!chunk.is_ascii()).then(|| {
            let mut v: Vec<u32> = chunk.char_indices().map(|(i, _)| i as u32).collect();
            v.push(chunk.len() as u32);
            v
        });
        // A chunk abandoned on a syntax error may have left children behind.
        scratch.items.clear();
        scratch.entries.clear();
        TreeBuilder {
            file,
            base,
            chunk,
            char_bytes,
            stack: Vec::new(),
            scratch,
            anchors: Default::default(),
            alias_budget: ALIAS_NODE_BUDGET,
            roots: Vec::new(),
            current_root: None,
            diagnostics: Vec::new(),
            keep: None,
            skip_depth: 0,
            skipped_anchors: Vec::new(),
        }
    }

    /// The kept paths through the value about to start (under the top collection), or `None`
    /// when typing never reads it. Keys and list items are always kept, as their collection is.
    ///
    /// `keep` is only set by the root's `kind`, when the root is the one open collection, and
    /// the root always starts with [`PathMatch::ANY`]: so every frame's `below` is up to date.
    fn path_match(&self) -> Option<PathMatch> {
        let Some(patterns) = self.keep else {
            return Some(PathMatch::ANY);
        };
        let Some(top) = self.stack.last() else {
            return Some(PathMatch::ANY);
        };
        if top.below.all {
            return Some(top.below);
        }
        let (part, always) = match (&top.pending_key, top.is_map) {
            (_, false) => ("*", true),
            (Some(k), true) => (k.scalar_text().unwrap_or(""), false),
            (None, true) => ("", true),
        };
        let depth = self.stack.len() - 1;
        let mut m = PathMatch {
            alive: 0,
            all: false,
        };
        for (i, pattern) in patterns.iter().enumerate() {
            if top.below.alive & (1 << i) == 0 {
                continue;
            }
            match pattern.get(depth) {
                Some(&"**") => m.all = true,
                Some(p) if *p == part => m.alive |= 1 << i,
                _ => {}
            }
        }
        (always || m.all || m.alive != 0).then_some(m)
    }

    /// Starts skipping a value that typing never reads.
    fn skip_value(&mut self, anchor: usize, opens: bool) {
        if let Some(top) = self.stack.last_mut() {
            top.pending_key = None;
        }
        if anchor != 0 {
            self.skipped_anchors.push(anchor);
        }
        if opens {
            self.skip_depth = 1;
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        let rel = match &self.char_bytes {
            None => char_index.min(self.chunk.len()),
            Some(v) => v
                .get(char_index)
                .copied()
                .unwrap_or(self.chunk.len() as u32) as usize,
        };
        self.base + rel
    }

    fn span(&self, s: &saphyr_parser::Span) -> Span {
        Span::new(
            self.file,
            self.byte(s.start.index()),
            self.byte(s.end.index()),
        )
    }

    fn run(&mut self) {
        let mut parser = Parser::new_from_str(self.chunk);
        loop {
            match parser.next_event() {
                None => break,
                Some(Err(e)) => {
                    let at = self.byte(e.marker().index());
                    let end = at + crate::load::char_len(self.chunk, at - self.base);
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::YamlSyntax,
                            Span::new(self.file, at, end),
                            format!("invalid YAML: {}", e.info()),
                        )
                        .with_help(
                            "fix the syntax; the other documents of this file are still checked",
                        ),
                    );
                    // The rest of this chunk cannot be trusted: drop its unfinished document.
                    self.roots.retain(|r| r.is_some());
                    return;
                }
                Some(Ok((event, span))) => {
                    if !self.on_event(event, span) {
                        return;
                    }
                }
            }
        }
    }

    /// Returns false when the chunk must be abandoned.
    fn on_event(&mut self, event: Event<'a>, span: saphyr_parser::Span) -> bool {
        if self.skip_depth > 0 {
            match event {
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    self.skip_depth += 1;
                    if anchor != 0 {
                        self.skipped_anchors.push(anchor);
                    }
                }
                Event::SequenceEnd | Event::MappingEnd => self.skip_depth -= 1,
                Event::Scalar(_, _, anchor, _) if anchor != 0 => self.skipped_anchors.push(anchor),
                _ => {}
            }
            return true;
        }
        // Values (not ends) that typing never reads are skipped whole.
        let value = match &event {
            Event::Scalar(_, _, anchor, _) => Some((*anchor, false)),
            Event::Alias(_) => Some((0, false)),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                Some((*anchor, true))
            }
            _ => None,
        };
        let below = match value {
            None => PathMatch::ANY,
            Some((anchor, opens)) => match self.path_match() {
                Some(m) => m,
                None => {
                    self.skip_value(anchor, opens);
                    return true;
                }
            },
        };
        let sp = self.span(&span);
        match event {
            Event::DocumentStart(_) => {
                self.current_root = None;
                self.keep = None;
            }
            Event::DocumentEnd => {
                let root = self.current_root.take();
                self.roots.push(root);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix)).map(|t| {
                    // `!!str` arrives as handle `tag:yaml.org,2002:` + suffix.
                    t.replace("!!", "tag:yaml.org,2002:").into_boxed_str()
                });
                if let [Frame {
                    is_map: true,
                    pending_key: Some(k),
                    ..
                }] = self.stack.as_slice()
                {
                    if k.scalar_text() == Some("kind") {
                        self.keep = kept_paths(&text);
                    }
                }
                let node = Node {
                    value: Value::Scalar { text, style, tag },
                    span: sp,
                };
                return self.push_node(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame {
                is_map: false,
                first: self.scratch.items.len(),
                pending_key: None,
                start: sp.start as usize,
                anchor,
                below,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame {
                is_map: true,
                first: self.scratch.entries.len(),
                pending_key: None,
                start: sp.start as usize,
                anchor,
                below,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return true;
                };
                let Frame {
                    is_map,
                    first,
                    start,
                    anchor,
                    ..
                } = frame;
                let (value, last_end) = if is_map {
                    let entries = self.scratch.entries.get(first..).unwrap_or(&[]);
                    Self::check_duplicate_keys(&mut self.diagnostics, entries);
                    let last = entries.last().map(|(_, v)| v.span.end as usize);
                    (
                        Value::Map(self.scratch.entries.drain(first..).collect()),
                        last,
                    )
                } else {
                    let items = self.scratch.items.get(first..).unwrap_or(&[]);
                    let last = items.last().map(|n| n.span.end as usize);
                    (
                        Value::Seq(self.scratch.items.drain(first..).collect()),
                        last,
                    )
                };
                // Flow collections end at their closing bracket; block ones at their last child.
                let flow_end = self.chunk_byte_is_closing(sp.start as usize);
                let end = if flow_end {
                    sp.end as usize
                } else {
                    last_end.unwrap_or(sp.start as usize)
                };
                let node = Node {
                    value,
                    span: Span::new(self.file, start, end.max(start)),
                };
                return self.push_node(node, anchor);
            }
            Event::Alias(id) => {
                if self.skipped_anchors.contains(&id) {
                    let null = Node {
                        value: Value::Scalar {
                            text: Cow::Borrowed(""),
                            style: Style::Plain,
                            tag: None,
                        },
                        span: sp,
                    };
                    return self.push_node(null, 0);
                }
                let Some(node) = self.anchors.get(&id).cloned() else {
                    self.diagnostics
                        .push(Diagnostic::new(Code::YamlSyntax, sp, "unknown alias"));
                    return false;
                };
                let size = count_nodes(&node);
                if size > self.alias_budget {
                    self.diagnostics.push(
                        Diagnostic::new(Code::YamlSyntax, sp, "aliases expand to too many nodes")
                            .with_help("expand the aliases by hand, or use fewer nested aliases"),
                    );
                    return false;
                }
                self.alias_budget -= size;
                let node = Node { span: sp, ..node };
                return self.push_node(node, 0);
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        true
    }

    fn chunk_byte_is_closing(&self, at: usize) -> bool {
        at >= self.base && matches!(self.chunk.as_bytes().get(at - self.base), Some(b']' | b'}'))
    }

    fn push_node(&mut self, node: Node<'a>, anchor: usize) -> bool {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.current_root = Some(node),
            Some(Frame { is_map: false, .. }) => self.scratch.items.push(node),
            Some(Frame { pending_key, .. }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => self.scratch.entries.push((key, node)),
            },
        }
        true
    }

    fn check_duplicate_keys(diagnostics: &mut Vec<Diagnostic>, entries: &[(Node<'a>, Node<'a>)]) {
        // Maps are small: comparing each key with the ones before it beats hashing.
        for (i, (k, _)) in entries.iter().enumerate().skip(1) {
            let Some(text) = k.scalar_text() else {
                continue;
            };
            if entries[..i]
                .iter()
                .any(|(p, _)| p.scalar_text() == Some(text))
            {
                diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateKey,
                        k.span,
                        format!("duplicate key `{text}`"),
                    )
                    .with_help("remove one of them; only one value can be kept"),
                );
            }
        }
    }
}

fn count_nodes(node: &Node<'_>) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_nodes(k) + count_nodes(v))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ParsedFile<'_> {
        parse_file(FileId(0), text)
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "a: 1\nb:\n  c: \"x\"\n";
        let p = parse(text);
        let root = p.documents[0].root.as_ref().expect("root");
        let (k, v) = &root.as_map().expect("map")[1];
        assert_eq!(&text[k.span.start as usize..k.span.end as usize], "b");
        let c = v.get("c").expect("c");
        assert_eq!(&text[c.span.start as usize..c.span.end as usize], "\"x\"");
        assert_eq!(c.as_str(), Some("x"));
    }

    #[test]
    fn bad_document_keeps_the_others() {
        let text = "a: 1\n---\nb: [1, 2\n---\nc: 3\n";
        let p = parse(text);
        assert_eq!(p.document_count, 3);
        assert_eq!(p.documents.len(), 2);
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].code, Code::YamlSyntax);
        let at = p.diagnostics[0].span().expect("span").start as usize;
        assert!(
            (9..20).contains(&at),
            "error inside the second document, at {at}"
        );
        assert!(p.documents[1].root.as_ref().expect("c").get("c").is_some());
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let p = parse("a: 80\nb: \"80\"\nc: true\nd: ~\ne: 1.5\nf: x\n");
        let r = p.documents[0].root.as_ref().expect("root");
        assert_eq!(
            r.get("a").and_then(|n| n.resolve()),
            Some(Resolved::Int(80))
        );
        assert_eq!(
            r.get("b").and_then(|n| n.resolve()),
            Some(Resolved::Str("80"))
        );
        assert_eq!(
            r.get("c").and_then(|n| n.resolve()),
            Some(Resolved::Bool(true))
        );
        assert!(r.get("d").expect("d").is_null());
        assert_eq!(
            r.get("e").and_then(|n| n.resolve()),
            Some(Resolved::Float(1.5))
        );
        assert_eq!(r.get("f").and_then(|n| n.as_str()), Some("x"));
    }

    #[test]
    fn is_null_agrees_with_resolve() {
        let p = parse(
            "a: ~\nb: null\nc: \"null\"\nd: !!str null\ne: !!null x\nf:\ng: [1]\nh: 0\ni: ''\n",
        );
        let r = p.documents[0].root.as_ref().expect("root");
        for (_, v) in r.as_map().expect("map") {
            assert_eq!(
                v.is_null(),
                matches!(v.resolve(), Some(Resolved::Null)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let p = parse("a: 1\na: 2\n");
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].code, Code::DuplicateKey);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let p = parse(&text);
        assert!(p.diagnostics.iter().any(|d| d.message.contains("too many")));
    }

    #[test]
    fn workload_parts_typing_never_reads_are_not_built() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: &img nginx\n        ports: [{containerPort: 80}]\n      - name: d\n        image: *img\n";
        let p = parse(text);
        let root = p.documents[0].root.as_ref().expect("root");
        let spec = root.get("spec").expect("spec");
        assert!(spec.get("replicas").is_none());
        let c = &spec
            .get("template")
            .and_then(|t| t.get("spec"))
            .and_then(|s| s.get("containers"))
            .and_then(|c| c.as_seq())
            .expect("containers")[0];
        assert!(c.get("image").is_none());
        assert!(c.get("ports").is_some());
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        // Policies are built whole.
        let p = parse("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nspec:\n  x: 1\n");
        assert!(p.documents[0]
            .root
            .as_ref()
            .and_then(|r| r.get("spec"))
            .and_then(|s| s.get("x"))
            .is_some());
    }

    #[test]
    fn json_parses() {
        let p = parse("{\"kind\": \"Pod\", \"spec\": {\"a\": [1, 2]}}");
        assert_eq!(p.documents.len(), 1);
        assert_eq!(
            p.documents[0]
                .root
                .as_ref()
                .and_then(|r| r.get("kind"))
                .and_then(|n| n.as_str()),
            Some("Pod")
        );
    }
}
