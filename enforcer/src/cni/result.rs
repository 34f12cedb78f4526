//! The plugin's answers on stdout: the versioned success result, VERSION's list and the
//! specification's error object with its well-known codes.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;
use std::net::IpAddr;

/// An error code: the specification's well-known ones (0-99) and this plugin's (100+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the configuration's `cniVersion` is not one this plugin speaks.
    IncompatibleVersion,
    /// 2: a field of the configuration this plugin does not support.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a required environment variable is missing or invalid.
    InvalidEnv,
    /// 5: an I/O failure (reading stdin, running a delegated plugin).
    Io,
    /// 6: the configuration (or a delegated plugin's answer) does not decode.
    Decode,
    /// 7: the configuration decodes but is not valid.
    InvalidConfig,
    /// 11: a transient condition (policyd not answering): try again later.
    TryAgainLater,
    /// 100: creating or configuring the interfaces, addresses or routes failed.
    Interface,
    /// 101: the IPAM plugin failed without an error of its own.
    Ipam,
    /// 102: policyd refused the endpoint.
    Refused,
    /// 103: CHECK found the attachment not as ADD left it.
    CheckFailed,
    /// Any other code, e.g. one an IPAM plugin returned (passed through as it is).
    Other(u32),
}

impl ErrorCode {
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnv => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::Interface => 100,
            ErrorCode::Ipam => 101,
            ErrorCode::Refused => 102,
            ErrorCode::CheckFailed => 103,
            ErrorCode::Other(c) => c,
        }
    }

    pub fn from_code(code: u32) -> ErrorCode {
        match code {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnv,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidConfig,
            11 => ErrorCode::TryAgainLater,
            100 => ErrorCode::Interface,
            101 => ErrorCode::Ipam,
            102 => ErrorCode::Refused,
            103 => ErrorCode::CheckFailed,
            c => ErrorCode::Other(c),
        }
    }
}

/// A failure, printed on stdout as the specification's error object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// `{"cniVersion","code","msg","details"}` (`details` left out when empty), in that order.
    pub fn to_text(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Out {
            cni_version,
            code: self.code.code(),
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_default()
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.code())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// One entry of `interfaces`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One entry of `ips`. Results before 1.0.0 also carry `"version": "4"|"6"`, which is
/// derived from the address and written only for those versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One entry of `routes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// A success result of any version this plugin speaks (also the shape of an IPAM plugin's
/// answer and of `prevResult`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub dns: Value,
}

impl CniResult {
    /// The result as `version` writes it, keys in the specification's order.
    pub fn to_text(&self, version: &str) -> String {
        #[derive(Serialize)]
        struct Ip<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            version: Option<&'static str>,
            #[serde(flatten)]
            ip: &'a IpConfig,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            cni_version: &'a str,
            interfaces: &'a [Interface],
            ips: Vec<Ip<'a>>,
            routes: &'a [RouteConfig],
            dns: Value,
        }
        let old = !super::config::version_at_least(version, "1.0.0");
        let out = Out {
            cni_version: version,
            interfaces: &self.interfaces,
            ips: self
                .ips
                .iter()
                .map(|ip| Ip {
                    version: old.then_some(match ip.address {
                        IpNet::V4(_) => "4",
                        IpNet::V6(_) => "6",
                    }),
                    ip,
                })
                .collect(),
            routes: &self.routes,
            dns: if self.dns.is_object() {
                self.dns.clone()
            } else {
                json!({})
            },
        };
        serde_json::to_string(&out).unwrap_or_default()
    }
}

/// VERSION's answer.
pub fn version_text() -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out {
        cni_version: &'static str,
        supported_versions: [&'static str; 4],
    }
    serde_json::to_string(&Out {
        cni_version: super::config::LATEST,
        supported_versions: super::config::SUPPORTED_VERSIONS,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_of_older_versions_carry_the_ip_version() {
        let r: CniResult = serde_json::from_str(
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.2/24","gateway":"10.1.0.1"}],"dns":{}}"#,
        )
        .expect("decodes");
        assert_eq!(r.ips.len(), 1);
        let old: Value = serde_json::from_str(&r.to_text("0.4.0")).expect("json");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["cniVersion"], "0.4.0");
        let new: Value = serde_json::from_str(&r.to_text("1.0.0")).expect("json");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["ips"][0]["address"], "10.1.0.2/24");
        assert_eq!(new["interfaces"], json!([]));
    }

    #[test]
    fn errors_as_the_spec_writes_them() {
        let e = CniError::new(ErrorCode::InvalidConfig, "bad", "worse");
        assert_eq!(
            e.to_text("1.0.0"),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"worse"}"#
        );
        let r = CniResult::default();
        assert!(r
            .to_text("1.0.0")
            .starts_with(r#"{"cniVersion":"1.0.0","interfaces":[],"ips":"#));
        assert_eq!(ErrorCode::from_code(11), ErrorCode::TryAgainLater);
        assert_eq!(ErrorCode::from_code(42).code(), 42);
    }
}
