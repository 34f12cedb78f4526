//! The agent's state and its one rule: every change (a tree, an endpoint coming or going)
//! recompiles the tree with the registered pods in it and swaps in one new generation; a
//! change that does not compile leaves the last good generation in force.

use super::events::{self, EventLog, EventRecord, Names};
use super::pods::{self, Pod};
use super::store::{Store, StoredEndpoint};
use crate::api::{EndpointInfo, EndpointRegistration};
use crate::datapath::{self, maps, programs};
use crate::generation::GenerationSpec;
use crate::loader::{Datapath, LoadOptions};
use compiler::bundle::Options;
use compiler::identity::IdentityTable;
use compiler::lower::{self, Compiled};
use policy_lang::model::Tree;
use policy_lang::{Checked, LocatedDiagnostic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// `policyd run`'s settings.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The policy tree (a directory of YAML, as `policyc check` reads it).
    pub source: PathBuf,
    /// bpffs directory of the maps and links (`<root>/links`).
    pub bpffs_root: PathBuf,
    pub socket: PathBuf,
    /// Registered endpoints and the identity allocation.
    pub state_dir: PathBuf,
    pub ct_max_entries: Option<u32>,
}

/// A registered endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub stored: StoredEndpoint,
}

impl Endpoint {
    fn key(r: &EndpointRegistration) -> String {
        format!("{}/{}", r.container_id, r.ifname)
    }
}

/// The generation in force: the tree it came from (with the pods in it) and its compile.
pub struct Live {
    pub tree: Tree,
    /// The checked tree it came from (its source map names files and lines).
    pub source: Arc<Checked>,
    pub compiled: Compiled,
    pub revision: u64,
    pub generation: u32,
    pub swapped_at: SystemTime,
    pub swap_ms: f64,
    pub compile_ms: f64,
}

/// A tree that was refused, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rejection {
    pub time: String,
    pub errors: Vec<String>,
}

