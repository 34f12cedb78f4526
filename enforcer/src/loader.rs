//! Loads the endpoint programs with their pinned maps, writes policy generations and flips
//! them atomically, and reads the maps back (conntrack, statistics, events).

use crate::datapath::{
    self, maps, programs, CtKey, CtVal, EpKey, EpVal, Event, IpcKey, IpcVal, PolKey, PolVal,
};
use crate::generation::{tables, GenerationError, GenerationSpec, Tables};
use crate::sys;
use aya::maps::{Array, ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The compiled endpoint programs (built by `build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/plc_ep.bpf.o"));

/// bpffs's `f_type` (`BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("`{path}` is not on a bpf filesystem: mount one there (`mount -t bpf bpf {path}`)")]
    NotBpffs { path: PathBuf },
    #[error("cannot use pin directory `{path}`: {source}")]
    PinDir { path: PathBuf, source: io::Error },
    #[error("cannot load the datapath object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the verifier rejected `{program}` ({error}); verifier log:\n{log}")]
    Verifier {
        program: &'static str,
        error: io::Error,
        log: String,
    },
    #[error("program `{program}`: {source}")]
    Program {
        program: &'static str,
        source: ProgramError,
    },
    #[error("cannot attach `{program}` to `{interface}`: {source}")]
    Attach {
        program: &'static str,
        interface: String,
        source: ProgramError,
    },
    #[error("no datapath is pinned under `{path}` (is policyd running with this --bpffs-root?)")]
    NotPinned { path: PathBuf },
    #[error("cannot pin the link of `{program}` on `{interface}` at `{path}`: {source:?}")]
    PinLink {
        program: &'static str,
        interface: String,
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error("`{0}` is missing from the datapath object")]
    Missing(&'static str),
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("{call} on `{map}`: {source}")]
    Syscall {
        call: &'static str,
        map: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    Generation(#[from] GenerationError),
}

/// Where and how to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Directory on a bpffs where the maps are pinned (created if missing). Maps already
    /// pinned there are reused, so a restarted agent keeps enforcing what was live.
    pub pin_dir: PathBuf,
    /// Conntrack capacity (default: the object's 65536).
    pub ct_max_entries: Option<u32>,
    /// Fragment table capacity (default: the object's 8192).
    pub frag_max_entries: Option<u32>,
    /// Connections conntrack knows survive a generation that no longer allows them
    /// (`plc_keep_established`); by default they are judged again and cut.
    pub keep_established: bool,
    /// Packets between endpoints of this node skip the node's IP stack
    /// (`plc_local_delivery`, on by default).
    pub local_delivery: bool,
}

impl LoadOptions {
    pub fn new(pin_dir: impl Into<PathBuf>) -> LoadOptions {
        LoadOptions {
            pin_dir: pin_dir.into(),
            ct_max_entries: None,
            frag_max_entries: None,
            keep_established: false,
            local_delivery: true,
        }
    }
}

/// What a generation write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Swap {
    /// The generation now live.
    pub generation: u32,
    pub slot: u32,
    pub ipcache_entries: usize,
    pub policy_entries: usize,
    pub endpoint_entries: usize,
}

/// The loaded datapath: both endpoint programs, verified and ready to attach or run.
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    /// The inner maps this process put into the live generation, with a hash of their
    /// contents (ipcache, endpoints, policy shards): the next write reuses those it would
    /// rebuild identically. `None` before this process's first write.
    live_inner: Option<Vec<Option<(u64, MapData)>>>,
}

/// One inner map a generation needs: where it goes and what it holds.
struct InnerSpec {
    outer: &'static str,
    map_type: u32,
    name: &'static str,
    keys: Vec<u8>,
    values: Vec<u8>,
    key_size: usize,
    value_size: usize,
    count: usize,
    /// Of the keys and values: equal contents, equal hash.
    hash: u64,
}

