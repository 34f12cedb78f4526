//! A small value tree for Kubernetes objects and its block-YAML and JSON writers.
//!
//! The generator builds each object as a [`V`] and writes it here, so indentation and quoting
//! are decided in one place instead of in hundreds of format strings.

/// A YAML/JSON value; map entries keep their insertion order, as manifests do.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    S(String),
    I(i64),
    B(bool),
    M(Vec<(String, V)>),
    L(Vec<V>),
}

impl From<&str> for V {
    fn from(s: &str) -> Self {
        V::S(s.to_string())
    }
}

impl From<String> for V {
    fn from(s: String) -> Self {
        V::S(s)
    }
}

impl From<&String> for V {
    fn from(s: &String) -> Self {
        V::S(s.clone())
    }
}

impl From<i64> for V {
    fn from(i: i64) -> Self {
        V::I(i)
    }
}

impl From<u16> for V {
    fn from(i: u16) -> Self {
        V::I(i64::from(i))
    }
}

impl From<u32> for V {
    fn from(i: u32) -> Self {
        V::I(i64::from(i))
    }
}

impl From<bool> for V {
    fn from(b: bool) -> Self {
        V::B(b)
    }
}

impl From<Vec<V>> for V {
    fn from(l: Vec<V>) -> Self {
        V::L(l)
    }
}

/// `map! { "key" => value, ... }` builds a [`V::M`]; keys and values go through `Into`.
#[macro_export]
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::emit::V::M(vec![$((::std::string::String::from($k), $crate::emit::V::from($v))),*])
    };
}

/// `list![a, b]` builds a [`V::L`].
#[macro_export]
macro_rules! list {
    ($($v:expr),* $(,)?) => {
        $crate::emit::V::L(vec![$($crate::emit::V::from($v)),*])
    };
}

impl V {
    /// An empty map (`{}`), as in `podSelector: {}`.
    pub fn empty_map() -> V {
        V::M(Vec::new())
    }

    /// Appends an entry to a map; does nothing on other values.
    pub fn push(&mut self, key: &str, value: impl Into<V>) {
        if let V::M(entries) = self {
            entries.push((key.to_string(), value.into()));
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, V::S(_) | V::I(_) | V::B(_))
    }
}

/// Words that YAML 1.1 or 1.2 would read as something other than a string.
fn is_reserved(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    )
}

/// Whether a string can be written as a plain scalar and still read back as the same string.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.bytes().next() else {
        return false;
    };
    let chars_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if !chars_ok || is_reserved(s) {
        return false;
    }
    if first.is_ascii_digit() {
        // `100m` and `128Mi` are strings; `1e3`, `0x1f`, `1.5` and `8080` are not.
        return s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E' | b'x' | b'o' | b'b'));
    }
    first.is_ascii_alphabetic() || first == b'/'
}

fn write_str_yaml(s: &str, out: &mut String) {
    if plain_ok(s) {
        out.push_str(s);
    } else {
        write_str_json(s, out);
    }
}

/// A double-quoted string; valid in JSON and, for the ASCII we write, in YAML.
fn write_str_json(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_scalar_yaml(v: &V, out: &mut String) {
    match v {
        V::S(s) => write_str_yaml(s, out),
        V::I(i) => out.push_str(&i.to_string()),
        V::B(b) => out.push_str(if *b { "true" } else { "false" }),
        V::M(_) | V::L(_) => {}
    }
}

fn pad(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(' ');
    }
}

/// Short lists of scalars read best in flow style: `values: [a, b]`.
fn is_flow_list(items: &[V]) -> bool {
    items.len() <= 4 && items.iter().all(V::is_scalar)
}

/// Writes the value after `key:` (or after `- `), ending with a newline.
fn write_value_after(v: &V, indent: usize, out: &mut String) {
    match v {
        V::M(entries) if entries.is_empty() => out.push_str(" {}\n"),
        V::L(items) if items.is_empty() => out.push_str(" []\n"),
        V::M(entries) => {
            out.push('\n');
            write_map(entries, indent, false, out);
        }
        V::L(items) if is_flow_list(items) => {
            out.push_str(" [");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_scalar_yaml(item, out);
            }
            out.push_str("]\n");
        }
        V::L(items) => {
            out.push('\n');
            write_seq(items, indent, out);
        }
        scalar => {
            out.push(' ');
            write_scalar_yaml(scalar, out);
            out.push('\n');
        }
    }
}

