//! The schema-checking reader: walks a YAML node, reports every structural problem once, and
//! yields the typed value (or `None` when a node is too broken to use).
//!
//! The field names that a decoder asks for are the schema: whatever a map holds beyond them is
//! an unknown field, and the names asked for feed "did you mean".

use crate::diagnostic::{Code, Diagnostic};
use crate::formats;
use crate::model::Str;
use crate::source::{Span, Spanned};
use crate::yaml::{Node, Resolved};

/// Collects findings while decoding.
pub struct Cx<'d> {
    pub diags: &'d mut Vec<Diagnostic>,
}

/// The key that led to a node and the node, so that a finding about a missing field inside
/// can point at the key that holds the map.
#[derive(Clone, Copy)]
pub struct At<'n> {
    pub key: Span,
    pub node: &'n Node<'n>,
}

impl<'n> At<'n> {
    pub fn item(node: &'n Node<'n>) -> At<'n> {
        At {
            key: head(node),
            node,
        }
    }
}

/// A short span to underline for a whole node: a map's first key, else the node.
pub fn head(node: &Node) -> Span {
    match node.as_map().and_then(|m| m.first()) {
        Some((k, _)) => k.span,
        None => node.span,
    }
}

impl<'d> Cx<'d> {
    pub fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub fn error(
        &mut self,
        code: Code,
        span: Span,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::new(code, span, msg).with_help(help));
    }

    fn wrong_type(&mut self, at: &Node, field: &str, expected: &str) {
        let found = at.kind_name();
        let help = match (expected, at.resolve()) {
            ("a string", Some(Resolved::Int(_) | Resolved::Float(_) | Resolved::Bool(_))) => {
                format!("quote the value: `\"{}\"`", at.scalar_text().unwrap_or(""))
            }
            ("a list", Some(_)) => format!("write `{field}` as a list: `- item` on its own line"),
            _ => format!("`{field}` must be {expected}"),
        };
        self.error(
            Code::WrongType,
            at.span,
            format!("`{field}` must be {expected}, found {found}"),
            help,
        );
    }

    /// A map, or `None` (reported) when the node is something else. Null reads as absent.
    pub fn map<'n>(&mut self, at: At<'n>, field: &str) -> Option<Fields<'n>> {
        if at.node.is_null() {
            return None;
        }
        match at.node.as_map() {
            Some(entries) => Some(Fields {
                at,
                entries,
                used: vec![false; entries.len()],
                known: Vec::new(),
            }),
            None => {
                self.wrong_type(at.node, field, "a map");
                None
            }
        }
    }

    /// A list, or `None` (reported) when the node is something else. Null reads as absent.
    pub fn list<'n>(&mut self, node: &'n Node<'n>, field: &str) -> Option<&'n [Node<'n>]> {
        if node.is_null() {
            return None;
        }
        match node.as_seq() {
            Some(items) => Some(items),
            None => {
                self.wrong_type(node, field, "a list");
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, field: &str) -> Option<Str> {
        match node.as_str() {
            Some(s) => Some(Spanned::new(s.to_owned(), node.span)),
            None => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.resolve() {
            Some(Resolved::Bool(b)) => Some(b),
            _ => {
                self.wrong_type(node, field, "a boolean (`true` or `false`)");
                None
            }
        }
    }

    pub fn int(&mut self, node: &Node, field: &str) -> Option<i64> {
        match node.resolve() {
            Some(Resolved::Int(i)) => Some(i),
            _ => {
                self.wrong_type(node, field, "an integer");
                None
            }
        }
    }

    /// Each item of a list decoded with `f`; broken items are dropped (already reported).
    pub fn each<'n, T>(
        &mut self,
        node: &'n Node<'n>,
        field: &str,
        mut f: impl FnMut(&mut Self, At<'n>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.list(node, field)?;
        Some(
            items
                .iter()
                .filter_map(|item| f(self, At::item(item)))
                .collect(),
        )
    }

    /// A list of strings.
    pub fn strings(&mut self, node: &Node, field: &str) -> Option<Vec<Str>> {
        let items = self.list(node, field)?;
        Some(items.iter().filter_map(|i| self.string(i, field)).collect())
    }

    /// `labels`-style map of string to string, keys and values validated as labels.
    pub fn labels(&mut self, node: &Node, field: &str) -> Option<Vec<(Str, Str)>> {
        if node.is_null() {
            return None;
        }
        let Some(entries) = node.as_map() else {
            self.wrong_type(node, field, "a map of label keys to values");
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(key) = self.string(k, field) else {
                continue;
            };
            let value = if v.is_null() {
                // An empty value is valid; `key:` with nothing reads as null.
                Some(Spanned::new(String::new(), v.span))
            } else {
                self.string(v, &key.value)
            };
            let Some(value) = value else { continue };
            let key_ok = self.label_key(&key);
            if key_ok {
                self.label_value(&value);
            }
            out.push((key, value));
        }
        Some(out)
    }

    pub fn label_key(&mut self, key: &Str) -> bool {
        match formats::label_key(&key.value) {
            Ok(_) => true,
            Err(reason) => {
                self.error(
                    Code::InvalidLabelKey,
                    key.span,
                    format!("invalid label key `{}`: {reason}", key.value),
                    "a label key is an optional DNS prefix and a name of at most 63 characters ([a-zA-Z0-9._-], alphanumeric at both ends), optionally after a Cilium source such as `k8s:`",
                );
                false
            }
        }
    }

    pub fn label_value(&mut self, value: &Str) -> bool {
        match formats::label_value(&value.value) {
            Ok(_) => true,
            Err(reason) => {
                self.error(
                    Code::InvalidLabelValue,
                    value.span,
                    format!("invalid label value `{}`: {reason}", value.value),
                    "a label value has at most 63 characters ([a-zA-Z0-9._-], alphanumeric at both ends), or is empty",
                );
                false
            }
        }
    }
}

/// The fields of one map, tracking which ones a decoder read.
pub struct Fields<'n> {
    pub at: At<'n>,
    entries: &'n [(Node<'n>, Node<'n>)],
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    /// The value of `key` with its key's span; absent and null values read as `None`.
    pub fn get(&mut self, key: &'static str) -> Option<At<'n>> {
        self.known.push(key);
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.scalar_text() == Some(key))?;
        self.used[i] = true;
        let (k, v) = &self.entries[i];
        if v.is_null() {
            return None;
        }
        Some(At {
            key: k.span,
            node: v,
        })
    }

    /// Whether `key` is present at all (even as null or empty).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| k.scalar_text() == Some(key))
    }

    /// A field the schema has but that nothing enforces yet: accepted with a warning.
    pub fn not_enforced(&mut self, cx: &mut Cx<'_>, key: &'static str, why: &str) {
        if let Some(at) = self.get(key) {
            cx.error(
                Code::NotEnforced,
                at.key,
                format!("`{key}` is not enforced by this version: {why}"),
                "the rest of the policy is enforced; traffic that only this field would decide is judged without it",
            );
        }
    }

    /// Fields that the object may carry and that need no checking (`status`, annotations…).
    pub fn ignore(&mut self, keys: &[&'static str]) {
        for key in keys {
            let _ = self.get(key);
        }
    }

    /// A required field: reports it missing (at the key that holds this map).
    pub fn require(&mut self, cx: &mut Cx<'_>, key: &'static str, context: &str) -> Option<At<'n>> {
        let v = self.get(key);
        if v.is_none() {
            cx.error(
                Code::MissingField,
                self.at.key,
                format!("{context} is missing the required field `{key}`"),
                format!("add `{key}`"),
            );
        }
        v
    }

    /// Reports every field no decoder asked for, with a suggestion where one is close.
    pub fn finish(self, cx: &mut Cx<'_>, context: &str) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let name = k.scalar_text().unwrap_or("");
            let mut known = self.known.clone();
            known.sort_unstable();
            known.dedup();
            let help = match formats::did_you_mean(name, &known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("{context} accepts: {}", known.join(", ")),
            };
            cx.error(
                Code::UnknownField,
                k.span,
                format!("unknown field `{name}` in {context}"),
                help,
            );
        }
    }
}

/// The first line of a span (for underlining a multi-line node by its start).
pub fn head_span(span: Span, sources: &crate::source::SourceMap) -> Span {
    let Some(file) = sources.get(span.file) else {
        return span;
    };
    let text = file.slice(span);
    match text.find('\n') {
        Some(i) => Span {
            end: span.start + i as u32,
            ..span
        },
        None => span,
    }
}
