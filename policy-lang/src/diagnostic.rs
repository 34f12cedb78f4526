//! Findings: a stable code, a severity, a message, the span it is about and a help line.

use crate::source::{SourceMap, Span};
use std::path::PathBuf;

/// How bad a finding is. Errors fail `policyc check`; warnings fail it only with
/// `--deny-warnings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $name:literal, $sev:ident, $doc:literal; )*) => {
        /// Every finding's stable code. Codes never change meaning once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// All codes, in code order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable code, for example `PL101`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// A short kebab-case name, for example `unknown-field`.
            pub fn name(self) -> &'static str {
                match self { $( Code::$variant => $name, )* }
            }

            /// The severity a finding of this code has.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// What the rule checks and why it matters (used for SARIF rule help).
            pub fn description(self) -> &'static str {
                match self { $( Code::$variant => $doc, )* }
            }

            pub fn parse(code: &str) -> Option<Code> {
                match code { $( $code => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

codes! {
    // Reading files and YAML.
    Io = "PL001", "io-error", Error,
        "A path given on the command line, or a file below it, could not be read.";
    YamlSyntax = "PL002", "yaml-syntax", Error,
        "The document is not valid YAML or JSON. The other documents of the file are still checked.";
    NotAnObject = "PL003", "not-a-kubernetes-object", Warning,
        "A document without `apiVersion` and `kind` is not a Kubernetes object and is skipped.";
    // Structure of an object.
    UnknownField = "PL101", "unknown-field", Error,
        "A field that the object's schema does not have. The API server would reject it, or drop it silently.";
    WrongType = "PL102", "wrong-type", Error,
        "A value of the wrong type, for example a list where a map is expected.";
    MissingField = "PL103", "missing-field", Error,
        "A field the object must have is absent.";
    NotEnforced = "PL104", "not-enforced", Warning,
        "An upstream field that this version does not enforce yet. The policy is accepted, but the field has no effect.";
    DuplicateKey = "PL105", "duplicate-key", Error,
        "A map repeats a key. Kubernetes would keep only one of them, silently.";
    InvalidName = "PL110", "invalid-name", Error,
        "An object name that is not a valid Kubernetes name (RFC 1123 subdomain).";
    InvalidNamespace = "PL111", "invalid-namespace", Error,
        "A namespace that is not a valid RFC 1123 label.";
    DuplicatePolicy = "PL112", "duplicate-policy", Error,
        "Two policies of the same kind, namespace and name: the second one would overwrite the first in the cluster.";
    // Labels and selectors.
    InvalidLabelKey = "PL201", "invalid-label-key", Error,
        "A label key that Kubernetes rejects (optional DNS prefix and a name of at most 63 characters), after Cilium's source prefix such as `k8s:` or `any:`.";
    InvalidLabelValue = "PL202", "invalid-label-value", Error,
        "A label value that Kubernetes rejects (at most 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).";
    InvalidSelectorOperator = "PL203", "invalid-selector-operator", Error,
        "A match expression with an operator other than In, NotIn, Exists and DoesNotExist.";
    InvalidSelectorValues = "PL204", "invalid-selector-values", Error,
        "In and NotIn need at least one value; Exists and DoesNotExist take none.";
    // Addresses.
    InvalidCidr = "PL301", "invalid-cidr", Error,
        "A CIDR that does not parse, or whose prefix length is out of range.";
    CidrHostBits = "PL302", "cidr-host-bits", Warning,
        "A CIDR with host bits set: the address is masked to its network, which is rarely what was meant.";
    ExceptOutsideCidr = "PL303", "except-outside-cidr", Error,
        "An `except` entry that is not inside the CIDR it carves from.";
    // Ports and protocols.
    InvalidPort = "PL401", "invalid-port", Error,
        "A port number outside 1-65535 (0 where a port is required).";
    InvalidNamedPort = "PL402", "invalid-named-port", Error,
        "A named port that is not a valid IANA service name (at most 15 lowercase alphanumerics and `-`, with a letter).";
    InvalidEndPort = "PL403", "invalid-end-port", Error,
        "`endPort` below `port`, or together with a named port or no port.";
    InvalidProtocol = "PL404", "invalid-protocol", Error,
        "A protocol that the policy kind does not accept.";
    InvalidPolicyType = "PL405", "invalid-policy-type", Error,
        "A `policyTypes` entry other than Ingress and Egress, or a repeated one.";
    // Cilium peers and L7.
    UnknownEntity = "PL501", "unknown-entity", Error,
        "An entity that Cilium does not define.";
    InvalidFqdn = "PL502", "invalid-fqdn", Error,
        "A `matchName` that is not a DNS name, or a `matchPattern` with characters other than DNS characters and `*`.";
    InvalidHttpMethod = "PL503", "invalid-http-method", Error,
        "An HTTP method that is not a method token (Cilium matches it as a regular expression, which must compile).";
    InvalidHttpPath = "PL504", "invalid-http-path", Error,
        "An HTTP path regular expression that does not compile.";
    InvalidHttpHeader = "PL505", "invalid-http-header", Error,
        "A header match that is not `Name` or `Name: value` with a valid header name.";
    L7ProtocolMismatch = "PL506", "l7-protocol-mismatch", Error,
        "HTTP rules on a port whose protocol is not TCP, or DNS rules on a protocol other than UDP, TCP or ANY.";
    InvalidIcmp = "PL507", "invalid-icmp", Error,
        "An ICMP type that is not a known type name or a number 0-255, or a family other than IPv4 and IPv6.";
    ConflictingFields = "PL508", "conflicting-fields", Error,
        "Fields that cannot be used together, for example `endpointSelector` with `nodeSelector`, or `ipBlock` with a selector in one peer.";
    // Semantic warnings over the whole tree.
    SelectsNothing = "PL601", "selects-nothing", Warning,
        "The policy's subject selects no workload that the tree declares: it has no effect on them.";
    ShadowedByDeny = "PL602", "shadowed-by-deny", Warning,
        "An allow rule that a deny rule of the same subject fully covers: it can never allow anything.";
    EgressToWorld = "PL603", "egress-to-world", Warning,
        "Egress to the whole Internet on every port: any compromised pod can exfiltrate data anywhere.";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding is: a span in a loaded file, or a bare path (I/O errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Span(Span),
    Path(PathBuf),
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: Location::Span(span),
            help: None,
        }
    }

    pub fn at_path(code: Code, path: PathBuf, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: Location::Path(path),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn span(&self) -> Option<Span> {
        match &self.location {
            Location::Span(s) => Some(*s),
            Location::Path(_) => None,
        }
    }

    /// A key that orders findings by file, position and code.
    pub fn sort_key(&self, sources: &SourceMap) -> (PathBuf, u32, u32, Code) {
        match &self.location {
            Location::Span(s) => (
                sources.path(s.file).to_path_buf(),
                s.start,
                s.end,
                self.code,
            ),
            Location::Path(p) => (p.clone(), 0, 0, self.code),
        }
    }
}

/// A finding resolved to a file and 1-based positions, ready for any output format.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LocatedDiagnostic {
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    pub help: String,
}

impl LocatedDiagnostic {
    pub fn new(d: &Diagnostic, sources: &SourceMap) -> LocatedDiagnostic {
        let (file, start, end) = match &d.location {
            Location::Span(s) => match sources.locate(*s) {
                Some((f, a, b)) => (f.path.display().to_string(), a, b),
                None => (String::new(), Default::default(), Default::default()),
            },
            Location::Path(p) => (
                p.display().to_string(),
                Default::default(),
                Default::default(),
            ),
        };
        let one = |v: u32| v.max(1);
        LocatedDiagnostic {
            code: d.code.as_str(),
            severity: d.severity.as_str(),
            message: d.message.clone(),
            file,
            line: one(start.line),
            column: one(start.column),
            end_line: one(end.line),
            end_column: one(end.column),
            help: d.help.clone().unwrap_or_default(),
        }
    }
}

impl Default for crate::source::LineCol {
    fn default() -> Self {
        crate::source::LineCol { line: 1, column: 1 }
    }
}