fn write_map(entries: &[(String, V)], indent: usize, first_inline: bool, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if !(first_inline && i == 0) {
            pad(indent, out);
        }
        write_str_yaml(k, out);
        out.push(':');
        write_value_after(v, indent + 2, out);
    }
}

fn write_seq(items: &[V], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push('-');
        match item {
            V::M(entries) if !entries.is_empty() => {
                out.push(' ');
                write_map(entries, indent + 2, true, out);
            }
            other => write_value_after(other, indent + 2, out),
        }
    }
}

/// Appends one YAML document (without the `---` line) for a map or list value.
pub fn to_yaml(v: &V, out: &mut String) {
    match v {
        V::M(entries) if !entries.is_empty() => write_map(entries, 0, false, out),
        V::L(items) if !items.is_empty() => write_seq(items, 0, out),
        V::M(_) => out.push_str("{}\n"),
        V::L(_) => out.push_str("[]\n"),
        scalar => {
            write_scalar_yaml(scalar, out);
            out.push('\n');
        }
    }
}

fn write_json(v: &V, indent: usize, out: &mut String) {
    match v {
        V::S(s) => write_str_json(s, out),
        V::I(i) => out.push_str(&i.to_string()),
        V::B(b) => out.push_str(if *b { "true" } else { "false" }),
        V::M(entries) if entries.is_empty() => out.push_str("{}"),
        V::L(items) if items.is_empty() => out.push_str("[]"),
        V::M(entries) => {
            out.push_str("{\n");
            for (i, (k, v)) in entries.iter().enumerate() {
                pad(indent + 2, out);
                write_str_json(k, out);
                out.push_str(": ");
                write_json(v, indent + 2, out);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            pad(indent, out);
            out.push('}');
        }
        V::L(items) => {
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                pad(indent + 2, out);
                write_json(v, indent + 2, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(indent, out);
            out.push(']');
        }
    }
}

/// Appends a pretty-printed JSON rendering of the value, with a final newline.
pub fn to_json(v: &V, out: &mut String) {
    write_json(v, 0, out);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(v: &V) -> String {
        let mut s = String::new();
        to_yaml(v, &mut s);
        s
    }

    #[test]
    fn block_style_with_inline_first_entry() {
        let v = map! {
            "kind" => "Pod",
            "spec" => map! {
                "containers" => list![map! { "name" => "web", "ports" => list![map! { "containerPort" => 8080i64 }] }],
                "empty" => V::empty_map(),
                "types" => list!["Ingress", "Egress"],
            },
        };
        assert_eq!(
            yaml(&v),
            "kind: Pod\nspec:\n  containers:\n    - name: web\n      ports:\n        - containerPort: 8080\n  empty: {}\n  types: [Ingress, Egress]\n"
        );
    }

    #[test]
    fn strings_that_could_be_misread_are_quoted() {
        for (s, want) in [
            ("true", "\"true\""),
            ("8080", "\"8080\""),
            ("1.5", "\"1.5\""),
            ("1e3", "\"1e3\""),
            ("*", "\"*\""),
            ("k8s:app", "\"k8s:app\""),
            ("10.0.0.0/8", "\"10.0.0.0/8\""),
            ("", "\"\""),
            ("100m", "100m"),
            ("app.kubernetes.io/name", "app.kubernetes.io/name"),
            ("/healthz", "/healthz"),
        ] {
            let mut out = String::new();
            write_str_yaml(s, &mut out);
            assert_eq!(out, want, "for {s:?}");
        }
    }

    #[test]
    fn json_is_pretty_and_escaped() {
        let v = map! { "a" => list![1i64, "x\"y"], "b" => V::empty_map() };
        let mut s = String::new();
        to_json(&v, &mut s);
        assert_eq!(
            s,
            "{\n  \"a\": [\n    1,\n    \"x\\\"y\"\n  ],\n  \"b\": {}\n}\n"
        );
    }
}