impl InnerSpec {
    fn of<K: aya::Pod, V: aya::Pod>(
        outer: &'static str,
        map_type: u32,
        entries: &[(K, V)],
        name: &'static str,
    ) -> InnerSpec {
        let keys: Vec<K> = entries.iter().map(|(k, _)| *k).collect();
        let values: Vec<V> = entries.iter().map(|(_, v)| *v).collect();
        let (keys, values) = (
            datapath::as_bytes(&keys).to_vec(),
            datapath::as_bytes(&values).to_vec(),
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hasher::write(&mut h, &keys);
        std::hash::Hasher::write(&mut h, &values);
        InnerSpec {
            outer,
            map_type,
            name,
            keys,
            values,
            key_size: size_of::<K>(),
            value_size: size_of::<V>(),
            count: entries.len(),
            hash: std::hash::Hasher::finish(&h),
        }
    }

    /// A fresh inner map holding the entries.
    fn build(&self) -> Result<MapData, DatapathError> {
        let syscall = |call, source| DatapathError::Syscall {
            call,
            map: self.outer,
            source,
        };
        // INVARIANT: type, key size, value size and flags equal the inner template in
        // maps.h, or the kernel refuses the map in the outer slot.
        let fd: OwnedFd = sys::create_map(
            self.map_type,
            self.key_size as u32,
            self.value_size as u32,
            (self.count as u32).max(1),
            sys::BPF_F_NO_PREALLOC,
            self.name,
        )
        .map_err(|e| syscall("BPF_MAP_CREATE", e))?;
        sys::update_all(
            fd.as_fd(),
            &self.keys,
            &self.values,
            self.key_size,
            self.value_size,
        )
        .map_err(|e| syscall("BPF_MAP_UPDATE_BATCH", e))?;
        MapData::from_fd(fd).map_err(|source| DatapathError::Map {
            map: self.outer,
            source,
        })
    }
}

fn is_bpffs(path: &Path) -> Result<bool, io::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: `c` is a valid C string and `st` a writable statfs buffer.
    let r = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: statfs succeeded and filled the buffer (it was zeroed before anyway).
    let st = unsafe { st.assume_init() };
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let f_type = st.f_type as i64;
    Ok(f_type == BPF_FS_MAGIC)
}

impl Datapath {
    /// Loads the object, creating or reusing the pinned maps, and runs both programs through
    /// the verifier. A rejection carries the verifier's log.
    pub fn load(opts: &LoadOptions) -> Result<Datapath, DatapathError> {
        Datapath::load_object(opts, true)
    }

    /// Opens the maps an agent pinned under `pin_dir`, without loading the programs (what
    /// `policyd bpf ...` reads, with or without a running agent). Refuses a directory where no
    /// agent pinned anything, rather than creating maps there.
    pub fn open_pinned(pin_dir: &Path) -> Result<Datapath, DatapathError> {
        let live = pin_dir.join(maps::LIVE);
        if !live.exists() {
            return Err(DatapathError::NotPinned {
                path: pin_dir.to_owned(),
            });
        }
        Datapath::load_object(&LoadOptions::new(pin_dir), false)
    }

