//! Syntax rules for names, labels, CIDRs, ports, FQDNs, HTTP and ICMP values (pure functions).
//!
//! Each function checks one value against the rule upstream applies to it (Kubernetes
//! apimachinery validation, Cilium's policy API and CRD schema) and returns `Err` with a
//! lowercase, user-facing reason without a trailing period that names the broken rule. No
//! function panics, whatever the input; user text quoted in a reason is escaped with `{:?}`.

use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// A Kubernetes DNS label (RFC 1123), the longest allowed.
const DNS1123_LABEL_MAX: usize = 63;
/// A Kubernetes DNS subdomain (RFC 1123), the longest allowed.
const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// The name part of a qualified name, and a label value, the longest allowed.
const QUALIFIED_NAME_MAX: usize = 63;
/// An IANA service name (RFC 6335), the longest allowed.
const IANA_SVC_NAME_MAX: usize = 15;
/// A DNS name without its trailing dot, the longest that fits in 255 wire octets.
const DNS_NAME_MAX: usize = 253;
/// One DNS label, the longest allowed.
const DNS_LABEL_MAX: usize = 63;
/// Cilium's `MaxFQDNLength` (and the CRD's `maxLength`) for `matchName` and `matchPattern`.
const CILIUM_FQDN_MAX: usize = 255;
/// Compiled-size ceiling for HTTP regexes, so that a hostile pattern cannot take long.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn starts_and_ends_with(s: &str, ok: impl Fn(char) -> bool) -> bool {
    match (s.chars().next(), s.chars().next_back()) {
        (Some(first), Some(last)) => ok(first) && ok(last),
        _ => false,
    }
}

/// `must contain only <allowed> (found 'x')` for the first character `ok` refuses.
fn check_chars(s: &str, ok: impl Fn(char) -> bool, allowed: &str) -> Result<(), String> {
    match s.chars().find(|&c| !ok(c)) {
        Some(c) => Err(format!("must contain only {allowed} (found {c:?})")),
        None => Ok(()),
    }
}

/// Digits only, no sign, no leading zero unless the value is `0`.
fn parse_decimal(s: &str, max: u32) -> Result<u32, DecimalError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::NotDecimal);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(DecimalError::LeadingZero);
    }
    if s.len() > 10 {
        return Err(DecimalError::TooLarge);
    }
    match s.parse::<u64>() {
        Ok(v) if v <= u64::from(max) => u32::try_from(v).map_err(|_| DecimalError::TooLarge),
        Ok(_) => Err(DecimalError::TooLarge),
        Err(_) => Err(DecimalError::NotDecimal),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecimalError {
    NotDecimal,
    LeadingZero,
    TooLarge,
}

/// `; did you mean "x"?` when one candidate is a plausible typo of `word`, else nothing.
fn suggestion(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == items.len() { " or " } else { ", " });
        }
        let _ = write!(out, "{item:?}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Kubernetes names and labels
// ---------------------------------------------------------------------------------------------

/// An object name: a lowercase RFC 1123 subdomain (Kubernetes `IsDNS1123Subdomain`): at most
/// 253 characters of `a-z`, `0-9`, `-` and `.`, every dot-separated part starting and ending
/// with an alphanumeric character. Kubernetes does not limit the parts to 63 characters.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    check_chars(
        s,
        |c| is_lower_alnum(c) || c == '-' || c == '.',
        "lowercase letters, digits, '-' and '.'",
    )?;
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be at most {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if !starts_and_ends_with(s, is_lower_alnum) {
        return Err("must start and end with an alphanumeric character".into());
    }
    if s.contains("..") {
        return Err("must not contain consecutive dots".into());
    }
    if s.split('.')
        .any(|part| !starts_and_ends_with(part, is_lower_alnum))
    {
        return Err(
            "each dot-separated part must start and end with an alphanumeric character".into(),
        );
    }
    Ok(())
}

/// A namespace name: a lowercase RFC 1123 label (Kubernetes `IsDNS1123Label`): at most 63
/// characters of `a-z`, `0-9` and `-`, starting and ending with an alphanumeric character.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    check_chars(
        s,
        |c| is_lower_alnum(c) || c == '-',
        "lowercase letters, digits and '-'",
    )?;
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!("must be at most {DNS1123_LABEL_MAX} characters"));
    }
    if !starts_and_ends_with(s, is_lower_alnum) {
        return Err("must start and end with an alphanumeric character".into());
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// The shape shared by a qualified name's name part and a non-empty label value.
fn name_part(s: &str, what: &str) -> Result<(), String> {
    check_chars(s, is_name_char, "letters, digits, '-', '_' and '.'")
        .map_err(|e| format!("{what}{e}"))?;
    if s.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "{what}must be at most {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !starts_and_ends_with(s, |c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{what}must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Kubernetes `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if name.contains('/') {
        return Err(
            "must contain at most one '/', between a DNS subdomain prefix and the name".into(),
        );
    }
    let what = match prefix {
        Some(prefix) => {
            if prefix.is_empty() {
                return Err("prefix before '/' must not be empty".into());
            }
            dns1123_subdomain(prefix).map_err(|e| format!("prefix before '/' {e}"))?;
            "name after '/' "
        }
        None => "",
    };
    if name.is_empty() {
        return Err(format!("{what}must not be empty"));
    }
    name_part(name, what)
}

/// Label sources Cilium knows (`pkg/labels`), as written before ':' in a selector key.
pub const LABEL_SOURCES: &[&str] = &[
    "k8s",
    "any",
    "reserved",
    "cidr",
    "cidrgroup",
    "fqdn",
    "unspec",
    "container",
    "cni",
    "node",
    "directory",
    "gen",
    "cilium-generated",
];

/// A label key split into its optional Cilium source and the bare Kubernetes key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey<'a> {
    /// `k8s` for `k8s:app`, `reserved` for `reserved:host` and `$host`; `None` without one.
    pub source: Option<&'a str>,
    /// The key after the source, a Kubernetes qualified name.
    pub key: &'a str,
}

/// A label key as used in `matchLabels` and `matchExpressions`: a Kubernetes qualified name
/// (`[prefix/]name`, name at most 63 characters of letters, digits, `-`, `_`, `.` starting and
/// ending alphanumeric, prefix a DNS subdomain), optionally after one Cilium source such as
/// `k8s:` or `reserved:` (and Cilium's `$name` shorthand for `reserved:name`).
///
/// Text before the first ':' that has no '.' or '/' must be a known source; with a '.' or '/'
/// it is part of the key, which then fails on the ':'.
pub fn label_key(s: &str) -> Result<LabelKey<'_>, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(rest) = s.strip_prefix('$') {
        if rest.is_empty() {
            return Err("must name a reserved label after '$'".into());
        }
        qualified_name(rest)?;
        return Ok(LabelKey {
            source: Some("reserved"),
            key: rest,
        });
    }
    if let Some((source, rest)) = s.split_once(':') {
        if LABEL_SOURCES.contains(&source) {
            if rest.is_empty() {
                return Err(format!("must name a key after the {source:?} source"));
            }
            qualified_name(rest)?;
            return Ok(LabelKey {
                source: Some(source),
                key: rest,
            });
        }
        if source.is_empty() {
            return Err("must not start with ':' (a label source goes before it)".into());
        }
        if !source.contains('.') && !source.contains('/') {
            return Err(format!(
                "unknown label source {source:?} before ':' (known sources: {}){}",
                LABEL_SOURCES.join(", "),
                suggestion(source, LABEL_SOURCES)
            ));
        }
    }
    qualified_name(s)?;
    Ok(LabelKey {
        source: None,
        key: s,
    })
}

/// A label value (Kubernetes `IsValidLabelValue`): empty, or at most 63 characters of letters,
/// digits, `-`, `_` and `.` starting and ending with an alphanumeric character.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    name_part(s, "")
}

// ---------------------------------------------------------------------------------------------
// Ports and protocols
// ---------------------------------------------------------------------------------------------

