//! What a container runtime hands the plugin: the `CNI_*` environment, `CNI_ARGS`, and the
//! network configuration on stdin, parsed and checked against the specification's rules.

use super::result::{CniError, CniResult, ErrorCode};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The specification versions this plugin speaks (VERSION's `supportedVersions`).
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The version the plugin answers in when the configuration names none it can use.
pub const LATEST: &str = "1.0.0";

/// `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

/// The `CNI_*` variables of one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Empty when the runtime gave none (allowed for DEL).
    pub netns: String,
    pub ifname: String,
    pub args: Args,
    pub path: Vec<PathBuf>,
}

/// `CNI_ARGS` as containerd and CRI-O pass them for Kubernetes pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub infra_container_id: Option<String>,
    /// Every pair, the ones above included.
    pub all: BTreeMap<String, String>,
}

impl Args {
    /// Parses `K=V;K=V`. Keys this plugin does not know are kept and otherwise ignored, as
    /// `IgnoreUnknown=1` (which Kubernetes runtimes always pass) asks.
    pub fn parse(text: &str) -> Result<Args, CniError> {
        let mut args = Args::default();
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::new(
                    ErrorCode::InvalidEnv,
                    "invalid CNI_ARGS",
                    format!("`{pair}` is not KEY=VALUE"),
                ));
            };
            let value = (!v.is_empty()).then(|| v.to_string());
            match k {
                "K8S_POD_NAMESPACE" => args.pod_namespace = value,
                "K8S_POD_NAME" => args.pod_name = value,
                "K8S_POD_UID" => args.pod_uid = value,
                "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = value,
                _ => {}
            }
            args.all.insert(k.to_string(), v.to_string());
        }
        Ok(args)
    }
}

/// Names the specification allows for containers and networks: an alphanumeric first, then
/// alphanumerics, `_`, `.` and `-`.
fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A Linux interface name: 1 to 15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

impl Env {
    /// Reads the invocation from environment variables (`get` is `std::env::var` in the
    /// binary, a map in tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let var = |name: &str| get(name).unwrap_or_default();
        let missing = |name: &str| {
            CniError::new(
                ErrorCode::InvalidEnv,
                format!("required environment variable {name} is missing"),
                "",
            )
        };
        let command = match var("CNI_COMMAND").as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "" => return Err(missing("CNI_COMMAND")),
            other => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnv,
                    format!("unknown CNI_COMMAND {other}"),
                    "this plugin implements ADD, DEL, CHECK and VERSION",
                ))
            }
        };
        let mut env = Env {
            command,
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: Args::default(),
            path: var("CNI_PATH")
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        };
        if command == Command::Version {
            return Ok(env);
        }
        if env.container_id.is_empty() {
            return Err(missing("CNI_CONTAINERID"));
        }
        if !valid_id(&env.container_id) {
            return Err(CniError::new(
                ErrorCode::InvalidEnv,
                "invalid characters in CNI_CONTAINERID",
                env.container_id.clone(),
            ));
        }
        if env.ifname.is_empty() {
            return Err(missing("CNI_IFNAME"));
        }
        if !valid_ifname(&env.ifname) {
            return Err(CniError::new(
                ErrorCode::InvalidEnv,
                "CNI_IFNAME is not a valid interface name",
                env.ifname.clone(),
            ));
        }
        if env.netns.is_empty() && command != Command::Del {
            return Err(missing("CNI_NETNS"));
        }
        if env.path.is_empty() {
            return Err(missing("CNI_PATH"));
        }
        env.args = Args::parse(&var("CNI_ARGS"))?;
        Ok(env)
    }
}