pub struct Agent {
    pub opts: RunOptions,
    dp: Datapath,
    store: Store,
    endpoints: BTreeMap<String, Endpoint>,
    identities: IdentityTable,
    source_revision: u64,
    pub live: Option<Live>,
    pub rejected: Option<Rejection>,
    pub events: EventLog,
    started: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Datapath(Box<crate::loader::DatapathError>),
    #[error("state directory `{path}`: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

impl From<crate::loader::DatapathError> for AgentError {
    fn from(e: crate::loader::DatapathError) -> AgentError {
        AgentError::Datapath(Box::new(e))
    }
}

fn log(msg: std::fmt::Arguments<'_>) {
    eprintln!(
        "{} policyd: {msg}",
        humantime::format_rfc3339_millis(SystemTime::now())
    );
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Agent {
    /// Loads the datapath (reusing pinned maps), adopts the endpoints of a previous run whose
    /// interfaces still exist, forgets the others, then compiles the tree and enforces it. A
    /// tree with errors at start leaves whatever generation is pinned in force (none on a
    /// first start: the programs then drop every packet of a registered endpoint).
    pub fn start(opts: RunOptions) -> Result<Agent, AgentError> {
        let state_err = |source| AgentError::State {
            path: opts.state_dir.clone(),
            source,
        };
        let store = Store::open(&opts.state_dir).map_err(state_err)?;
        let mut load = LoadOptions::new(&opts.bpffs_root);
        load.ct_max_entries = opts.ct_max_entries;
        let dp = Datapath::load(&load)?;
        let live_generation = dp.live_generation()?;
        let identities = store.identities().map_err(state_err)?;
        let mut agent = Agent {
            opts,
            dp,
            store,
            endpoints: BTreeMap::new(),
            identities,
            source_revision: 0,
            live: None,
            rejected: None,
            events: EventLog::default(),
            started: SystemTime::now(),
        };
        if live_generation != 0 {
            log(format_args!(
                "generation {live_generation} is pinned under {}: it stays in force until the tree compiles",
                agent.opts.bpffs_root.display()
            ));
        }
        agent.adopt_endpoints()?;
        agent.reload();
        Ok(agent)
    }

    fn links_dir(&self) -> PathBuf {
        self.opts.bpffs_root.join("links")
    }

    fn adopt_endpoints(&mut self) -> Result<(), AgentError> {
        let (stored, problems) = self.store.endpoints().map_err(|source| AgentError::State {
            path: self.opts.state_dir.clone(),
            source,
        })?;
        for p in problems {
            log(format_args!("skipping an unreadable endpoint record: {p}"));
        }
        for ep in stored {
            let r = &ep.registration;
            let key = Endpoint::key(r);
            match crate::sys::ifindex(&r.host_ifname) {
                Some(i) if i == ep.host_ifindex => {
                    let adopted = self
                        .dp
                        .attach_endpoint_pinned(&r.host_ifname, &self.links_dir())?;
                    log(format_args!(
                        "endpoint {}/{} on {}: {}",
                        r.namespace,
                        r.pod_name,
                        r.host_ifname,
                        if adopted {
                            "adopted its pinned programs"
                        } else {
                            "attached"
                        }
                    ));
                    self.endpoints.insert(key, Endpoint { stored: ep });
                }
                _ => {
                    log(format_args!(
                        "endpoint {}/{} went away while policyd was down ({} is gone): forgetting it",
                        r.namespace, r.pod_name, r.host_ifname
                    ));
                    let _ = Datapath::detach_endpoint_pinned(&r.host_ifname, &self.links_dir());
                    let _ = self.store.remove_endpoint(&key);
                }
            }
        }
        Ok(())
    }

    /// Reads and checks the source tree; on success, enforces it. Returns whether the tree
    /// was taken.
    pub fn reload(&mut self) -> bool {
        let t = Instant::now();
        let checked = policy_lang::check(std::slice::from_ref(&self.opts.source));
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity == policy_lang::Severity::Error)
            .map(|d| {
                let l = LocatedDiagnostic::new(d, &checked.sources);
                format!(
                    "{}:{}:{}: {} {}",
                    l.file, l.line, l.column, l.code, l.message
                )
            })
            .collect();
        if checked.has_io_errors() || !errors.is_empty() {
            let errors = if errors.is_empty() {
                vec![format!("cannot read `{}`", self.opts.source.display())]
            } else {
                errors
            };
            log(format_args!(
                "the tree at {} has {} error(s); keeping the generation in force:\n  {}",
                self.opts.source.display(),
                errors.len(),
                errors.join("\n  ")
            ));
            self.rejected = Some(Rejection {
                time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                errors,
            });
            return false;
        }
        log(format_args!(
            "checked {} in {:.0} ms",
            self.opts.source.display(),
            ms(t)
        ));
        self.source_revision += 1;
        match self.enforce_tree(Arc::new(checked)) {
            Ok(()) => {
                self.rejected = None;
                true
            }
            Err(e) => {
                log(format_args!(
                    "cannot enforce the tree: {e}; keeping the generation in force"
                ));
                self.rejected = Some(Rejection {
                    time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                    errors: vec![e.to_string()],
                });
                false
            }
        }
    }

    fn pods(&self) -> Vec<Pod> {
        self.endpoints
            .values()
            .map(|e| Pod {
                namespace: e.stored.registration.namespace.clone(),
                name: e.stored.registration.pod_name.clone(),
                ips: e.stored.registration.ips.clone(),
            })
            .collect()
    }

    /// Compiles the tree in force again, with the registered pods (after an endpoint change).
    fn enforce(&mut self) -> Result<(), AgentError> {
        match &self.live {
            Some(l) => self.enforce_tree(l.source.clone()),
            None => Ok(()),
        }
    }

    /// Compiles a checked tree with the registered pods and swaps the result in.
    fn enforce_tree(&mut self, checked: Arc<Checked>) -> Result<(), AgentError> {
        let t = Instant::now();
        let tree = pods::with_pods(&checked.tree, &self.pods());
        let compiled = lower::compile(
            &tree,
            &checked.sources,
            Some(self.identities.clone()),
            Options::default(),
        );
        let compile_ms = ms(t);
        let mut spec = GenerationSpec::new(&compiled.bundle);
        for ep in self.endpoints.values() {
            for ip in &ep.stored.registration.ips {
                spec.ifindex.insert(*ip, ep.stored.host_ifindex);
            }
        }
        let t = Instant::now();
        let swap = self.dp.write_generation(&spec)?;
        let swap_ms = ms(t);
        log(format_args!(
            "generation {} in force: {} endpoints ({} here), {} policy entries, {} ipcache entries (compiled in {compile_ms:.1} ms, swapped in {swap_ms:.1} ms)",
            swap.generation,
            compiled.bundle.endpoints.len(),
            self.endpoints.len(),
            swap.policy_entries,
            swap.ipcache_entries
        ));
        self.identities = compiled.identities.clone();
        if let Err(e) = self.store.save_identities(&self.identities) {
            log(format_args!("cannot save the identity allocation: {e}"));
        }
        self.live = Some(Live {
            tree,
            source: checked,
            compiled,
            revision: self.source_revision,
            generation: swap.generation,
            swapped_at: SystemTime::now(),
            swap_ms,
            compile_ms,
        });
        Ok(())
    }

    /// Registers (or re-registers) an endpoint: attaches the programs to its interface, then
    /// enforces a generation that knows it. Until then its packets are dropped
    /// (`unknown-endpoint`), never let through.
    pub fn add_endpoint(&mut self, r: EndpointRegistration) -> Result<EndpointInfo, AgentError> {
        if r.ips.is_empty() {
            return Err(AgentError::Refused(format!(
                "endpoint {}/{} has no address",
                r.namespace, r.pod_name
            )));
        }
        let ifindex = crate::sys::ifindex(&r.host_ifname).ok_or_else(|| {
            AgentError::Refused(format!(
                "no interface `{}` in policyd's network namespace",
                r.host_ifname
            ))
        })?;
        let key = Endpoint::key(&r);
        for (other_key, other) in &self.endpoints {
            if *other_key == key {
                continue;
            }
            if let Some(ip) = r
                .ips
                .iter()
                .find(|ip| other.stored.registration.ips.contains(ip))
            {
                return Err(AgentError::Refused(format!(
                    "address {ip} already belongs to endpoint {}/{} ({})",
                    other.stored.registration.namespace,
                    other.stored.registration.pod_name,
                    other_key
                )));
            }
        }
        self.dp
            .attach_endpoint_pinned(&r.host_ifname, &self.links_dir())?;
        let stored = StoredEndpoint {
            registration: r,
            host_ifindex: ifindex,
        };
        let previous = self.endpoints.insert(
            key.clone(),
            Endpoint {
                stored: stored.clone(),
            },
        );
        if let Err(e) = self.enforce() {
            // Back to what was in force.
            match previous {
                Some(p) => self.endpoints.insert(key.clone(), p),
                None => self.endpoints.remove(&key),
            };
            let _ = Datapath::detach_endpoint_pinned(
                &stored.registration.host_ifname,
                &self.links_dir(),
            );
            return Err(e);
        }
        self.store
            .save_endpoint(&key, &stored)
            .map_err(|source| AgentError::State {
                path: self.opts.state_dir.clone(),
                source,
            })?;
        log(format_args!(
            "endpoint {}/{} registered on {} with {:?}",
            stored.registration.namespace,
            stored.registration.pod_name,
            stored.registration.host_ifname,
            stored.registration.ips
        ));
        self.endpoint_info(&key)
            .ok_or_else(|| AgentError::Refused("the endpoint vanished".into()))
    }

    /// Forgets an endpoint (no error when it is unknown) and detaches its programs.
    pub fn remove_endpoint(
        &mut self,
        container_id: &str,
        ifname: &str,
    ) -> Result<bool, AgentError> {
        let key = format!("{container_id}/{ifname}");
        let Some(ep) = self.endpoints.remove(&key) else {
            return Ok(false);
        };
        let r = &ep.stored.registration;
        self.enforce()?;
        Datapath::detach_endpoint_pinned(&r.host_ifname, &self.links_dir())?;
        self.store
            .remove_endpoint(&key)
            .map_err(|source| AgentError::State {
                path: self.opts.state_dir.clone(),
                source,
            })?;
        log(format_args!(
            "endpoint {}/{} on {} removed",
            r.namespace, r.pod_name, r.host_ifname
        ));
        Ok(true)
    }

    /// Endpoints whose host interface vanished (deleted without a CNI DEL): forgets them.
    pub fn collect_vanished(&mut self) {
        let gone: Vec<(String, String)> = self
            .endpoints
            .values()
            .filter(|e| {
                crate::sys::ifindex(&e.stored.registration.host_ifname)
                    != Some(e.stored.host_ifindex)
            })
            .map(|e| {
                (
                    e.stored.registration.container_id.clone(),
                    e.stored.registration.ifname.clone(),
                )
            })
            .collect();
        for (cid, ifname) in gone {
            log(format_args!(
                "the interface of endpoint {cid}/{ifname} is gone: removing it"
            ));
            if let Err(e) = self.remove_endpoint(&cid, &ifname) {
                log(format_args!("cannot remove {cid}/{ifname}: {e}"));
            }
        }
    }

    pub fn endpoint_info(&self, key: &str) -> Option<EndpointInfo> {
        let ep = self.endpoints.get(key)?;
        let r = &ep.stored.registration;
        let live = self.live.as_ref();
        let bundle_ep = live.and_then(|l| {
            let ip = r.ips.first()?;
            let w = l.compiled.inventory.by_ip(*ip)?;
            l.compiled.bundle.endpoint(&w.full_name())
        });
        let policy = bundle_ep
            .and_then(|e| live.and_then(|l| l.compiled.bundle.policies.get(e.policy as usize)));
        Some(EndpointInfo {
            container_id: r.container_id.clone(),
            ifname: r.ifname.clone(),
            netns: r.netns.clone(),
            host_ifname: r.host_ifname.clone(),
            host_ifindex: ep.stored.host_ifindex,
            namespace: r.namespace.clone(),
            pod_name: r.pod_name.clone(),
            ips: r.ips.clone(),
            workload: bundle_ep.map(|e| e.name.clone()),
            identity: bundle_ep.map_or(0, |e| e.identity.0),
            ingress_enforced: policy.is_some_and(|p| p.ingress_enforced),
            egress_enforced: policy.is_some_and(|p| p.egress_enforced),
        })
    }

    pub fn get_endpoint(&self, container_id: &str, ifname: &str) -> Option<EndpointInfo> {
        self.endpoint_info(&format!("{container_id}/{ifname}"))
    }

    pub fn endpoint_list(&self) -> Vec<EndpointInfo> {
        self.endpoints
            .keys()
            .filter_map(|k| self.endpoint_info(k))
            .collect()
    }

    /// Reads the ring buffer into the event log.
    pub fn poll_events(&mut self) {
        let raw = match self.dp.drain_events() {
            Ok(r) => r,
            Err(e) => {
                log(format_args!("cannot read events: {e}"));
                return;
            }
        };
        if raw.is_empty() {
            return;
        }
        let names = Names {
            compiled: self.live.as_ref().map(|l| &l.compiled),
        };
        let records: Vec<EventRecord> = raw
            .iter()
            .map(|e| names.record(e, events::wall_time(e.timestamp_ns)))
            .collect();
        for r in records {
            self.events.push(r);
        }
    }

    /// Removes expired conntrack entries (the datapath ignores them already; this frees the
    /// room). Returns how many went.
    pub fn collect_conntrack(&mut self) -> usize {
        match self.dp.expire_conntrack(crate::sys::monotonic_ns()) {
            Ok(n) => n,
            Err(e) => {
                log(format_args!("conntrack garbage collection failed: {e}"));
                0
            }
        }
    }

    pub fn status(&self) -> Result<Status, AgentError> {
        let tables = self.dp.live_tables()?;
        let ct = self.dp.conntrack()?.len();
        let stats = self.dp.stats()?;
        let live = self.live.as_ref();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            started: humantime::format_rfc3339_seconds(self.started).to_string(),
            source: self.opts.source.display().to_string(),
            bpffs_root: self.opts.bpffs_root.display().to_string(),
            socket: self.opts.socket.display().to_string(),
            programs: vec![programs::FROM_EP.into(), programs::TO_EP.into()],
            policy: live.map(|l| PolicyStatus {
                revision: l.revision,
                generation: l.generation,
                swapped_at: humantime::format_rfc3339_seconds(l.swapped_at).to_string(),
                compile_ms: l.compile_ms,
                swap_ms: l.swap_ms,
                rules: l.compiled.bundle.rules.len(),
                policies: l.tree.policies.len(),
            }),
            live_generation: self.dp.live_generation()?,
            rejected: self.rejected.clone(),
            endpoints: self.endpoints.len(),
            identities: live.map_or(0, |l| l.compiled.bundle.identities.len()),
            maps: vec![
                MapFill::new(maps::IPCACHE, tables.ipcache.len(), None),
                MapFill::new(maps::POLICY, tables.policy.len(), None),
                MapFill::new(maps::ENDPOINTS, tables.endpoints.len(), None),
                MapFill::new(
                    maps::CONNTRACK,
                    ct,
                    Some(self.opts.ct_max_entries.unwrap_or(65536) as usize),
                ),
            ],
            events_seen: self.events.seen,
            packets: stats
                .iter()
                .map(|(code, n)| (datapath::reason::name(*code).to_owned(), *n))
                .collect(),
        })
    }

    pub fn pin_dir(&self) -> &Path {
        self.dp.pin_dir()
    }

    /// The addresses the node's endpoints hold, by endpoint key (for tests and status).
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.endpoints
            .values()
            .flat_map(|e| e.stored.registration.ips.iter().copied())
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub revision: u64,
    pub generation: u32,
    pub swapped_at: String,
    pub compile_ms: f64,
    pub swap_ms: f64,
    pub policies: usize,
    pub rules: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    pub entries: usize,
    /// `None` for the per-generation maps, sized to their contents at each swap.
    pub capacity: Option<usize>,
}

impl MapFill {
    fn new(name: &str, entries: usize, capacity: Option<usize>) -> MapFill {
        MapFill {
            name: name.into(),
            entries,
            capacity,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub kernel: String,
    pub started: String,
    pub source: String,
    pub bpffs_root: String,
    pub socket: String,
    pub programs: Vec<String>,
    pub policy: Option<PolicyStatus>,
    pub live_generation: u32,
    pub rejected: Option<Rejection>,
    pub endpoints: usize,
    pub identities: usize,
    pub maps: Vec<MapFill>,
    pub events_seen: u64,
    /// Packets seen by the programs, by reason.
    pub packets: BTreeMap<String, u64>,
}