/// The IANA service name rules (RFC 6335 5.1), as Kubernetes `IsValidPortName` checks them;
/// Cilium allows upper case too and compares case-insensitively.
fn svc_name_rules(s: &str, allow_upper: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if allow_upper {
        check_chars(
            s,
            |c| c.is_ascii_alphanumeric() || c == '-',
            "letters, digits and '-'",
        )?;
    } else {
        check_chars(
            s,
            |c| is_lower_alnum(c) || c == '-',
            "lowercase letters, digits and '-'",
        )?;
    }
    if s.len() > IANA_SVC_NAME_MAX {
        return Err(format!("must be at most {IANA_SVC_NAME_MAX} characters"));
    }
    if !s.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err("must contain at least one letter".into());
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// A named port in Kubernetes (`IsValidPortName`, an IANA service name): 1 to 15 characters of
/// `a-z`, `0-9` and `-`, at least one letter, no leading or trailing `-` and no `--`.
pub fn iana_svc_name(s: &str) -> Result<(), String> {
    svc_name_rules(s, false)
}

/// A Kubernetes port number: 1 to 65535.
pub fn port_number(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("must be between 1 and 65535, inclusive".into()),
    }
}

/// A port as Cilium's string `port` field holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSpec {
    /// `"0"`: every port.
    Any,
    Number(u16),
    /// A named port, lower-cased (Cilium compares names case-insensitively).
    Name(String),
}

/// Cilium's string `port`: a decimal number 0 to 65535 (`0` means every port) or an IANA
/// service name (letters in either case, returned lower-cased).
///
/// Numbers with a leading zero are refused: Cilium parses ports with Go's base prefixes, so
/// `"010"` would silently mean port 8.
pub fn port_or_name(s: &str) -> Result<PortSpec, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if unsigned.len() != s.len() {
            return Err("must be a port number between 0 and 65535 without a sign".into());
        }
        return match parse_decimal(s, u32::from(u16::MAX)) {
            Ok(0) => Ok(PortSpec::Any),
            Ok(n) => u16::try_from(n)
                .map(PortSpec::Number)
                .map_err(|_| "must be at most 65535".into()),
            Err(DecimalError::LeadingZero) => {
                Err("must not have leading zeros (cilium would read the number as octal)".into())
            }
            Err(_) => Err("must be at most 65535".into()),
        };
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') && s.contains('-') {
        return Err(
            "a port name must contain at least one letter; for a port range use port and endPort"
                .into(),
        );
    }
    match svc_name_rules(s, true) {
        Ok(()) => Ok(PortSpec::Name(s.to_ascii_lowercase())),
        Err(e) => Err(format!("must be a port number or a port name: {e}")),
    }
}

/// An L4 protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    /// Only from a Cilium `icmps` rule with family `IPv4`; never a `toPorts` protocol.
    Icmp,
    /// Only from a Cilium `icmps` rule with family `IPv6`; never a `toPorts` protocol.
    IcmpV6,
    /// Cilium's `ANY`: TCP, UDP and SCTP.
    Any,
}

const KUBERNETES_PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const CILIUM_PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP", "ANY"];

impl Protocol {
    /// The spelling upstream uses (`TCP`, `ICMPv6`, `ANY`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
            Protocol::IcmpV6 => "ICMPv6",
            Protocol::Any => "ANY",
        }
    }

    /// A Kubernetes `protocol`: exactly `TCP`, `UDP` or `SCTP` (case-sensitive).
    pub fn parse_kubernetes(s: &str) -> Result<Protocol, String> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            _ => Err(protocol_error(s, KUBERNETES_PROTOCOLS)),
        }
    }

    /// A Cilium `toPorts` protocol: exactly `TCP`, `UDP`, `SCTP` or `ANY`. The CRD schema's
    /// enum is case-sensitive (the agent would upper-case, but the API server rejects first),
    /// and ICMP cannot be matched in `toPorts` at all.
    pub fn parse_cilium(s: &str) -> Result<Protocol, String> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            "ANY" => Ok(Protocol::Any),
            _ if s.eq_ignore_ascii_case("ICMP") || s.eq_ignore_ascii_case("ICMPv6") => Err(
                "cannot match ICMP in toPorts; use an icmps rule with type and family fields"
                    .into(),
            ),
            _ => Err(protocol_error(s, CILIUM_PROTOCOLS)),
        }
    }
}

fn protocol_error(s: &str, allowed: &[&str]) -> String {
    if s.is_empty() {
        return format!("must not be empty; use {}", quoted_list(allowed));
    }
    match allowed.iter().find(|a| a.eq_ignore_ascii_case(s)) {
        Some(a) => format!("protocol names are case-sensitive: write {a:?}"),
        None => format!("must be {}", quoted_list(allowed)),
    }
}

// ---------------------------------------------------------------------------------------------
// CIDRs
// ---------------------------------------------------------------------------------------------

/// A parsed CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address as written with its prefix length; `net.trunc()` is the network it selects.
    pub net: IpNet,
    /// The address has bits set beyond the prefix (`10.0.0.1/8` selects `10.0.0.0/8`).
    pub host_bits_set: bool,
}

/// An IPv4 or IPv6 CIDR such as `10.0.0.0/8` or `2001:db8::/32`.
///
/// Kubernetes `ipBlock` and Cilium `toCIDRSet` require the `/` prefix length; Cilium's
/// `toCIDR`/`fromCIDR` also take a bare address, read as `/32` or `/128`
/// (`allow_bare_ip`). Octets with leading zeros, IPv6 zones and prefix lengths with leading
/// zeros are refused (as Go's `netip` does).
pub fn cidr(s: &str, allow_bare_ip: bool) -> Result<Cidr, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.trim() != s {
        return Err("must not have leading or trailing whitespace".into());
    }
    let (addr_text, len_text) = match s.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (s, None),
    };
    let addr = ip_address(addr_text)?;
    let (family, max) = match addr {
        IpAddr::V4(_) => ("IPv4", 32u8),
        IpAddr::V6(_) => ("IPv6", 128u8),
    };
    let prefix_len = match len_text {
        None if allow_bare_ip => max,
        None => {
            return Err(format!(
                "must be in CIDR notation address/prefix-length, for example \"{addr}/{max}\""
            ))
        }
        Some(text) => match parse_decimal(text, u32::from(max)) {
            Ok(n) => u8::try_from(n).map_err(|_| prefix_range_error(family, max))?,
            Err(DecimalError::TooLarge) => return Err(prefix_range_error(family, max)),
            Err(DecimalError::LeadingZero) => {
                return Err("prefix length must not have leading zeros".into())
            }
            Err(DecimalError::NotDecimal) if text.is_empty() => {
                return Err("prefix length after '/' must not be empty".into())
            }
            Err(DecimalError::NotDecimal) => {
                return Err("prefix length after '/' must be a decimal number".into())
            }
        },
    };
    let net = IpNet::new(addr, prefix_len).map_err(|_| prefix_range_error(family, max))?;
    Ok(Cidr {
        net,
        host_bits_set: net.addr() != net.network(),
    })
}

fn prefix_range_error(family: &str, max: u8) -> String {
    format!("prefix length is out of range: the maximum for {family} is {max}")
}

fn ip_address(s: &str) -> Result<IpAddr, String> {
    if s.is_empty() {
        return Err("must have an IP address before the '/'".into());
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(addr);
    }
    if s.contains(':') {
        if s.contains('%') {
            return Err("an IPv6 address must not have a zone ('%...')".into());
        }
        return Err("is not a valid IPv6 address".into());
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err("an IPv4 address must have four parts separated by '.'".into());
    }
    for part in parts {
        match parse_decimal(part, 255) {
            Ok(_) => {}
            Err(DecimalError::LeadingZero) => {
                return Err("an IPv4 address must not have parts with leading zeros".into())
            }
            Err(DecimalError::TooLarge) => {
                return Err("each part of an IPv4 address must be at most 255".into())
            }
            Err(DecimalError::NotDecimal) => {
                return Err("the parts of an IPv4 address must be decimal numbers".into())
            }
        }
    }
    Err("is not a valid IP address".into())
}

/// Whether every address of `inner` is in `outer` (false across address families). Host bits
/// of either side are ignored.
pub fn cidr_contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.contains(inner)
}

// ---------------------------------------------------------------------------------------------
// FQDNs
// ---------------------------------------------------------------------------------------------

fn is_dns_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Dot placement and lengths shared by names and patterns; `body` has no trailing dot.
fn dns_labels(body: &str) -> Result<(), String> {
    if body.starts_with('.') {
        return Err("must not start with '.'".into());
    }
    if body.split('.').any(str::is_empty) {
        return Err("must not contain consecutive dots".into());
    }
    if body
        .split('.')
        .any(|label| label.chars().filter(|&c| c != '*').count() > DNS_LABEL_MAX)
    {
        return Err(format!(
            "each dot-separated label must be at most {DNS_LABEL_MAX} characters"
        ));
    }
    Ok(())
}

