//! The protocol of policyd's unix socket: one JSON request per line, answered by one JSON
//! response per line (`observe --follow` keeps answering, one event per line).
//!
//! The CNI plugin registers endpoints through it and the `policyd` CLI asks the running agent
//! through it. Reading the pinned maps (`policyd bpf ...`) needs no agent.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Where policyd listens unless told otherwise (`--socket`; the CNI configuration's `socket`).
pub const DEFAULT_SOCKET: &str = "/run/policyd/policyd.sock";

/// What the CNI plugin knows about a new endpoint when it registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRegistration {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`: the interface inside the pod.
    pub ifname: String,
    /// `CNI_NETNS`: the pod's network namespace (a path).
    pub netns: String,
    /// The host-side end of the veth pair, in policyd's namespace.
    pub host_ifname: String,
    /// `K8S_POD_NAMESPACE` (`default` when the runtime passed none).
    pub namespace: String,
    /// `K8S_POD_NAME` (the container id when the runtime passed none).
    pub pod_name: String,
    /// `K8S_POD_UID`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod's addresses, as the IPAM plugin handed them out.
    pub ips: Vec<IpAddr>,
}

/// An endpoint as policyd knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub namespace: String,
    pub pod_name: String,
    pub ips: Vec<IpAddr>,
    /// `namespace/name` of the tree's workload the pod belongs to; `None` when the tree has
    /// none (the pod then gets the labels of its namespace only, and no policy selects it).
    pub workload: Option<String>,
    /// The endpoint's identity in the live generation (0 before the first generation).
    pub identity: u32,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// CNI ADD: attach the programs, resolve labels, enforce. Adding the same container id
    /// and interface again replaces the registration (a runtime may retry an ADD).
    EndpointAdd(EndpointRegistration),
    /// CNI DEL: forget the endpoint. Unknown endpoints are not an error.
    EndpointDel {
        container_id: String,
        ifname: String,
    },
    /// CNI CHECK: the endpoint as policyd has it (an error when it does not).
    EndpointGet {
        container_id: String,
        ifname: String,
    },
    /// `policyd endpoint list`.
    EndpointList,
    /// `policyd status`.
    Status,
    /// `policyd observe`: the last `last` events kept by the agent (newest last), then,
    /// with `follow`, every new one as it comes.
    Observe {
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        dropped_only: bool,
        #[serde(default)]
        last: Option<usize>,
    },
    /// `policyd explain`: the newest kept drop event matching every given filter, explained
    /// against the tree in force.
    Explain {
        #[serde(default)]
        from: Option<IpAddr>,
        #[serde(default)]
        to: Option<IpAddr>,
        #[serde(default)]
        port: Option<u16>,
        /// `TCP`, `UDP`, `ICMP`, ...
        #[serde(default)]
        protocol: Option<String>,
    },
    /// Reads the tree again now (what a change in the checkout does).
    Reload,
    /// `policyd history`: the revisions seen, oldest first (the last `last` of them).
    History {
        #[serde(default)]
        last: Option<usize>,
    },
}

/// The answer to a request: `ok` and the request's body, or an error message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub body: serde_json::Value,
}

impl Response {
    pub fn ok(body: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            body: serde_json::to_value(body).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn err(message: impl std::fmt::Display) -> Response {
        Response {
            ok: false,
            error: Some(message.to_string()),
            body: serde_json::Value::Null,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach policyd at {path}: {source} (is `policyd run` running?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to policyd at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("policyd at {path} answered something that is not a response: {source}")]
    Decode {
        path: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// A connection to policyd.
pub struct Client {
    path: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects; `timeout` bounds every read and write (`None`: wait as long as it takes,
    /// as `observe --follow` does).
    pub fn connect(socket: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        let path = socket.display().to_string();
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        stream.set_read_timeout(timeout).map_err(io)?;
        stream.set_write_timeout(timeout).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Client {
            path,
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a request and reads the first response line.
    pub fn send(&mut self, request: &Request) -> Result<Response, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|source| ClientError::Decode {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.read_response()?.ok_or_else(|| ClientError::Io {
            path: self.path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "policyd closed the connection without answering",
            ),
        })
    }

    /// The next response line (`None` when policyd closed the connection).
    pub fn read_response(&mut self) -> Result<Option<Response>, ClientError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|source| ClientError::Decode {
                path: self.path.clone(),
                source,
            })
    }
}

/// One request, one answer: the body of a successful response, or the agent's error.
pub fn call(socket: &Path, request: &Request) -> Result<serde_json::Value, ClientError> {
    let mut client = Client::connect(socket, Some(Duration::from_secs(30)))?;
    let response = client.send(request)?;
    if response.ok {
        Ok(response.body)
    } else {
        Err(ClientError::Refused(
            response
                .error
                .unwrap_or_else(|| "refused without a reason".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        let r = Request::EndpointDel {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        };
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"op":"endpoint_del","container_id":"c1","ifname":"eth0"}"#
        );
        let back: Request = serde_json::from_str(&text).unwrap_or(Request::Status);
        assert_eq!(back, r);
        let observe: Request =
            serde_json::from_str(r#"{"op":"observe"}"#).unwrap_or(Request::Status);
        assert_eq!(
            observe,
            Request::Observe {
                follow: false,
                dropped_only: false,
                last: None
            }
        );
    }
}