/// The network configuration (one plugin's entry of a list, as the runtime passes it).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// `ipam.type`: the IPAM plugin to delegate to.
    pub ipam_type: String,
    /// policyd's socket.
    pub socket: PathBuf,
    pub mtu: Option<u32>,
    /// `dns`, reported in the result when given (otherwise the IPAM plugin's).
    pub dns: Option<serde_json::Value>,
    /// The previous plugin's result (ADD in a chain) or the ADD's result (CHECK, DEL).
    pub prev_result: Option<CniResult>,
    /// The configuration exactly as received, handed on to the IPAM plugin.
    pub raw: Vec<u8>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    _kind: Option<String>,
    ipam: Option<RawIpam>,
    socket: Option<PathBuf>,
    mtu: Option<u32>,
    dns: Option<serde_json::Value>,
    prev_result: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct RawIpam {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Reads `cniVersion` alone, for the version of an error's JSON when the rest is broken.
pub fn version_of(stdin: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct V {
        cni_version: Option<String>,
    }
    serde_json::from_slice::<V>(stdin)
        .ok()?
        .cni_version
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let raw: RawConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                ErrorCode::Decode,
                "cannot decode the network configuration",
                e.to_string(),
            )
        })?;
        let invalid = |msg: &str, details: String| {
            CniError::new(ErrorCode::InvalidConfig, msg.to_string(), details)
        };
        let cni_version = raw
            .cni_version
            .ok_or_else(|| invalid("the network configuration has no cniVersion", "".into()))?;
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("incompatible CNI version {cni_version}"),
                format!("this plugin supports {}", SUPPORTED_VERSIONS.join(", ")),
            ));
        }
        let name = raw.name.unwrap_or_default();
        if !valid_id(&name) {
            return Err(invalid(
                "invalid network name",
                format!(
                    "`{name}`: a name starts with a letter or digit, followed by letters, \
                     digits, `_`, `.` or `-`"
                ),
            ));
        }
        let ipam_type = raw
            .ipam
            .ok_or_else(|| {
                invalid(
                    "the network configuration has no ipam",
                    "policy-cni delegates address allocation: name an IPAM plugin, e.g. \
                     \"ipam\": {\"type\": \"host-local\", ...}"
                        .into(),
                )
            })?
            .kind
            .unwrap_or_default();
        if ipam_type.is_empty() || ipam_type.contains('/') || ipam_type.starts_with('.') {
            return Err(invalid(
                "invalid ipam.type",
                format!("`{ipam_type}` is not the file name of an IPAM plugin"),
            ));
        }
        if raw.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
            return Err(invalid(
                "invalid mtu",
                format!("{:?} is outside 68-65535", raw.mtu),
            ));
        }
        let socket = raw
            .socket
            .unwrap_or_else(|| PathBuf::from(crate::api::DEFAULT_SOCKET));
        if socket.as_os_str().is_empty() {
            return Err(invalid("invalid socket", "the socket path is empty".into()));
        }
        let prev_result = match raw.prev_result {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| {
                CniError::new(ErrorCode::Decode, "cannot decode prevResult", e.to_string())
            })?),
        };
        Ok(NetConf {
            cni_version,
            name,
            ipam_type,
            socket,
            mtu: raw.mtu,
            dns: raw.dns.filter(|d| !d.is_null()),
            prev_result,
            raw: stdin.to_vec(),
        })
    }
}

/// Compares dotted versions numerically (`0.4.0 < 1.0.0`).
pub fn version_at_least(version: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) >= parse(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_as_containerd_passes_them() {
        let args = Args::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234-5",
        )
        .expect("parses");
        assert_eq!(args.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(args.pod_name.as_deref(), Some("web-0"));
        assert_eq!(args.pod_uid.as_deref(), Some("1234-5"));
        assert_eq!(args.infra_container_id.as_deref(), Some("abc"));
        assert_eq!(args.all.get("IgnoreUnknown").map(String::as_str), Some("1"));
        assert!(Args::parse("").expect("empty").all.is_empty());
        assert_eq!(
            Args::parse("K8S_POD_NAME").map_err(|e| e.code),
            Err(ErrorCode::InvalidEnv)
        );
    }

    #[test]
    fn names_and_versions() {
        assert!(valid_id("a1b2"));
        assert!(valid_id("k8s-pod.network_1"));
        assert!(!valid_id("-x"));
        assert!(!valid_id("a/b"));
        assert!(valid_ifname("eth0"));
        assert!(!valid_ifname("a-very-long-ifname"));
        assert!(!valid_ifname("a b"));
        assert!(version_at_least("1.0.0", "0.4.0"));
        assert!(version_at_least("0.4.0", "0.4.0"));
        assert!(!version_at_least("0.3.1", "0.4.0"));
    }

    #[test]
    fn config_errors_have_the_spec_codes() {
        let code = |s: &str| NetConf::parse(s.as_bytes()).err().map(|e| e.code);
        assert_eq!(code("{"), Some(ErrorCode::Decode));
        assert_eq!(
            code(r#"{"cniVersion":"9.9.9","name":"n","ipam":{"type":"host-local"}}"#),
            Some(ErrorCode::IncompatibleVersion)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n"}"#),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","ipam":{}}"#),
            Some(ErrorCode::InvalidConfig)
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local"},"mtu":"x"}"#),
            Some(ErrorCode::Decode)
        );
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.4.0","name":"k8s","type":"policy-cni","ipam":{"type":"host-local"}}"#,
        )
        .expect("valid");
        assert_eq!(conf.socket, PathBuf::from(crate::api::DEFAULT_SOCKET));
        assert_eq!(conf.ipam_type, "host-local");
    }
}