/// Cilium `matchName`: a DNS name of letters, digits, `-`, `_` and `.`, with an optional
/// trailing dot. Cilium's schema allows 255 characters; a name that can match a real DNS
/// answer is at most 253 (without the trailing dot) with labels of at most 63, so those are
/// enforced too.
pub fn fqdn_match_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains('*') {
        return Err("must not contain '*' (wildcards belong in matchPattern)".into());
    }
    check_chars(
        s,
        |c| is_dns_char(c) || c == '.',
        "letters, digits, '-', '_' and '.'",
    )?;
    let body = s.strip_suffix('.').unwrap_or(s);
    if body.is_empty() {
        return Err("must have at least one label".into());
    }
    if body.len() > DNS_NAME_MAX {
        return Err(format!(
            "must be at most {DNS_NAME_MAX} characters, not counting a trailing dot"
        ));
    }
    dns_labels(body)
}

/// What a valid `matchPattern` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FqdnPatternKind {
    /// Only stars (`*`, `**.`, ...): every name.
    MatchAll,
    /// A `**.` prefix (newer Cilium): one or more labels in front of the rest.
    Subdomains,
    /// Has `*` inside: zero or more DNS characters within one label.
    Wildcard,
    /// No `*`: one literal name, as `matchName` would.
    Exact,
}

/// Cilium `matchPattern`: the `matchName` alphabet plus `*`. A pattern of stars alone matches
/// every name; a leading `**.` matches one or more labels; any other `*` matches zero or more
/// DNS characters within a label (runs of `*` act as one). At most 255 characters.
pub fn fqdn_match_pattern(s: &str) -> Result<FqdnPatternKind, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(is_dns_char(c) || c == '.' || c == '*'))
    {
        let hint = if "[](){}+?|^$\\,".contains(c) {
            "; matchPattern is not a regex, only '*' is a wildcard"
        } else {
            ""
        };
        return Err(format!(
            "must contain only letters, digits, '-', '_', '.' and '*' (found {c:?}){hint}"
        ));
    }
    if s.len() > CILIUM_FQDN_MAX {
        return Err(format!("must be at most {CILIUM_FQDN_MAX} characters"));
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    if body.is_empty() {
        return Err("must have at least one label".into());
    }
    if body.chars().all(|c| c == '*') {
        return Ok(FqdnPatternKind::MatchAll);
    }
    dns_labels(body)?;
    let stars = body.chars().take_while(|&c| c == '*').count();
    if stars >= 2 && body.trim_start_matches('*').starts_with('.') {
        return Ok(FqdnPatternKind::Subdomains);
    }
    if body.contains('*') {
        Ok(FqdnPatternKind::Wildcard)
    } else {
        Ok(FqdnPatternKind::Exact)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// The one-line reason of a `regex` error (the crate's text spans several lines).
fn regex_error_line(err: &regex::Error) -> String {
    let text = match err {
        regex::Error::CompiledTooBig(limit) => {
            format!("is too large once compiled (limit {limit} bytes)")
        }
        other => {
            let full = other.to_string();
            let line = full
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error:").map(str::trim))
                .or_else(|| full.lines().map(str::trim).rfind(|l| !l.is_empty()))
                .unwrap_or("does not compile");
            line.to_string()
        }
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "does not compile".into(),
    }
}

fn compile_regex(s: &str) -> Result<(), String> {
    // Trees repeat the same few methods and paths: each thread remembers the verdicts.
    thread_local! {
        static VERDICTS: std::cell::RefCell<std::collections::HashMap<String, Result<(), String>>> =
            Default::default();
    }
    VERDICTS.with(|verdicts| {
        let mut verdicts = verdicts.borrow_mut();
        if let Some(verdict) = verdicts.get(s) {
            return verdict.clone();
        }
        let verdict = compile_regex_uncached(s);
        // Bounded: a long-lived process checks one revision after another.
        if verdicts.len() >= 4096 {
            verdicts.clear();
        }
        verdicts.insert(s.to_owned(), verdict.clone());
        verdict
    })
}

fn compile_regex_uncached(s: &str) -> Result<(), String> {
    regex::RegexBuilder::new(s)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "is not a valid regular expression: {}",
                regex_error_line(&e)
            )
        })
}

/// Cilium `method`: a regular expression matched against the whole request method (a method
/// token such as `GET` is one; so is `GET|POST`). It must compile; an empty one would allow
/// every method, so omit the field instead.
pub fn http_method(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (omit the field to allow every method)".into());
    }
    // Methods are tokens: whitespace, or a comma outside a `{m,n}` repetition, can never match.
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth <= 0 => {
                return Err("a method never contains `,`; separate alternatives with `|`".into())
            }
            c if c.is_whitespace() => {
                return Err(
                    "a method never contains whitespace; separate alternatives with `|`".into(),
                )
            }
            _ => {}
        }
    }
    compile_regex(s)
}

/// Cilium `path`: a regular expression matched against the request path. It must compile (RE2
/// syntax upstream; the `regex` crate's is close); the reason is the compiler's message.
pub fn http_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (omit the field to allow every path)".into());
    }
    compile_regex(s)
}

/// A Cilium `headers` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpHeader<'a> {
    pub name: &'a str,
    /// `None`: the header only has to be present; `Some`: its value must equal this exactly.
    pub value: Option<&'a str>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Cilium `headers` entry: `Name` (the header must be present) or `Name: value` (it must have
/// exactly that value). Cilium splits at the first space and drops trailing colons from the
/// name, so the space after the colon is required. The name must be an RFC 7230 token, or a
/// pseudo-header such as `:authority`.
pub fn http_header(s: &str) -> Result<HttpHeader<'_>, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let (name, value) = match s.split_once(' ') {
        Some((name, value)) => (name.trim_end_matches(':'), Some(value)),
        None => (s, None),
    };
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    let token = name.strip_prefix(':').unwrap_or(name);
    if token.is_empty() {
        return Err("header name must not be empty".into());
    }
    if token.contains(':') {
        return Err(
            "header name must not contain ':'; write \"Name: value\" with a space after the colon"
                .into(),
        );
    }
    if let Some(c) = token.chars().find(|&c| !is_tchar(c)) {
        return Err(format!(
            "header name must contain only letters, digits and !#$%&'*+-.^_`|~ (found {c:?})"
        ));
    }
    if let Some(v) = value {
        if v.chars().any(|c| c.is_control() && c != '\t') {
            return Err("header value must not contain control characters".into());
        }
    }
    Ok(HttpHeader { name, value })
}

// ---------------------------------------------------------------------------------------------
// ICMP
// ---------------------------------------------------------------------------------------------

/// The IP family of a Cilium ICMP field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IcmpFamily {
    V4,
    V6,
}

impl IcmpFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            IcmpFamily::V4 => "IPv4",
            IcmpFamily::V6 => "IPv6",
        }
    }

    /// `ICMP` for IPv4, `ICMPv6` for IPv6.
    pub fn protocol(self) -> Protocol {
        match self {
            IcmpFamily::V4 => Protocol::Icmp,
            IcmpFamily::V6 => Protocol::IcmpV6,
        }
    }

    /// The type names Cilium knows for this family, with their numbers.
    pub fn type_names(self) -> &'static [(&'static str, u8)] {
        match self {
            IcmpFamily::V4 => ICMPV4_TYPES,
            IcmpFamily::V6 => ICMPV6_TYPES,
        }
    }
}

/// Cilium ICMP `family`: exactly `IPv4` or `IPv6` (the CRD enum is case-sensitive; an omitted
/// family means `IPv4`).
pub fn icmp_family(s: &str) -> Result<IcmpFamily, String> {
    match s {
        "IPv4" => Ok(IcmpFamily::V4),
        "IPv6" => Ok(IcmpFamily::V6),
        _ if s.eq_ignore_ascii_case("IPv4") => {
            Err("family is case-sensitive: write \"IPv4\"".into())
        }
        _ if s.eq_ignore_ascii_case("IPv6") => {
            Err("family is case-sensitive: write \"IPv6\"".into())
        }
        _ => Err("must be \"IPv4\" or \"IPv6\"".into()),
    }
}

/// IPv4 ICMP type names Cilium maps to numbers (`pkg/policy/api/icmp.go`).
const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// IPv6 ICMP type names Cilium maps to numbers (`pkg/policy/api/icmp.go`).
const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

/// Names in Cilium's tables that the CRD's `type` pattern does not let through (it lists
/// `"ExtendedEcho Reply"`, with a space, instead).
const ICMP_NAMES_REJECTED_BY_CRD: &[&str] = &["ExtendedEchoReply"];

