//! The agent's state and its one rule: every change (a tree, an endpoint coming or going)
//! recompiles the tree with the registered pods in it and swaps in one new generation; a
//! change that does not compile leaves the last good generation in force.

use super::events::{self, EventLog, EventRecord, Names};
use super::metrics::Metrics;
use super::pods::{self, Pod};
use super::source::{Revision, Source};
use super::store::{Store, StoredEndpoint};
use crate::api::{EndpointInfo, EndpointRegistration};
use crate::datapath::{self, maps, programs};
use crate::generation::{tables, GenerationSpec, Tables};
use crate::loader::{Datapath, LoadOptions};
use compiler::bundle::Options;
use compiler::identity::IdentityTable;
use compiler::lower::{self, Compiled};
use policy_lang::model::Tree;
use policy_lang::{Checked, LocatedDiagnostic};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// `policyd run`'s settings.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where revisions of the tree come from.
    pub source: Source,
    /// bpffs directory of the maps and links (`<root>/links`).
    pub bpffs_root: PathBuf,
    pub socket: PathBuf,
    /// Registered endpoints and the identity allocation.
    pub state_dir: PathBuf,
    pub ct_max_entries: Option<u32>,
    /// Established connections survive a revision that no longer allows them.
    pub keep_established: bool,
    /// Packets between endpoints of this node skip the node's IP stack.
    pub local_delivery: bool,
    /// Where `GET /metrics` is served (`None`: nowhere).
    pub metrics_address: Option<std::net::SocketAddr>,
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
    /// Sequence number of the source revision (1 for the first one applied).
    pub revision: u64,
    /// Its commit, when known.
    pub commit: Option<String>,
    /// A hash of its files: a change that leaves them as they were is no new revision.
    pub fingerprint: u64,
    pub generation: u32,
    pub swapped_at: SystemTime,
    pub swap_ms: f64,
    pub compile_ms: f64,
}

/// A tree that was refused, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rejection {
    pub time: String,
    pub commit: Option<String>,
    /// `file:line:column: CODE message`, every error.
    pub errors: Vec<String>,
}

/// One line of `policyd history`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Sequence number of the revision (a rejected or unchanged one takes none).
    pub revision: Option<u64>,
    pub commit: Option<String>,
    pub time: String,
    /// `applied`, `rejected` or `unchanged`.
    pub result: String,
    /// The first errors of a rejected revision, and how many there were.
    pub errors: Vec<String>,
    pub error_count: usize,
    pub generation: Option<u32>,
    pub entries_added: usize,
    pub entries_removed: usize,
    pub compile_ms: f64,
    pub swap_ms: f64,
    /// From the change seen to the revision enforced (or refused).
    pub change_to_enforced_ms: f64,
}

/// How many revisions `policyd history` keeps.
pub const KEPT_HISTORY: usize = 256;

