//! What policyd keeps on disk across restarts: its registered endpoints (one JSON file each)
//! and the identity allocation, under `--state-dir`. Files are written beside their final
//! name and renamed, so a crash never leaves half of one.

use crate::api::EndpointRegistration;
use compiler::identity::{Identity, IdentityTable, LabelSet};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// A registered endpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEndpoint {
    pub registration: EndpointRegistration,
    /// The host-side interface's index when it was registered: a restarted agent compares it,
    /// so that an interface deleted and recreated under the same name is not mistaken for the
    /// endpoint's.
    pub host_ifindex: u32,
}

#[derive(Serialize, Deserialize)]
struct StoredIdentity {
    id: u32,
    labels: LabelSet,
}

pub struct Store {
    dir: PathBuf,
}

/// A file name for an endpoint key: container ids are hex, interface names short; anything
/// else is replaced so that no key escapes the directory.
fn file_name(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

impl Store {
    pub fn open(dir: &Path) -> io::Result<Store> {
        std::fs::create_dir_all(dir.join("endpoints"))?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    fn endpoint_path(&self, key: &str) -> PathBuf {
        self.dir.join("endpoints").join(file_name(key))
    }

    pub fn save_endpoint(&self, key: &str, ep: &StoredEndpoint) -> io::Result<()> {
        write_atomic(&self.endpoint_path(key), &serde_json::to_vec_pretty(ep)?)
    }

    pub fn remove_endpoint(&self, key: &str) -> io::Result<()> {
        match std::fs::remove_file(self.endpoint_path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every stored endpoint; files that do not parse are reported and skipped.
    pub fn endpoints(&self) -> io::Result<(Vec<StoredEndpoint>, Vec<String>)> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.join("endpoints"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(ep) => out.push(ep),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        Ok((out, problems))
    }

    pub fn save_identities(&self, table: &IdentityTable) -> io::Result<()> {
        let list: Vec<StoredIdentity> = table
            .iter()
            .map(|(labels, id)| StoredIdentity {
                id: id.0,
                labels: labels.clone(),
            })
            .collect();
        write_atomic(
            &self.dir.join("identities.json"),
            &serde_json::to_vec(&list)?,
        )
    }

    /// The stored allocation (empty when there is none yet).
    pub fn identities(&self) -> io::Result<IdentityTable> {
        let bytes = match std::fs::read(self.dir.join("identities.json")) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(IdentityTable::default()),
            Err(e) => return Err(e),
        };
        let list: Vec<StoredIdentity> = serde_json::from_slice(&bytes)?;
        Ok(IdentityTable::restore(
            list.into_iter().map(|s| (s.labels, Identity(s.id))),
        ))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_identities_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("plc-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("open");
        let ep = StoredEndpoint {
            registration: EndpointRegistration {
                container_id: "abc/../x".into(),
                ifname: "eth0".into(),
                netns: "/var/run/netns/p".into(),
                host_ifname: "plc123".into(),
                namespace: "shop".into(),
                pod_name: "web-1".into(),
                pod_uid: None,
                ips: vec!["10.1.0.1".parse().expect("ip")],
            },
            host_ifindex: 7,
        };
        store.save_endpoint("abc/../x/eth0", &ep).expect("save");
        let mut table = IdentityTable::default();
        let labels: LabelSet = [("app".to_owned(), "web".to_owned())].into();
        let id = table.allocate(&labels);
        store.save_identities(&table).expect("save ids");

        let again = Store::open(&dir).expect("reopen");
        let (eps, problems) = again.endpoints().expect("list");
        assert_eq!(eps, vec![ep]);
        assert!(problems.is_empty());
        assert_eq!(again.identities().expect("ids").get(&labels), Some(id));
        again.remove_endpoint("abc/../x/eth0").expect("remove");
        again
            .remove_endpoint("abc/../x/eth0")
            .expect("remove twice");
        assert!(again.endpoints().expect("list").0.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