    fn load_object(opts: &LoadOptions, verify: bool) -> Result<Datapath, DatapathError> {
        let pin_err = |source| DatapathError::PinDir {
            path: opts.pin_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&opts.pin_dir).map_err(pin_err)?;
        if !is_bpffs(&opts.pin_dir).map_err(pin_err)? {
            return Err(DatapathError::NotBpffs {
                path: opts.pin_dir.clone(),
            });
        }
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(&opts.pin_dir);
        if let Some(n) = opts.ct_max_entries {
            loader.map_max_entries(maps::CONNTRACK, n);
        }
        if let Some(n) = opts.frag_max_entries {
            loader.map_max_entries(maps::FRAGMENTS, n);
        }
        let keep = u8::from(opts.keep_established);
        loader.override_global("plc_keep_established", &keep, true);
        let local = u8::from(opts.local_delivery);
        loader.override_global("plc_local_delivery", &local, true);
        let mut ebpf = loader.load(OBJECT)?;
        let programs: &[&'static str] = if verify {
            &[programs::FROM_EP, programs::TO_EP]
        } else {
            &[]
        };
        for &name in programs {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(DatapathError::Missing(name))?
                .try_into()
                .map_err(|source| DatapathError::Program {
                    program: name,
                    source,
                })?;
            prog.load().map_err(|e| match e {
                ProgramError::LoadError {
                    io_error,
                    verifier_log,
                } => DatapathError::Verifier {
                    program: name,
                    error: io_error,
                    log: verifier_log.to_string(),
                },
                source => DatapathError::Program {
                    program: name,
                    source,
                },
            })?;
        }
        Ok(Datapath {
            ebpf,
            pin_dir: opts.pin_dir.clone(),
            live_inner: None,
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    fn classifier_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut SchedClassifier, DatapathError> {
        self.ebpf
            .program_mut(name)
            .ok_or(DatapathError::Missing(name))?
            .try_into()
            .map_err(|source| DatapathError::Program {
                program: name,
                source,
            })
    }

    /// One of the endpoint programs ([`programs::FROM_EP`], [`programs::TO_EP`]).
    pub fn program(&self, name: &'static str) -> Result<&SchedClassifier, DatapathError> {
        self.ebpf
            .program(name)
            .ok_or(DatapathError::Missing(name))?
            .try_into()
            .map_err(|source| DatapathError::Program {
                program: name,
                source,
            })
    }

    /// Attaches the programs to an endpoint's host-side interface: `plc_from_ep` at its tc
    /// ingress (what the pod sends), `plc_to_ep` at its tc egress (what it receives). TCX
    /// where the kernel has it (6.6), clsact otherwise. The links last as long as `self`.
    pub fn attach_endpoint(&mut self, ifname: &str) -> Result<(), DatapathError> {
        // Needed only without TCX; an existing clsact is fine, and any real problem shows in
        // the attach below.
        let _ = aya::programs::tc::qdisc_add_clsact(ifname);
        for (name, at) in [
            (programs::FROM_EP, TcAttachType::Ingress),
            (programs::TO_EP, TcAttachType::Egress),
        ] {
            let prog = self.classifier_mut(name)?;
            prog.attach(ifname, at)
                .map_err(|source| DatapathError::Attach {
                    program: name,
                    interface: ifname.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Attaches the programs to an endpoint's host-side interface through links pinned under
    /// `links_dir` (`<ifname>_from_ep`, `<ifname>_to_ep`: bpffs refuses dots in names), so that they stay attached when this
    /// process exits. Links already pinned there (a previous agent's) are taken over: the
    /// kernel swaps their program for this one in place, so the interface is never without
    /// one. Returns whether an existing link was adopted.
    pub fn attach_endpoint_pinned(
        &mut self,
        ifname: &str,
        links_dir: &Path,
    ) -> Result<bool, DatapathError> {
        use aya::programs::links::{FdLink, PinnedLink};
        use aya::programs::tc::SchedClassifierLink;
        std::fs::create_dir_all(links_dir).map_err(|source| DatapathError::PinDir {
            path: links_dir.to_owned(),
            source,
        })?;
        let mut adopted = true;
        for (name, at, suffix) in [
            (programs::FROM_EP, TcAttachType::Ingress, "from_ep"),
            (programs::TO_EP, TcAttachType::Egress, "to_ep"),
        ] {
            let path = links_dir.join(format!("{ifname}_{suffix}"));
            let prog = self.classifier_mut(name)?;
            let attach_err = |source| DatapathError::Attach {
                program: name,
                interface: ifname.to_owned(),
                source,
            };
            // A pin whose interface is gone holds a defunct link: replacing its program
            // fails, and a fresh attach follows.
            let taken_over = match PinnedLink::from_pin(&path) {
                Ok(pinned) => {
                    let replaced = SchedClassifierLink::try_from(FdLink::from(pinned))
                        .ok()
                        .and_then(|link| prog.attach_to_link(link).ok());
                    match replaced {
                        Some(id) => {
                            // The pin keeps the link; dropping our handle closes only the fd.
                            drop(prog.take_link(id).map_err(attach_err)?);
                            true
                        }
                        None => {
                            let _ = std::fs::remove_file(&path);
                            false
                        }
                    }
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                    false
                }
            };
            if taken_over {
                continue;
            }
            adopted = false;
            // Needed only without TCX.
            let _ = aya::programs::tc::qdisc_add_clsact(ifname);
            let id = prog.attach(ifname, at).map_err(attach_err)?;
            let link = prog.take_link(id).map_err(attach_err)?;
            // A netlink (clsact) filter is not an fd: it stays attached by itself.
            if let Ok(fd_link) = FdLink::try_from(link) {
                fd_link
                    .pin(&path)
                    .map_err(|source| DatapathError::PinLink {
                        program: name,
                        interface: ifname.to_owned(),
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        Ok(adopted)
    }

    /// Removes an endpoint's pinned links: the programs detach from its interface (if it
    /// still exists). Missing pins are not an error.
    pub fn detach_endpoint_pinned(ifname: &str, links_dir: &Path) -> Result<(), DatapathError> {
        for suffix in ["from_ep", "to_ep"] {
            let path = links_dir.join(format!("{ifname}_{suffix}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(DatapathError::PinDir { path, source }),
            }
        }
        Ok(())
    }

    fn map(&self, name: &'static str) -> Result<&Map, DatapathError> {
        self.ebpf.map(name).ok_or(DatapathError::Missing(name))
    }

    fn map_data(&self, name: &'static str) -> Result<&MapData, DatapathError> {
        match self.map(name)? {
            Map::ArrayOfMaps(m) => Ok(m),
            Map::Array(m) => Ok(m),
            _ => Err(DatapathError::Missing(name)),
        }
    }

    /// The live generation (0 before the first write: no slot is filled then, and the
    /// programs drop everything with `no-generation`).
    pub fn live_generation(&self) -> Result<u32, DatapathError> {
        let live: Array<&MapData, u32> =
            Array::try_from(self.map(maps::LIVE)?).map_err(|source| DatapathError::Map {
                map: maps::LIVE,
                source,
            })?;
        live.get(&0, 0).map_err(|source| DatapathError::Map {
            map: maps::LIVE,
            source,
        })
    }

    /// Builds the next generation beside the live one and flips to it:
    /// 1. fresh inner maps (ipcache, policy, endpoints), filled in batches, go into the slot
    ///    the live generation does not use (no packet reads it, see step 4);
    /// 2. `plc_live_v1` is set to the next generation: packets that start from now on use
    ///    only the new maps, packets already running finish on the old ones;
    /// 3. the new endpoint slot is written again with the same map: the kernel returns from a
    ///    map-of-maps update only after every running BPF program has finished
    ///    (`synchronize_rcu`), so no packet still reads the old generation;
    /// 4. the old slot is emptied, freeing its maps, and is ready for the next write.
    ///
    /// A failure before step 2 leaves the live generation untouched.
    pub fn write_generation(&mut self, spec: &GenerationSpec<'_>) -> Result<Swap, DatapathError> {
        let t = tables(spec)?;
        self.write_tables(&t)
    }

    /// [`Datapath::write_generation`] of tables already computed.
    ///
    /// Every map-of-maps update returns only after an RCU grace period (the kernel waits for
    /// running programs), about 10 ms on this kind of VM. The three inner maps are filled on
    /// three threads and put into their slots by three concurrent updates, which share one
    /// grace period; the quiesce after the flip is one more. The old generation's maps are
    /// not removed here: [`Datapath::release_old_generation`] does it, off the swap's path
    /// (the next write replaces them in any case).
    pub fn write_tables(&mut self, t: &Tables) -> Result<Swap, DatapathError> {
        let trace = std::env::var_os("PLC_SWAP_TRACE").is_some();
        let t0 = std::time::Instant::now();
        let mark = |what: &str| {
            if trace {
                eprintln!(
                    "swap: {what} at {:.2} ms",
                    t0.elapsed().as_secs_f64() * 1000.0
                );
            }
        };
        let live = self.live_generation()?;
        let next = live.wrapping_add(1);
        let slot = next & 1;

        // The policy's shards, by policy and peer (as `plc_pol_one` picks them).
        let mut shards: Vec<Vec<(PolKey, PolVal)>> =
            vec![Vec::new(); datapath::POL_SHARDS as usize];
        for e in &t.policy {
            shards[datapath::pol_shard(&e.0) as usize].push(*e);
        }
        // Every inner map of the generation, in a fixed order: ipcache, endpoints, shards.
        // One whose contents equal the live generation's is that very map again (its
        // contents are what the new generation needs, so no packet can tell), and only the
        // others are built and filled: a revision that changes a few entries fills a few
        // shards.
        let mut specs: Vec<InnerSpec> = vec![
            InnerSpec::of(
                maps::IPCACHE,
                sys::BPF_MAP_TYPE_LPM_TRIE,
                &t.ipcache,
                "plc_ipc_v2_in",
            ),
            InnerSpec::of(
                maps::ENDPOINTS,
                sys::BPF_MAP_TYPE_HASH,
                &t.endpoints,
                "plc_ep_v1_in",
            ),
        ];
        for shard in &shards {
            specs.push(InnerSpec::of(
                maps::POLICY,
                sys::BPF_MAP_TYPE_LPM_TRIE,
                shard,
                "plc_pol_v2_in",
            ));
        }
        let mut previous = self.live_inner.take().unwrap_or_default();
        let mut reused: Vec<Option<MapData>> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| match previous.get_mut(i) {
                Some(slot @ Some(_)) if slot.as_ref().map(|(h, _)| *h) == Some(spec.hash) => {
                    slot.take().map(|(_, m)| m)
                }
                _ => None,
            })
            .collect();
        drop(previous);
        let fresh: Vec<Option<Result<MapData, DatapathError>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .zip(&reused)
                .map(|(spec, old)| match old {
                    Some(_) => None,
                    None => Some(scope.spawn(move || spec.build())),
                })
                .collect();
            handles
                .into_iter()
                .zip(&specs)
                .map(|(h, spec)| {
                    h.map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(DatapathError::Syscall {
                                call: "BPF_MAP_UPDATE_BATCH",
                                map: spec.outer,
                                source: io::Error::other("the filling thread panicked"),
                            })
                        })
                    })
                })
                .collect()
        });
        let mut inner: Vec<(u64, MapData)> = Vec::with_capacity(specs.len());
        let mut built = 0;
        for ((spec, old), new) in specs.iter().zip(reused.iter_mut()).zip(fresh) {
            let map = match (old.take(), new) {
                (Some(m), _) => m,
                (None, Some(r)) => {
                    built += 1;
                    r?
                }
                (None, None) => unreachable!("every inner map is reused or built"),
            };
            inner.push((spec.hash, map));
        }
        mark("inner maps filled");
        if trace {
            eprintln!(
                "swap: {built} of {} inner maps built, the others reused",
                inner.len()
            );
        }

        let mut slots = Vec::with_capacity(inner.len());
        for (i, (spec, (_, map))) in specs.iter().zip(&inner).enumerate() {
            let at = if spec.outer == maps::POLICY {
                slot * datapath::POL_SHARDS + (i - 2) as u32
            } else {
                slot
            };
            slots.push((spec.outer, at, map));
        }
        self.set_slots(&slots)?;
        mark("slots set");
        let live_map = self
            .ebpf
            .map_mut(maps::LIVE)
            .ok_or(DatapathError::Missing(maps::LIVE))?;
        let mut live_arr: Array<&mut MapData, u32> =
            Array::try_from(live_map).map_err(|source| DatapathError::Map {
                map: maps::LIVE,
                source,
            })?;
        live_arr
            .set(0, next, 0)
            .map_err(|source| DatapathError::Map {
                map: maps::LIVE,
                source,
            })?;
        mark("flipped");
        // Quiesce: returns after a grace period, so no program still runs on the old
        // generation, and its slot may be emptied or replaced.
        self.set_slots(&[(maps::ENDPOINTS, slot, &inner[1].1)])?;
        mark("quiesced");
        self.live_inner = Some(inner.into_iter().map(Some).collect());
        Ok(Swap {
            generation: next,
            slot,
            ipcache_entries: t.ipcache.len(),
            policy_entries: t.policy.len(),
            endpoint_entries: t.endpoints.len(),
        })
    }

    /// Empties the slots the live generation does not use, freeing the previous generation's
    /// maps (concurrent deletes: one grace period). Safe at any time after a write returned.
    pub fn release_old_generation(&self) -> Result<(), DatapathError> {
        let old = (self.live_generation()? & 1) ^ 1;
        let mut jobs = Vec::new();
        for name in [maps::IPCACHE, maps::ENDPOINTS] {
            jobs.push((name, self.map_data(name)?.fd().as_fd(), old));
        }
        for shard in 0..datapath::POL_SHARDS {
            jobs.push((
                maps::POLICY,
                self.map_data(maps::POLICY)?.fd().as_fd(),
                old * datapath::POL_SHARDS + shard,
            ));
        }
        let results = concurrently(&jobs, |(_, fd, key)| {
            sys::delete_elem(*fd, &key.to_ne_bytes())
        });
        for ((name, _, _), r) in jobs.iter().zip(results) {
            match r {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(source) => {
                    return Err(DatapathError::Syscall {
                        call: "BPF_MAP_DELETE_ELEM",
                        map: name,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Puts inner maps into slot `slot` of their outer maps, all at once: concurrent updates
    /// share the grace period each of them waits for.
    fn set_slots(&self, inner: &[(&'static str, u32, &MapData)]) -> Result<(), DatapathError> {
        let mut jobs = Vec::new();
        for (name, slot, map) in inner {
            let outer = self.map_data(name)?.fd().as_fd();
            let value = map.fd().as_fd().as_raw_fd().to_ne_bytes();
            jobs.push((*name, outer, slot.to_ne_bytes(), value));
        }
        let results = concurrently(&jobs, |(_, outer, key, value)| {
            sys::update_elem(*outer, key, value, sys::BPF_ANY)
        });
        for ((name, _, _, _), r) in jobs.iter().zip(results) {
            r.map_err(|source| DatapathError::Syscall {
                call: "BPF_MAP_UPDATE_ELEM",
                map: name,
                source,
            })?;
        }
        Ok(())
    }

    /// Whether slot `slot` of a per-generation map holds an inner map.
    /// (For the policy map, `slot` is a generation slot: its first shard is asked.)
    pub fn slot_filled(&self, name: &'static str, slot: u32) -> Result<bool, DatapathError> {
        let slot = if name == maps::POLICY {
            slot * datapath::POL_SHARDS
        } else {
            slot
        };
        let outer: ArrayOfMaps<&MapData, MapData> = ArrayOfMaps::try_from(self.map(name)?)
            .map_err(|source| DatapathError::Map { map: name, source })?;
        match outer.get(&slot, 0) {
            Ok(_) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(source) => Err(DatapathError::Map { map: name, source }),
        }
    }

    /// The inner map of a per-generation map in the live generation's slot.
    /// (Every shard of the policy map.)
    fn live_inner(&self, name: &'static str) -> Result<Vec<MapData>, DatapathError> {
        let slot = self.live_generation()? & 1;
        let outer: ArrayOfMaps<&MapData, MapData> = ArrayOfMaps::try_from(self.map(name)?)
            .map_err(|source| DatapathError::Map { map: name, source })?;
        let slots: Vec<u32> = if name == maps::POLICY {
            (0..datapath::POL_SHARDS)
                .map(|s| slot * datapath::POL_SHARDS + s)
                .collect()
        } else {
            vec![slot]
        };
        let mut out = Vec::new();
        for s in slots {
            match outer.get(&s, 0) {
                Ok(m) => out.push(m),
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => return Err(DatapathError::Map { map: name, source }),
            }
        }
        Ok(out)
    }

    fn read_live<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &'static str,
    ) -> Result<Vec<(K, V)>, DatapathError> {
        let mut out = Vec::new();
        for inner in self.live_inner(name)? {
            let raw = sys::entries(inner.fd().as_fd(), size_of::<K>(), size_of::<V>()).map_err(
                |source| DatapathError::Syscall {
                    call: "BPF_MAP_GET_NEXT_KEY",
                    map: name,
                    source,
                },
            )?;
            out.extend(
                raw.iter().filter_map(|(k, v)| {
                    Some((datapath::from_bytes(k)?, datapath::from_bytes(v)?))
                }),
            );
        }
        Ok(out)
    }

    /// The live generation's tables as the kernel holds them, in [`Tables::sort`] order
    /// (`cilium-dbg bpf policy get`, for us).
    pub fn live_tables(&self) -> Result<Tables, DatapathError> {
        let mut t = Tables {
            ipcache: self.read_live::<IpcKey, IpcVal>(maps::IPCACHE)?,
            policy: self.read_live::<PolKey, PolVal>(maps::POLICY)?,
            endpoints: self.read_live::<EpKey, EpVal>(maps::ENDPOINTS)?,
        };
        t.sort();
        Ok(t)
    }

    /// The endpoints of the live generation.
    pub fn endpoints(&self) -> Result<Vec<(EpKey, EpVal)>, DatapathError> {
        Ok(self.live_tables()?.endpoints)
    }

    /// Every conntrack entry.
    pub fn conntrack(&self) -> Result<Vec<(CtKey, CtVal)>, DatapathError> {
        let ct: HashMap<&MapData, CtKey, CtVal> = HashMap::try_from(self.map(maps::CONNTRACK)?)
            .map_err(|source| DatapathError::Map {
                map: maps::CONNTRACK,
                source,
            })?;
        Ok(ct.iter().filter_map(Result::ok).collect())
    }

    /// Deletes the conntrack entries that expired before `now_ns` (`bpf_ktime_get_ns`'s
    /// clock). The programs already treat them as absent; this returns their room.
    pub fn expire_conntrack(&mut self, now_ns: u64) -> Result<usize, DatapathError> {
        let map = self
            .ebpf
            .map_mut(maps::CONNTRACK)
            .ok_or(DatapathError::Missing(maps::CONNTRACK))?;
        let mut ct: HashMap<&mut MapData, CtKey, CtVal> =
            HashMap::try_from(map).map_err(|source| DatapathError::Map {
                map: maps::CONNTRACK,
                source,
            })?;
        let expired: Vec<CtKey> = ct
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| v.expires_ns < now_ns)
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for k in &expired {
            // Gone already (the LRU evicted it, or a packet replaced it): fine.
            if ct.remove(k).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Packets per reason code, summed over CPUs (codes that never occurred are left out).
    pub fn stats(&self) -> Result<BTreeMap<u16, u64>, DatapathError> {
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.map(maps::STATS)?)
            .map_err(|source| DatapathError::Map {
                map: maps::STATS,
                source,
            })?;
        let mut out = BTreeMap::new();
        for i in 0..datapath::STAT_SLOTS {
            let per_cpu = arr.get(&i, 0).map_err(|source| DatapathError::Map {
                map: maps::STATS,
                source,
            })?;
            let n: u64 = per_cpu.iter().sum();
            if n > 0 {
                out.insert(i as u16, n);
            }
        }
        Ok(out)
    }

    /// Takes every event waiting in the ring buffer.
    pub fn drain_events(&mut self) -> Result<Vec<Event>, DatapathError> {
        let map = self
            .ebpf
            .map_mut(maps::EVENTS)
            .ok_or(DatapathError::Missing(maps::EVENTS))?;
        let mut rb = RingBuf::try_from(map).map_err(|source| DatapathError::Map {
            map: maps::EVENTS,
            source,
        })?;
        let mut out = Vec::new();
        while let Some(item) = rb.next() {
            if let Some(e) = Event::from_bytes(&item) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Removes the pins of every map (the maps live on while this process holds them).
    pub fn unpin(&self) -> Result<(), DatapathError> {
        for name in maps::ALL {
            let path = self.pin_dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DatapathError::PinDir { path, source });
                }
            }
        }
        Ok(())
    }
}

/// Runs one bpf(2) call per job, each on its own thread, and returns their results in order.
/// Map-of-maps updates and deletes each wait for an RCU grace period; concurrent ones share it.
fn concurrently<J: Sync>(
    jobs: &[J],
    call: impl Fn(&J) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.iter().map(|j| scope.spawn(|| call(j))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("the thread panicked")))
            })
            .collect()
    })
}