pub struct Agent {
    pub opts: RunOptions,
    dp: Datapath,
    store: Store,
    endpoints: BTreeMap<String, Endpoint>,
    identities: IdentityTable,
    source_revision: u64,
    pub live: Option<Live>,
    /// The map contents in force, to count what each swap adds and removes.
    live_tables: Option<Tables>,
    pub rejected: Option<Rejection>,
    rejected_fingerprint: Option<u64>,
    /// The previous generation's maps are still in their slot.
    release_pending: bool,
    pub events: EventLog,
    pub history: VecDeque<HistoryEntry>,
    pub metrics: Metrics,
    /// The last revision the source produced (what `Reload` reads again).
    last_revision: Option<Revision>,
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
        load.keep_established = opts.keep_established;
        load.local_delivery = opts.local_delivery;
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
            live_tables: None,
            rejected: None,
            rejected_fingerprint: None,
            release_pending: false,
            events: EventLog::default(),
            history: VecDeque::new(),
            metrics: Metrics::new(),
            last_revision: None,
            started: SystemTime::now(),
        };
        if live_generation != 0 {
            log(format_args!(
                "generation {live_generation} is pinned under {}: it stays in force until the tree compiles",
                agent.opts.bpffs_root.display()
            ));
        }
        agent.adopt_endpoints()?;
        agent.metrics.endpoints.set(agent.endpoints.len() as i64);
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

    /// Reads the last revision again (`policyd` socket `Reload`). Returns whether it is in
    /// force afterwards.
    pub fn reload(&mut self) -> bool {
        let rev = match (&self.last_revision, &self.opts.source) {
            (Some(r), _) => Revision {
                seen: Instant::now(),
                ..r.clone()
            },
            (None, Source::Dir(d)) => Revision {
                tree: d.clone(),
                commit: super::source::commit_of(d),
                seen: Instant::now(),
            },
            (None, Source::Git { .. }) => return false,
        };
        self.apply(rev)
    }

    fn record(&mut self, entry: HistoryEntry) {
        if self.history.len() == KEPT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    /// Takes a revision of the source: checks it, compiles it with the registered pods and
    /// swaps it in; a tree with errors is refused and the revision in force stays. Returns
    /// whether the revision is in force afterwards.
    pub fn apply(&mut self, rev: Revision) -> bool {
        self.last_revision = Some(rev.clone());
        let fingerprint = super::source::fingerprint(&rev.tree);
        let now = || humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        if let Some(live) = &self.live {
            if live.fingerprint == fingerprint {
                log(format_args!(
                    "{}: no change to the tree (revision {} stays)",
                    rev.commit.as_deref().unwrap_or("change"),
                    live.revision
                ));
                self.metrics.unchanged.inc();
                let entry = HistoryEntry {
                    revision: None,
                    commit: rev.commit.clone(),
                    time: now(),
                    result: "unchanged".into(),
                    errors: Vec::new(),
                    error_count: 0,
                    generation: None,
                    entries_added: 0,
                    entries_removed: 0,
                    compile_ms: 0.0,
                    swap_ms: 0.0,
                    change_to_enforced_ms: ms(rev.seen),
                };
                self.record(entry);
                // A revision that returns to the one in force clears a refusal.
                self.rejected = None;
                self.rejected_fingerprint = None;
                return true;
            }
        }
        if self.rejected_fingerprint == Some(fingerprint) {
            // The refused tree again, byte for byte: refused again, without noise.
            return false;
        }
        let t = Instant::now();
        let checked = policy_lang::check(std::slice::from_ref(&rev.tree));
        let mut errors: Vec<String> = checked
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
        if checked.has_io_errors() && errors.is_empty() {
            errors.push(format!("cannot read `{}`", rev.tree.display()));
        }
        let result = if errors.is_empty() {
            log(format_args!(
                "checked {} ({}) in {:.0} ms",
                rev.tree.display(),
                rev.commit.as_deref().unwrap_or("no commit"),
                ms(t)
            ));
            self.enforce_tree(Arc::new(checked), Some((&rev, fingerprint)))
                .map_err(|e| vec![e.to_string()])
        } else {
            Err(errors)
        };
        match result {
            Ok(stats) => {
                self.rejected = None;
                self.rejected_fingerprint = None;
                self.metrics.applied.inc();
                let seen_ms = ms(rev.seen);
                self.metrics.change_to_enforced.observe(seen_ms / 1000.0);
                let entry = HistoryEntry {
                    revision: Some(self.source_revision),
                    commit: rev.commit.clone(),
                    time: now(),
                    result: "applied".into(),
                    errors: Vec::new(),
                    error_count: 0,
                    generation: Some(stats.generation),
                    entries_added: stats.added,
                    entries_removed: stats.removed,
                    compile_ms: stats.compile_ms,
                    swap_ms: stats.swap_ms,
                    change_to_enforced_ms: seen_ms,
                };
                self.record(entry);
                true
            }
            Err(errors) => {
                log(format_args!(
                    "refused {} ({}): {} error(s); the revision in force stays:\n  {}",
                    rev.tree.display(),
                    rev.commit.as_deref().unwrap_or("no commit"),
                    errors.len(),
                    errors.join("\n  ")
                ));
                self.metrics.rejected.inc();
                let entry = HistoryEntry {
                    revision: None,
                    commit: rev.commit.clone(),
                    time: now(),
                    result: "rejected".into(),
                    errors: errors.iter().take(5).cloned().collect(),
                    error_count: errors.len(),
                    generation: None,
                    entries_added: 0,
                    entries_removed: 0,
                    compile_ms: ms(t),
                    swap_ms: 0.0,
                    change_to_enforced_ms: ms(rev.seen),
                };
                self.record(entry);
                self.rejected = Some(Rejection {
                    time: now(),
                    commit: rev.commit.clone(),
                    errors,
                });
                self.rejected_fingerprint = Some(fingerprint);
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
            Some(l) => self.enforce_tree(l.source.clone(), None).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Compiles a checked tree with the registered pods and swaps the result in. `revision`
    /// is the source revision it comes from, `None` when the revision in force is compiled
    /// again (an endpoint came or went).
    fn enforce_tree(
        &mut self,
        checked: Arc<Checked>,
        revision: Option<(&Revision, u64)>,
    ) -> Result<SwapStats, AgentError> {
        let t = Instant::now();
        let tree = pods::with_pods(&checked.tree, &self.pods());
        let compiled = lower::compile(
            &tree,
            &checked.sources,
            Some(self.identities.clone()),
            Options::default(),
        );
        let mut spec = GenerationSpec::new(&compiled.bundle);
        spec.only_local_policies = true;
        for ep in self.endpoints.values() {
            for ip in &ep.stored.registration.ips {
                spec.ifindex.insert(*ip, ep.stored.host_ifindex);
            }
        }
        let mut next = tables(&spec).map_err(crate::loader::DatapathError::from)?;
        next.sort();
        let compile_ms = ms(t);
        let t = Instant::now();
        let swap = self.dp.write_tables(&next)?;
        let swap_ms = ms(t);
        let (added, removed) = match &self.live_tables {
            Some(old) => table_changes(old, &next),
            None => (
                next.policy.len() + next.ipcache.len() + next.endpoints.len(),
                0,
            ),
        };
        let (revision, commit, fingerprint) = match (revision, &self.live) {
            (Some((rev, fp)), _) => {
                self.source_revision += 1;
                (self.source_revision, rev.commit.clone(), fp)
            }
            (None, Some(l)) => (l.revision, l.commit.clone(), l.fingerprint),
            (None, None) => (0, None, 0),
        };
        log(format_args!(
            "generation {} in force (revision {revision}{}): {} endpoints ({} here), {} policy entries, {} ipcache entries; +{added} -{removed} entries (compiled in {compile_ms:.1} ms, swapped in {swap_ms:.1} ms)",
            swap.generation,
            commit.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
            compiled.bundle.endpoints.len(),
            self.endpoints.len(),
            swap.policy_entries,
            swap.ipcache_entries
        ));
        self.identities = compiled.identities.clone();
        if let Err(e) = self.store.save_identities(&self.identities) {
            log(format_args!("cannot save the identity allocation: {e}"));
        }
        self.metrics.swap_seconds.observe(swap_ms / 1000.0);
        self.metrics.compile_seconds.observe(compile_ms / 1000.0);
        self.metrics.revision.set(revision as i64);
        self.metrics.generation.set(i64::from(swap.generation));
        self.metrics.policy_entries.set(swap.policy_entries as i64);
        self.metrics.endpoints.set(self.endpoints.len() as i64);
        self.metrics.last_applied_timestamp.set(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        self.live_tables = Some(next);
        self.release_pending = true;
        self.live = Some(Live {
            tree,
            source: checked,
            compiled,
            revision,
            commit,
            fingerprint,
            generation: swap.generation,
            swapped_at: SystemTime::now(),
            swap_ms,
            compile_ms,
        });
        // The compile's scratch memory and the previous generation's state are free now.
        crate::sys::trim_heap();
        Ok(SwapStats {
            generation: swap.generation,
            added,
            removed,
            compile_ms,
            swap_ms,
        })
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

    /// Frees the previous generation's maps, when a swap left them (called off the swap's
    /// path, by the housekeeping thread).
    pub fn release_old_generation(&mut self) {
        if !self.release_pending {
            return;
        }
        self.release_pending = false;
        if let Err(e) = self.dp.release_old_generation() {
            log(format_args!(
                "cannot free the previous generation's maps: {e}"
            ));
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
            source: self.opts.source.describe(),
            bpffs_root: self.opts.bpffs_root.display().to_string(),
            socket: self.opts.socket.display().to_string(),
            programs: vec![programs::FROM_EP.into(), programs::TO_EP.into()],
            policy: live.map(|l| PolicyStatus {
                revision: l.revision,
                commit: l.commit.clone(),
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
            revisions: RevisionCounts {
                applied: self.metrics.applied.get(),
                rejected: self.metrics.rejected.get(),
                unchanged: self.metrics.unchanged.get(),
                last_change_to_enforced_ms: self
                    .history
                    .iter()
                    .rev()
                    .find(|h| h.result == "applied")
                    .map(|h| h.change_to_enforced_ms),
            },
            keep_established: self.opts.keep_established,
            packets: stats
                .iter()
                .map(|(code, n)| (datapath::reason::name(*code).to_owned(), *n))
                .collect(),
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub revision: u64,
    pub commit: Option<String>,
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
    pub revisions: RevisionCounts,
    /// `--established keep`: connections survive revisions that no longer allow them.
    pub keep_established: bool,
    /// Packets seen by the programs, by reason.
    pub packets: BTreeMap<String, u64>,
}

/// What one swap did.
#[derive(Clone, Copy, Debug)]
pub struct SwapStats {
    pub generation: u32,
    pub added: usize,
    pub removed: usize,
    pub compile_ms: f64,
    pub swap_ms: f64,
}

/// Entries (ipcache, policy, endpoints) that `next` has and `old` has not, and the reverse.
fn table_changes(old: &Tables, next: &Tables) -> (usize, usize) {
    fn diff<T: std::hash::Hash + Eq>(old: &[T], next: &[T]) -> (usize, usize) {
        let before: HashSet<&T> = old.iter().collect();
        let after: HashSet<&T> = next.iter().collect();
        (
            after.difference(&before).count(),
            before.difference(&after).count(),
        )
    }
    let (a1, r1) = diff(&old.ipcache, &next.ipcache);
    let (a2, r2) = diff(&old.policy, &next.policy);
    let (a3, r3) = diff(&old.endpoints, &next.endpoints);
    (a1 + a2 + a3, r1 + r2 + r3)
}

/// The revision counters (the same numbers as the metrics).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevisionCounts {
    pub applied: u64,
    pub rejected: u64,
    pub unchanged: u64,
    pub last_change_to_enforced_ms: Option<f64>,
}