/// A YAML scalar that may be an integer or a string (Kubernetes `IntOrString`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntOrString<'a> {
    Int(i64),
    Str(&'a str),
}

/// Cilium ICMP `type`: an integer 0 to 255 (or the same as a decimal string) or one of the
/// family's CamelCase type names (case-sensitive).
pub fn icmp_type(family: IcmpFamily, value: IntOrString<'_>) -> Result<u8, String> {
    let s = match value {
        IntOrString::Int(n) => {
            return u8::try_from(n).map_err(|_| "must be between 0 and 255".into())
        }
        IntOrString::Str(s) => s,
    };
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match parse_decimal(s, 255) {
            Ok(n) => u8::try_from(n).map_err(|_| "must be between 0 and 255".into()),
            Err(DecimalError::LeadingZero) => Err("must not have leading zeros".into()),
            Err(_) => Err("must be between 0 and 255".into()),
        };
    }
    let table = family.type_names();
    if let Some(&(name, number)) = table.iter().find(|(name, _)| *name == s) {
        if ICMP_NAMES_REJECTED_BY_CRD.contains(&name) {
            return Err(format!(
                "type name {name:?} is refused by cilium's CRD schema; write the number {number}"
            ));
        }
        return Ok(number);
    }
    if let Some((name, _)) = table.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)) {
        return Err(format!("type names are case-sensitive: write {name:?}"));
    }
    let other = match family {
        IcmpFamily::V4 => IcmpFamily::V6,
        IcmpFamily::V6 => IcmpFamily::V4,
    };
    if other.type_names().iter().any(|(name, _)| *name == s) {
        return Err(format!(
            "type name {s:?} belongs to {}, not {}",
            other.as_str(),
            family.as_str()
        ));
    }
    let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "must be a number between 0 and 255 or an {} ICMP type name{}",
        family.as_str(),
        suggestion(s, &names)
    ))
}

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

/// A Cilium entity (`toEntities`, `fromEntities`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    All,
    World,
    WorldIpv4,
    WorldIpv6,
    Cluster,
    Host,
    RemoteNode,
    KubeApiserver,
    Init,
    Health,
    Unmanaged,
    Ingress,
    None,
}

impl Entity {
    /// Every entity the Cilium agent knows, in upstream order.
    pub const ALL: [Entity; 13] = [
        Entity::All,
        Entity::World,
        Entity::WorldIpv4,
        Entity::WorldIpv6,
        Entity::Cluster,
        Entity::Host,
        Entity::RemoteNode,
        Entity::KubeApiserver,
        Entity::Init,
        Entity::Health,
        Entity::Unmanaged,
        Entity::Ingress,
        Entity::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::All => "all",
            Entity::World => "world",
            Entity::WorldIpv4 => "world-ipv4",
            Entity::WorldIpv6 => "world-ipv6",
            Entity::Cluster => "cluster",
            Entity::Host => "host",
            Entity::RemoteNode => "remote-node",
            Entity::KubeApiserver => "kube-apiserver",
            Entity::Init => "init",
            Entity::Health => "health",
            Entity::Unmanaged => "unmanaged",
            Entity::Ingress => "ingress",
            Entity::None => "none",
        }
    }

    /// Whether the CiliumNetworkPolicy CRD's enum lists it. `world-ipv4` and `world-ipv6` are
    /// known to the agent but missing from the CRD enum, so the API server refuses them.
    pub fn in_crd_enum(self) -> bool {
        !matches!(self, Entity::WorldIpv4 | Entity::WorldIpv6)
    }
}

/// A Cilium entity name, case-sensitive (`world`, `remote-node`, `kube-apiserver`, ...).
pub fn entity(s: &str) -> Result<Entity, String> {
    if let Some(e) = Entity::ALL.iter().find(|e| e.as_str() == s) {
        return Ok(*e);
    }
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let names: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
    match names.iter().find(|n| n.eq_ignore_ascii_case(s)) {
        Some(n) => Err(format!("entity names are case-sensitive: write {n:?}")),
        None => Err(format!(
            "unknown entity (known entities: {}){}",
            names.join(", "),
            suggestion(s, &names)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Suggestions
// ---------------------------------------------------------------------------------------------

/// The candidate `word` is most plausibly a typo of: an ASCII-case-insensitive match first,
/// else the closest by optimal-string-alignment distance (ties broken by Jaro-Winkler), when
/// that distance is at most a quarter of the word's length (at least 1, at most 3). A
/// two-character word only suggests a three-character candidate (`k8` gives `k8s`); a
/// one-character word only matches case-insensitively.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.is_empty() {
        return None;
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c);
    }
    let lower = word.to_lowercase();
    let len = lower.chars().count();
    if len < 2 {
        return None;
    }
    let threshold = (len / 4).clamp(1, 3);
    let mut best: Option<(usize, f64, &'a str)> = None;
    for &candidate in candidates {
        let cand = candidate.to_lowercase();
        let cand_len = cand.chars().count();
        // A two-character word only suggests a candidate it is missing one character of.
        if cand_len.abs_diff(len) > threshold || (len == 2 && cand_len != 3) {
            continue;
        }
        let distance = strsim::osa_distance(&lower, &cand);
        if distance > threshold {
            continue;
        }
        let similarity = strsim::jaro_winkler(&lower, &cand);
        let better = match best {
            None => true,
            Some((d, s, _)) => distance < d || (distance == d && similarity > s),
        };
        if better {
            best = Some((distance, similarity, candidate));
        }
    }
    best.map(|(_, _, c)| c)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T, String>) -> String {
        match r {
            Ok(v) => format!("unexpectedly ok: {v:?}"),
            Err(e) => e,
        }
    }

    /// Every reason is lowercase-first (except quoted names) and has no trailing period.
    fn assert_style(reason: &str) {
        assert!(!reason.is_empty());
        assert!(!reason.ends_with('.'), "trailing period: {reason}");
        assert!(!reason.contains('\n'), "multi-line: {reason}");
        let first = reason.chars().next().unwrap_or(' ');
        assert!(!first.is_uppercase(), "uppercase start: {reason}");
    }

    fn net(s: &str) -> IpNet {
        match s.parse() {
            Ok(n) => n,
            Err(e) => panic!("bad test net {s}: {e}"),
        }
    }

    #[test]
    fn subdomain() {
        assert_eq!(dns1123_subdomain("a"), Ok(()));
        assert_eq!(dns1123_subdomain("my-app.example.com"), Ok(()));
        assert_eq!(dns1123_subdomain("0"), Ok(()));
        // Parts are not limited to 63 characters in Kubernetes.
        assert_eq!(dns1123_subdomain(&"a".repeat(100)), Ok(()));
        assert_eq!(dns1123_subdomain(&"a".repeat(253)), Ok(()));
        assert_eq!(
            err(dns1123_subdomain(&"a".repeat(254))),
            "must be at most 253 characters"
        );
        assert_eq!(err(dns1123_subdomain("")), "must not be empty");
        assert_eq!(
            err(dns1123_subdomain("My-App")),
            "must contain only lowercase letters, digits, '-' and '.' (found 'M')"
        );
        assert_eq!(
            err(dns1123_subdomain("-app")),
            "must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(dns1123_subdomain("app.")),
            "must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(dns1123_subdomain("a..b")),
            "must not contain consecutive dots"
        );
        assert_eq!(
            err(dns1123_subdomain("a.-b")),
            "each dot-separated part must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(dns1123_subdomain("café")),
            "must contain only lowercase letters, digits, '-' and '.' (found 'é')"
        );
        assert_eq!(
            err(dns1123_subdomain("a_b")),
            "must contain only lowercase letters, digits, '-' and '.' (found '_')"
        );
        assert_style(&err(dns1123_subdomain("a\nb")));
        assert!(err(dns1123_subdomain("a\nb")).contains("'\\n'"));
    }

    #[test]
    fn label() {
        assert_eq!(dns1123_label("kube-system"), Ok(()));
        assert_eq!(dns1123_label("a"), Ok(()));
        assert_eq!(dns1123_label("1"), Ok(()));
        assert_eq!(dns1123_label(&"a".repeat(63)), Ok(()));
        assert_eq!(
            err(dns1123_label(&"a".repeat(64))),
            "must be at most 63 characters"
        );
        assert_eq!(err(dns1123_label("")), "must not be empty");
        assert_eq!(
            err(dns1123_label("a.b")),
            "must contain only lowercase letters, digits and '-' (found '.')"
        );
        assert_eq!(
            err(dns1123_label("ab-")),
            "must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(dns1123_label("Ünïcode")),
            "must contain only lowercase letters, digits and '-' (found 'Ü')"
        );
    }

    #[test]
    fn label_keys() {
        let plain = LabelKey {
            source: None,
            key: "app",
        };
        assert_eq!(label_key("app"), Ok(plain));
        assert_eq!(
            label_key("app.kubernetes.io/name"),
            Ok(LabelKey {
                source: None,
                key: "app.kubernetes.io/name"
            })
        );
        assert_eq!(
            label_key("k8s:io.kubernetes.pod.namespace"),
            Ok(LabelKey {
                source: Some("k8s"),
                key: "io.kubernetes.pod.namespace"
            })
        );
        assert_eq!(
            label_key("reserved:host"),
            Ok(LabelKey {
                source: Some("reserved"),
                key: "host"
            })
        );
        assert_eq!(
            label_key("$host"),
            Ok(LabelKey {
                source: Some("reserved"),
                key: "host"
            })
        );
        assert_eq!(
            label_key("any:app.kubernetes.io/part-of"),
            Ok(LabelKey {
                source: Some("any"),
                key: "app.kubernetes.io/part-of"
            })
        );
        for source in LABEL_SOURCES {
            let key = format!("{source}:app");
            assert_eq!(
                label_key(&key).map(|k| (k.source, k.key)),
                Ok((Some(*source), "app"))
            );
        }
        assert_eq!(
            label_key("A_b.C-9"),
            Ok(LabelKey {
                source: None,
                key: "A_b.C-9"
            })
        );
        // Only one source is stripped.
        assert!(label_key("k8s:k8s:app").is_err());
        assert_eq!(err(label_key("")), "must not be empty");
        assert_eq!(
            err(label_key("k8s:")),
            "must name a key after the \"k8s\" source"
        );
        assert_eq!(
            err(label_key(":app")),
            "must not start with ':' (a label source goes before it)"
        );
        let unknown = err(label_key("k8:app"));
        assert!(
            unknown
                .starts_with("unknown label source \"k8\" before ':' (known sources: k8s, any, "),
            "{unknown}"
        );
        assert!(unknown.ends_with("); did you mean \"k8s\"?"), "{unknown}");
        assert_style(&unknown);
        assert!(err(label_key("foo:bar")).starts_with("unknown label source \"foo\""));
        // Text before ':' with '.' or '/' is not a source; the key then fails on ':'.
        assert_eq!(
            err(label_key("example.com:app")),
            "must contain only letters, digits, '-', '_' and '.' (found ':')"
        );
        assert_eq!(
            err(label_key("example.com/a:b")),
            "name after '/' must contain only letters, digits, '-', '_' and '.' (found ':')"
        );
        assert_eq!(
            err(label_key("a/b/c")),
            "must contain at most one '/', between a DNS subdomain prefix and the name"
        );
        assert_eq!(
            err(label_key("/app")),
            "prefix before '/' must not be empty"
        );
        assert_eq!(
            err(label_key("example.com/")),
            "name after '/' must not be empty"
        );
        assert_eq!(
            err(label_key("Example.com/app")),
            "prefix before '/' must contain only lowercase letters, digits, '-' and '.' (found 'E')"
        );
        assert_eq!(
            label_key(&format!("{}/{}", "a".repeat(253), "b".repeat(63))).map(|k| k.key.len()),
            Ok(317)
        );
        assert_eq!(
            err(label_key(&"a".repeat(64))),
            "must be at most 63 characters"
        );
        assert_eq!(
            err(label_key(&format!("{}/a", "a".repeat(254)))),
            "prefix before '/' must be at most 253 characters"
        );
        assert_eq!(
            err(label_key("-app")),
            "must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(label_key("app😀")),
            "must contain only letters, digits, '-', '_' and '.' (found '😀')"
        );
        assert_eq!(err(label_key("$")), "must name a reserved label after '$'");
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("MyValue"), Ok(()));
        assert_eq!(label_value("my_value.v-1"), Ok(()));
        assert_eq!(label_value("1"), Ok(()));
        assert_eq!(label_value(&"x".repeat(63)), Ok(()));
        assert_eq!(
            err(label_value(&"x".repeat(64))),
            "must be at most 63 characters"
        );
        assert_eq!(
            err(label_value("_x")),
            "must start and end with an alphanumeric character"
        );
        assert_eq!(
            err(label_value("a b")),
            "must contain only letters, digits, '-', '_' and '.' (found ' ')"
        );
        assert_eq!(
            err(label_value("naïve")),
            "must contain only letters, digits, '-', '_' and '.' (found 'ï')"
        );
    }

    #[test]
    fn svc_names() {
        assert_eq!(iana_svc_name("http"), Ok(()));
        assert_eq!(iana_svc_name("http-8080"), Ok(()));
        assert_eq!(iana_svc_name("a"), Ok(()));
        assert_eq!(iana_svc_name("abcdefghijklmno"), Ok(()));
        assert_eq!(
            err(iana_svc_name("abcdefghijklmnop")),
            "must be at most 15 characters"
        );
        assert_eq!(err(iana_svc_name("")), "must not be empty");
        assert_eq!(
            err(iana_svc_name("8080")),
            "must contain at least one letter"
        );
        assert_eq!(
            err(iana_svc_name("a--b")),
            "must not contain consecutive hyphens"
        );
        assert_eq!(
            err(iana_svc_name("-ab")),
            "must not begin or end with a hyphen"
        );
        assert_eq!(
            err(iana_svc_name("ab-")),
            "must not begin or end with a hyphen"
        );
        assert_eq!(
            err(iana_svc_name("HTTP")),
            "must contain only lowercase letters, digits and '-' (found 'H')"
        );
        assert_eq!(
            err(iana_svc_name("h_t")),
            "must contain only lowercase letters, digits and '-' (found '_')"
        );
        assert_eq!(
            err(iana_svc_name("hétp")),
            "must contain only lowercase letters, digits and '-' (found 'é')"
        );
    }

    #[test]
    fn port_numbers() {
        assert_eq!(port_number(1), Ok(1));
        assert_eq!(port_number(65535), Ok(65535));
        assert_eq!(
            err(port_number(0)),
            "must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            err(port_number(65536)),
            "must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            err(port_number(-1)),
            "must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            err(port_number(i64::MIN)),
            "must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            err(port_number(i64::MAX)),
            "must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn cilium_ports() {
        assert_eq!(port_or_name("0"), Ok(PortSpec::Any));
        assert_eq!(port_or_name("80"), Ok(PortSpec::Number(80)));
        assert_eq!(port_or_name("65535"), Ok(PortSpec::Number(65535)));
        assert_eq!(port_or_name("http"), Ok(PortSpec::Name("http".into())));
        assert_eq!(
            port_or_name("HTTP-Alt"),
            Ok(PortSpec::Name("http-alt".into()))
        );
        assert_eq!(port_or_name("0x10"), Ok(PortSpec::Name("0x10".into())));
        assert_eq!(err(port_or_name("65536")), "must be at most 65535");
        assert_eq!(
            err(port_or_name("99999999999999999999")),
            "must be at most 65535"
        );
        assert_eq!(
            err(port_or_name("010")),
            "must not have leading zeros (cilium would read the number as octal)"
        );
        assert_eq!(err(port_or_name("00")), err(port_or_name("010")));
        assert_eq!(err(port_or_name("")), "must not be empty");
        assert_eq!(
            err(port_or_name("-1")),
            "must be a port number between 0 and 65535 without a sign"
        );
        assert_eq!(
            err(port_or_name("+80")),
            "must be a port number between 0 and 65535 without a sign"
        );
        assert_eq!(
            err(port_or_name("1000-2000")),
            "a port name must contain at least one letter; for a port range use port and endPort"
        );
        assert_eq!(
            err(port_or_name("80/tcp")),
            "must be a port number or a port name: must contain only letters, digits and '-' (found '/')"
        );
        assert_eq!(
            err(port_or_name("1_000")),
            "must be a port number or a port name: must contain only letters, digits and '-' (found '_')"
        );
        assert_eq!(
            err(port_or_name("averyveryverylongname")),
            "must be a port number or a port name: must be at most 15 characters"
        );
        assert_eq!(
            err(port_or_name(" 80")),
            "must be a port number or a port name: must contain only letters, digits and '-' (found ' ')"
        );
        assert_eq!(
            err(port_or_name("８０")),
            "must be a port number or a port name: must contain only letters, digits and '-' (found '８')"
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(Protocol::parse_kubernetes("TCP"), Ok(Protocol::Tcp));
        assert_eq!(Protocol::parse_kubernetes("UDP"), Ok(Protocol::Udp));
        assert_eq!(Protocol::parse_kubernetes("SCTP"), Ok(Protocol::Sctp));
        assert_eq!(
            err(Protocol::parse_kubernetes("tcp")),
            "protocol names are case-sensitive: write \"TCP\""
        );
        assert_eq!(
            err(Protocol::parse_kubernetes("ANY")),
            "must be \"TCP\", \"UDP\" or \"SCTP\""
        );
        assert_eq!(
            err(Protocol::parse_kubernetes("")),
            "must not be empty; use \"TCP\", \"UDP\" or \"SCTP\""
        );
        assert_eq!(Protocol::parse_cilium("ANY"), Ok(Protocol::Any));
        assert_eq!(Protocol::parse_cilium("SCTP"), Ok(Protocol::Sctp));
        assert_eq!(
            err(Protocol::parse_cilium("any")),
            "protocol names are case-sensitive: write \"ANY\""
        );
        assert!(err(Protocol::parse_cilium("ICMP")).starts_with("cannot match ICMP in toPorts"));
        assert!(err(Protocol::parse_cilium("icmpv6")).starts_with("cannot match ICMP in toPorts"));
        assert_eq!(
            err(Protocol::parse_cilium("GRE")),
            "must be \"TCP\", \"UDP\", \"SCTP\" or \"ANY\""
        );
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Any] {
            assert_eq!(Protocol::parse_cilium(p.as_str()), Ok(p));
        }
        assert_eq!(Protocol::IcmpV6.as_str(), "ICMPv6");
    }

    #[test]
    fn cidrs() {
        let c = cidr("10.0.0.0/8", false);
        assert_eq!(
            c,
            Ok(Cidr {
                net: net("10.0.0.0/8"),
                host_bits_set: false
            })
        );
        let c = cidr("10.1.2.3/8", false);
        assert_eq!(
            c.map(|c| (c.host_bits_set, c.net.trunc())),
            Ok((true, net("10.0.0.0/8")))
        );
        assert_eq!(cidr("0.0.0.0/0", false).map(|c| c.net.prefix_len()), Ok(0));
        assert_eq!(
            cidr("1.2.3.4/32", false).map(|c| c.host_bits_set),
            Ok(false)
        );
        assert_eq!(
            cidr("2001:db8::/32", false).map(|c| c.net),
            Ok(net("2001:db8::/32"))
        );
        assert_eq!(cidr("::/0", false).map(|c| c.net), Ok(net("::/0")));
        assert_eq!(
            cidr("2001:db8::1/64", false).map(|c| c.host_bits_set),
            Ok(true)
        );
        assert_eq!(
            cidr("::ffff:10.0.0.0/104", false).map(|c| c.net.prefix_len()),
            Ok(104)
        );
        assert_eq!(cidr("1.2.3.4", true).map(|c| c.net), Ok(net("1.2.3.4/32")));
        assert_eq!(cidr("fe80::1", true).map(|c| c.net), Ok(net("fe80::1/128")));
        assert_eq!(
            err(cidr("1.2.3.4", false)),
            "must be in CIDR notation address/prefix-length, for example \"1.2.3.4/32\""
        );
        assert_eq!(
            err(cidr("10.0.0.0/33", false)),
            "prefix length is out of range: the maximum for IPv4 is 32"
        );
        assert_eq!(
            err(cidr("::/129", false)),
            "prefix length is out of range: the maximum for IPv6 is 128"
        );
        assert_eq!(
            err(cidr("::/99999999999999999999999", false)),
            "prefix length is out of range: the maximum for IPv6 is 128"
        );
        assert_eq!(
            err(cidr("10.0.0.0/08", false)),
            "prefix length must not have leading zeros"
        );
        assert_eq!(
            err(cidr("10.0.0.0/", false)),
            "prefix length after '/' must not be empty"
        );
        assert_eq!(
            err(cidr("10.0.0.0/-1", false)),
            "prefix length after '/' must be a decimal number"
        );
        assert_eq!(
            err(cidr("10.0.0.0/8/9", false)),
            "prefix length after '/' must be a decimal number"
        );
        assert_eq!(
            err(cidr("/8", false)),
            "must have an IP address before the '/'"
        );
        assert_eq!(err(cidr("", true)), "must not be empty");
        assert_eq!(
            err(cidr(" 10.0.0.0/8", false)),
            "must not have leading or trailing whitespace"
        );
        assert_eq!(
            err(cidr("010.0.0.0/8", false)),
            "an IPv4 address must not have parts with leading zeros"
        );
        assert_eq!(
            err(cidr("256.0.0.0/8", false)),
            "each part of an IPv4 address must be at most 255"
        );
        assert_eq!(
            err(cidr("10.0.0/8", false)),
            "an IPv4 address must have four parts separated by '.'"
        );
        assert_eq!(
            err(cidr("10.0.0.x/8", false)),
            "the parts of an IPv4 address must be decimal numbers"
        );
        assert_eq!(
            err(cidr("2001:db8:::/32", false)),
            "is not a valid IPv6 address"
        );
        assert_eq!(
            err(cidr("fe80::1%eth0/64", false)),
            "an IPv6 address must not have a zone ('%...')"
        );
        assert_eq!(
            err(cidr("１.2.3.4/8", false)),
            "the parts of an IPv4 address must be decimal numbers"
        );
        assert_eq!(
            err(cidr("example.com/8", false)),
            "an IPv4 address must have four parts separated by '.'"
        );
    }

    #[test]
    fn containment() {
        assert!(cidr_contains(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(cidr_contains(&net("10.0.0.0/8"), &net("10.0.0.0/8")));
        assert!(cidr_contains(&net("10.9.9.9/8"), &net("10.1.0.0/16")));
        assert!(cidr_contains(&net("0.0.0.0/0"), &net("192.168.1.1/32")));
        assert!(!cidr_contains(&net("10.1.0.0/16"), &net("10.0.0.0/8")));
        assert!(!cidr_contains(&net("10.0.0.0/8"), &net("11.0.0.0/8")));
        assert!(!cidr_contains(&net("0.0.0.0/0"), &net("::/0")));
        assert!(!cidr_contains(&net("::/0"), &net("10.0.0.0/8")));
        assert!(cidr_contains(
            &net("2001:db8::/32"),
            &net("2001:db8:1::/48")
        ));
        assert!(!cidr_contains(
            &net("2001:db8:1::/48"),
            &net("2001:db8::/32")
        ));
    }

    #[test]
    fn fqdn_names() {
        assert_eq!(fqdn_match_name("cilium.io"), Ok(()));
        assert_eq!(fqdn_match_name("cilium.io."), Ok(()));
        assert_eq!(fqdn_match_name("_http._tcp.cilium.io"), Ok(()));
        assert_eq!(fqdn_match_name("www.xn--e28h.com"), Ok(()));
        assert_eq!(fqdn_match_name("API.Example.COM"), Ok(()));
        assert_eq!(fqdn_match_name("localhost"), Ok(()));
        assert_eq!(err(fqdn_match_name("")), "must not be empty");
        assert_eq!(err(fqdn_match_name(".")), "must have at least one label");
        assert_eq!(
            err(fqdn_match_name(".cilium.io")),
            "must not start with '.'"
        );
        assert_eq!(
            err(fqdn_match_name("cilium..io")),
            "must not contain consecutive dots"
        );
        assert_eq!(
            err(fqdn_match_name("cilium.io..")),
            "must not contain consecutive dots"
        );
        assert_eq!(
            err(fqdn_match_name("*.cilium.io")),
            "must not contain '*' (wildcards belong in matchPattern)"
        );
        assert_eq!(
            err(fqdn_match_name("😀.com")),
            "must contain only letters, digits, '-', '_' and '.' (found '😀')"
        );
        assert_eq!(
            err(fqdn_match_name("cilium.io ")),
            "must contain only letters, digits, '-', '_' and '.' (found ' ')"
        );
        let label63 = "a".repeat(63);
        let max = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
        assert_eq!(max.len(), 253);
        assert_eq!(fqdn_match_name(&max), Ok(()));
        assert_eq!(fqdn_match_name(&format!("{max}.")), Ok(()));
        assert_eq!(
            err(fqdn_match_name(&format!("{max}a"))),
            "must be at most 253 characters, not counting a trailing dot"
        );
        assert_eq!(
            err(fqdn_match_name(&format!("{}.com", "a".repeat(64)))),
            "each dot-separated label must be at most 63 characters"
        );
    }

    #[test]
    fn fqdn_patterns() {
        use FqdnPatternKind::*;
        assert_eq!(fqdn_match_pattern("*"), Ok(MatchAll));
        assert_eq!(fqdn_match_pattern("*."), Ok(MatchAll));
        assert_eq!(fqdn_match_pattern("**."), Ok(MatchAll));
        assert_eq!(fqdn_match_pattern("***"), Ok(MatchAll));
        assert_eq!(fqdn_match_pattern("*.cilium.io"), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("*cilium.io"), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("sub*.cilium.io"), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("*.cilium.io.*."), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("_http._tcp.*"), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("**.cilium.io"), Ok(Subdomains));
        assert_eq!(fqdn_match_pattern("***.cilium.io."), Ok(Subdomains));
        assert_eq!(fqdn_match_pattern("**cilium.io"), Ok(Wildcard));
        assert_eq!(fqdn_match_pattern("cilium.io"), Ok(Exact));
        assert_eq!(fqdn_match_pattern("Cilium.IO."), Ok(Exact));
        assert_eq!(err(fqdn_match_pattern("")), "must not be empty");
        assert_eq!(err(fqdn_match_pattern(".")), "must have at least one label");
        assert_eq!(err(fqdn_match_pattern(".*.io")), "must not start with '.'");
        assert_eq!(
            err(fqdn_match_pattern("*..io")),
            "must not contain consecutive dots"
        );
        assert_eq!(
            err(fqdn_match_pattern("%$*.*")),
            "must contain only letters, digits, '-', '_', '.' and '*' (found '%')"
        );
        assert_eq!(
            err(fqdn_match_pattern("(www|api).cilium.io")),
            "must contain only letters, digits, '-', '_', '.' and '*' (found '('); matchPattern is not a regex, only '*' is a wildcard"
        );
        assert_eq!(
            err(fqdn_match_pattern("[a-z].io")),
            "must contain only letters, digits, '-', '_', '.' and '*' (found '['); matchPattern is not a regex, only '*' is a wildcard"
        );
        assert_eq!(fqdn_match_pattern(&"*".repeat(255)), Ok(MatchAll));
        assert_eq!(
            err(fqdn_match_pattern(&"*".repeat(256))),
            "must be at most 255 characters"
        );
        // Stars do not count towards a label's length.
        assert_eq!(
            fqdn_match_pattern(&format!("*{}*.io", "a".repeat(63))),
            Ok(Wildcard)
        );
        assert_eq!(
            err(fqdn_match_pattern(&format!("*{}.io", "a".repeat(64)))),
            "each dot-separated label must be at most 63 characters"
        );
        assert_eq!(
            err(fqdn_match_pattern("ćilium.io")),
            "must contain only letters, digits, '-', '_', '.' and '*' (found 'ć')"
        );
    }

    #[test]
    fn http_methods_and_paths() {
        assert_eq!(http_method("GET"), Ok(()));
        assert_eq!(http_method("GET|POST"), Ok(()));
        assert_eq!(http_method("M-SEARCH"), Ok(()));
        assert_eq!(http_method("P(UT|OST)"), Ok(()));
        assert_eq!(
            err(http_method("")),
            "must not be empty (omit the field to allow every method)"
        );
        assert_eq!(
            err(http_method("*")),
            "is not a valid regular expression: repetition operator missing expression"
        );
        assert_eq!(http_path("/public/.*"), Ok(()));
        assert_eq!(http_path("/api/v[0-9]+/users/\\d+"), Ok(()));
        assert_eq!(http_path("/ünïcode/[^/]+"), Ok(()));
        assert_eq!(http_path("\\/escaped"), Ok(()));
        assert_eq!(
            err(http_path("/foo(")),
            "is not a valid regular expression: unclosed group"
        );
        assert_eq!(
            err(http_path("/a[")),
            "is not a valid regular expression: unclosed character class"
        );
        assert_eq!(
            err(http_path("(?<=x)")),
            "is not a valid regular expression: look-around, including look-ahead and look-behind, is not supported"
        );
        let huge = err(http_path("(((a{100}){100}){100})"));
        assert!(
            huge.starts_with("is not a valid regular expression: "),
            "{huge}"
        );
        for reason in [huge, err(http_path("/foo(")), err(http_method("*"))] {
            assert_style(&reason);
        }
        assert_eq!(
            err(http_path("")),
            "must not be empty (omit the field to allow every path)"
        );
    }

    #[test]
    fn http_headers() {
        assert_eq!(
            http_header("X-My-Header"),
            Ok(HttpHeader {
                name: "X-My-Header",
                value: None
            })
        );
        assert_eq!(
            http_header("X-My-Header: true"),
            Ok(HttpHeader {
                name: "X-My-Header",
                value: Some("true")
            })
        );
        // Cilium: split at the first space, trailing colons dropped, colon optional.
        assert_eq!(
            http_header("header2 value with spaces"),
            Ok(HttpHeader {
                name: "header2",
                value: Some("value with spaces")
            })
        );
        assert_eq!(
            http_header("X-Empty: "),
            Ok(HttpHeader {
                name: "X-Empty",
                value: Some("")
            })
        );
        assert_eq!(
            http_header(":authority: example.com"),
            Ok(HttpHeader {
                name: ":authority",
                value: Some("example.com")
            })
        );
        assert_eq!(err(http_header("")), "must not be empty");
        assert_eq!(err(http_header(" value")), "header name must not be empty");
        assert_eq!(err(http_header(": value")), "header name must not be empty");
        assert_eq!(
            err(http_header("X-Key:true")),
            "header name must not contain ':'; write \"Name: value\" with a space after the colon"
        );
        assert_eq!(
            err(http_header("X-Key:")),
            "header name must not contain ':'; write \"Name: value\" with a space after the colon"
        );
        assert_eq!(
            err(http_header("X(Key) v")),
            "header name must contain only letters, digits and !#$%&'*+-.^_`|~ (found '(')"
        );
        assert_eq!(
            err(http_header("Ключ: v")),
            "header name must contain only letters, digits and !#$%&'*+-.^_`|~ (found 'К')"
        );
        assert_eq!(
            err(http_header("X-Key: a\r\nInjected: b")),
            "header value must not contain control characters"
        );
    }

    #[test]
    fn icmp() {
        assert_eq!(icmp_family("IPv4"), Ok(IcmpFamily::V4));
        assert_eq!(icmp_family("IPv6"), Ok(IcmpFamily::V6));
        assert_eq!(
            err(icmp_family("ipv6")),
            "family is case-sensitive: write \"IPv6\""
        );
        assert_eq!(
            err(icmp_family("IPV4")),
            "family is case-sensitive: write \"IPv4\""
        );
        assert_eq!(err(icmp_family("")), "must be \"IPv4\" or \"IPv6\"");
        assert_eq!(err(icmp_family("inet")), "must be \"IPv4\" or \"IPv6\"");
        assert_eq!(IcmpFamily::V6.protocol(), Protocol::IcmpV6);

        use IntOrString::{Int, Str};
        let v4 = IcmpFamily::V4;
        let v6 = IcmpFamily::V6;
        assert_eq!(icmp_type(v4, Int(0)), Ok(0));
        assert_eq!(icmp_type(v4, Int(255)), Ok(255));
        assert_eq!(err(icmp_type(v4, Int(256))), "must be between 0 and 255");
        assert_eq!(err(icmp_type(v4, Int(-1))), "must be between 0 and 255");
        assert_eq!(icmp_type(v4, Str("8")), Ok(8));
        assert_eq!(icmp_type(v4, Str("0")), Ok(0));
        assert_eq!(err(icmp_type(v4, Str("08"))), "must not have leading zeros");
        assert_eq!(err(icmp_type(v4, Str("256"))), "must be between 0 and 255");
        assert_eq!(
            err(icmp_type(v4, Str("99999999999999"))),
            "must be between 0 and 255"
        );
        assert_eq!(err(icmp_type(v4, Str(""))), "must not be empty");
        assert_eq!(icmp_type(v4, Str("EchoRequest")), Ok(8));
        assert_eq!(icmp_type(v4, Str("Echo")), Ok(8));
        assert_eq!(icmp_type(v4, Str("EchoReply")), Ok(0));
        assert_eq!(icmp_type(v4, Str("Photuris")), Ok(40));
        assert_eq!(icmp_type(v4, Str("ExtendedEchoRequest")), Ok(42));
        assert_eq!(icmp_type(v6, Str("EchoRequest")), Ok(128));
        assert_eq!(icmp_type(v6, Str("EchoReply")), Ok(129));
        assert_eq!(icmp_type(v6, Str("PacketTooBig")), Ok(2));
        assert_eq!(
            icmp_type(v6, Str("HomeAgentAddressDiscoveryRequest")),
            Ok(144)
        );
        assert_eq!(
            icmp_type(v6, Str("DuplicateAddressConfirmationCodeSuffix")),
            Ok(158)
        );
        assert_eq!(icmp_type(v6, Str("ExtendedEchoRequest")), Ok(160));
        assert_eq!(
            err(icmp_type(v4, Str("ExtendedEchoReply"))),
            "type name \"ExtendedEchoReply\" is refused by cilium's CRD schema; write the number 43"
        );
        assert_eq!(
            err(icmp_type(v6, Str("ExtendedEchoReply"))),
            "type name \"ExtendedEchoReply\" is refused by cilium's CRD schema; write the number 161"
        );
        assert_eq!(
            err(icmp_type(v4, Str("echoRequest"))),
            "type names are case-sensitive: write \"EchoRequest\""
        );
        assert_eq!(
            err(icmp_type(v6, Str("Redirect"))),
            "type name \"Redirect\" belongs to IPv4, not IPv6"
        );
        assert_eq!(
            err(icmp_type(v4, Str("PacketTooBig"))),
            "type name \"PacketTooBig\" belongs to IPv6, not IPv4"
        );
        assert_eq!(
            err(icmp_type(v4, Str("EchoRequst"))),
            "must be a number between 0 and 255 or an IPv4 ICMP type name; did you mean \"EchoRequest\"?"
        );
        assert_eq!(
            err(icmp_type(v4, Str("Ping"))),
            "must be a number between 0 and 255 or an IPv4 ICMP type name"
        );
        assert_eq!(
            err(icmp_type(v4, Str("-1"))),
            "must be a number between 0 and 255 or an IPv4 ICMP type name"
        );
        assert!(icmp_type(v4, Str("８")).is_err());
        assert_eq!(ICMPV4_TYPES.len(), 14);
        assert_eq!(ICMPV6_TYPES.len(), 27);
    }

    #[test]
    fn entities() {
        for e in Entity::ALL {
            assert_eq!(entity(e.as_str()), Ok(e));
        }
        assert_eq!(entity("kube-apiserver"), Ok(Entity::KubeApiserver));
        assert_eq!(entity("remote-node"), Ok(Entity::RemoteNode));
        assert!(!Entity::WorldIpv4.in_crd_enum());
        assert!(!Entity::WorldIpv6.in_crd_enum());
        assert!(Entity::World.in_crd_enum());
        assert_eq!(
            err(entity("World")),
            "entity names are case-sensitive: write \"world\""
        );
        let typo = err(entity("wrold"));
        assert!(
            typo.starts_with("unknown entity (known entities: all, world, world-ipv4, "),
            "{typo}"
        );
        assert!(typo.ends_with("); did you mean \"world\"?"), "{typo}");
        assert!(!err(entity("cluster-ip")).contains("did you mean"));
        assert_eq!(err(entity("")), "must not be empty");
        assert_style(&typo);
    }

    #[test]
    fn suggestions() {
        let fields = [
            "podSelector",
            "namespaceSelector",
            "matchLabels",
            "matchExpressions",
            "fromEndpoints",
            "toEndpoints",
            "toPorts",
            "toFQDNs",
            "ingress",
            "egress",
        ];
        assert_eq!(did_you_mean("podSelectr", &fields), Some("podSelector"));
        assert_eq!(did_you_mean("matchLabel", &fields), Some("matchLabels"));
        assert_eq!(did_you_mean("fromEndpoint", &fields), Some("fromEndpoints"));
        assert_eq!(did_you_mean("toPort", &fields), Some("toPorts"));
        assert_eq!(did_you_mean("podselector", &fields), Some("podSelector"));
        assert_eq!(did_you_mean("PODSELECTOR", &fields), Some("podSelector"));
        assert_eq!(did_you_mean("ingres", &fields), Some("ingress"));
        assert_eq!(did_you_mean("toFQDN", &fields), Some("toFQDNs"));
        assert_eq!(did_you_mean("tpoPorts", &fields), Some("toPorts"));
        assert_eq!(did_you_mean("xyz", &fields), None);
        assert_eq!(did_you_mean("", &fields), None);
        assert_eq!(did_you_mean("to", &fields), None);
        assert_eq!(did_you_mean("k8", LABEL_SOURCES), Some("k8s"));
        assert_eq!(did_you_mean("a", &["ab", "b"]), None);
        assert_eq!(did_you_mean("ab", &["ab1", "b"]), Some("ab1"));
        assert_eq!(did_you_mean("ab", &["xy"]), None);
        assert_eq!(did_you_mean("selector", &fields), None);
        assert_eq!(did_you_mean(&"x".repeat(100_000), &fields), None);
        assert_eq!(did_you_mean("podSelectr", &[]), None);
        assert_eq!(
            did_you_mean("tpc", &["TCP", "UDP", "SCTP", "ANY"]),
            Some("TCP")
        );
        assert_eq!(did_you_mean("x", &["X"]), Some("X"));
        assert_eq!(did_you_mean("ünïcödé", &["unicode"]), None);
        assert_eq!(did_you_mean("wörld", &["world", "word"]), Some("world"));
    }

    #[test]
    fn no_panics_on_odd_input() {
        let odd = [
            "",
            " ",
            ":",
            "::",
            "/",
            "//",
            "$",
            "*",
            ".",
            "..",
            "\0",
            "\u{feff}",
            "é",
            "😀/😀:😀",
            "a\u{0301}",
            "k8s:",
            "k8s::",
            "[",
            "(",
            "\\",
            "%",
            "0",
            "00",
            "-",
            "--",
        ];
        for s in odd {
            let _ = dns1123_subdomain(s);
            let _ = dns1123_label(s);
            let _ = label_key(s);
            let _ = label_value(s);
            let _ = iana_svc_name(s);
            let _ = port_or_name(s);
            let _ = Protocol::parse_kubernetes(s);
            let _ = Protocol::parse_cilium(s);
            let _ = cidr(s, true);
            let _ = cidr(s, false);
            let _ = fqdn_match_name(s);
            let _ = fqdn_match_pattern(s);
            let _ = http_method(s);
            let _ = http_path(s);
            let _ = http_header(s);
            let _ = icmp_family(s);
            let _ = icmp_type(IcmpFamily::V4, IntOrString::Str(s));
            let _ = entity(s);
            let _ = did_you_mean(s, &["a", "bb", "ccc"]);
            for r in every_error(s) {
                assert_style(&r);
            }
        }
    }

    fn every_error(s: &str) -> Vec<String> {
        [
            dns1123_subdomain(s).err(),
            dns1123_label(s).err(),
            label_key(s).err(),
            label_value(s).err(),
            iana_svc_name(s).err(),
            port_or_name(s).err(),
            Protocol::parse_kubernetes(s).err(),
            Protocol::parse_cilium(s).err(),
            cidr(s, true).err(),
            cidr(s, false).err(),
            fqdn_match_name(s).err(),
            fqdn_match_pattern(s).err(),
            http_method(s).err(),
            http_path(s).err(),
            http_header(s).err(),
            icmp_family(s).err(),
            icmp_type(IcmpFamily::V4, IntOrString::Str(s)).err(),
            icmp_type(IcmpFamily::V6, IntOrString::Str(s)).err(),
            entity(s).err(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Pseudo-random strings over an alphabet of the characters the rules care about.
    #[test]
    fn generated_inputs_never_panic() {
        let alphabet: Vec<char> = "aZ09-_.:/*$%[](){}|+?\\ \t\n\0é😀Ж８xX".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let len = usize::try_from(state >> 58).unwrap_or(0);
            let mut s = String::new();
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let i = usize::try_from(state >> 33).unwrap_or(0) % alphabet.len();
                if let Some(c) = alphabet.get(i) {
                    s.push(*c);
                }
            }
            for r in every_error(&s) {
                assert_style(&r);
            }
            let _ = did_you_mean(&s, LABEL_SOURCES);
            for n in [i64::MIN, -1, 0, 255, 256, 65_535, 65_536, i64::MAX] {
                let _ = port_number(n);
                let _ = icmp_type(IcmpFamily::V6, IntOrString::Int(n));
            }
        }
    }
}
