//! `policyd preflight`: can this node run the datapath, and which optional features it has.
//!
//! [`HostEnv`] is everything read from the machine ([`HostEnv::from_machine`]), or built from
//! plain values in tests ([`HostEnv::new`]); [`inspect`] turns it into a [`Report`] without
//! touching the machine again. The caller exits non-zero when [`Report::is_ok`] is false.
//!
//! Each check has a [`Status`]: `ok`; `missing` for an optional feature this kernel lacks
//! (never a failure); `warn` for something that works but deserves a look, or that could not
//! be verified; `fail` for a requirement that is not met. Failures are: a kernel older than
//! [`MIN_KERNEL`], a required kernel option missing, no bpffs at the pin root, and a missing
//! capability the agent cannot do without (CAP_NET_ADMIN; CAP_BPF or CAP_SYS_ADMIN).
//!
//! Why 5.10 is the minimum: the newest kernel features the datapath uses are the ring buffer
//! for events (`BPF_MAP_TYPE_RINGBUF`, 5.8), batch updates to fill a fresh generation
//! (`BPF_MAP_UPDATE_BATCH`, 5.6) and inner maps (hash and LPM trie in `ARRAY_OF_MAPS`) whose
//! size differs from the template map: the generation writer sizes every inner map to the
//! bundle, and before 5.10 the kernel only accepted inner maps with the template's
//! `max_entries` (5.10 gave each map type its own `map_meta_equal`). 5.10 is also a long-term
//! kernel (5.8 and 5.9 are not) and the minimum Cilium states in its system requirements.
//! Distribution kernels that backport these features under an older version number (RHEL 8's
//! 4.18) are rejected by the version check.
//!
//! The required kernel options are Cilium's base list without what only Cilium's agent uses
//! (CRYPTO_SHA1, CRYPTO_USER_API_HASH, SCHEDSTATS; CGROUPS comes with CGROUP_BPF). An option
//! built as a module (`=m`) counts as present: the kernel loads it on first use. NET_CLS_BPF
//! and NET_SCH_INGRESS only serve below 6.6 (TCX needs neither), but the loader always sets
//! up a clsact qdisc as the fallback, so they stay required. The optional groups follow
//! Cilium's lists for masquerading, L7 and FQDN proxies, the bandwidth manager and tunnels.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The oldest kernel policyd runs on (see the module documentation for why).
pub const MIN_KERNEL: KernelVersion = KernelVersion::new(5, 10, 0);
/// TCX, tc attachment through bpf_link; below it the programs attach through a clsact qdisc.
pub const TCX_KERNEL: KernelVersion = KernelVersion::new(6, 6, 0);
/// CAP_BPF and CAP_PERFMON exist from this kernel on; before, loading needs CAP_SYS_ADMIN.
pub const CAP_BPF_KERNEL: KernelVersion = KernelVersion::new(5, 8, 0);
/// From this kernel on BPF memory is charged to the memory cgroup, not to RLIMIT_MEMLOCK.
pub const MEMCG_ACCOUNTING_KERNEL: KernelVersion = KernelVersion::new(5, 11, 0);
/// Where policyd pins its maps unless told otherwise (`--bpffs-root`).
pub const DEFAULT_BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Capability numbers (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Kernel options the datapath cannot run without, and what each one is for.
const REQUIRED_OPTIONS: &[(&str, &str)] = &[
    ("CONFIG_BPF", "eBPF support"),
    (
        "CONFIG_BPF_SYSCALL",
        "the bpf(2) system call: maps and program loading",
    ),
    ("CONFIG_BPF_JIT", "JIT-compiled programs"),
    ("CONFIG_NET_CLS_BPF", "tc classifier programs (cls_bpf)"),
    (
        "CONFIG_NET_SCH_INGRESS",
        "the clsact qdisc the programs attach to without TCX",
    ),
    (
        "CONFIG_NET_CLS_ACT",
        "tc actions: a classifier's verdict drops the packet",
    ),
    ("CONFIG_CGROUP_BPF", "cgroup programs (socket-level hooks)"),
    (
        "CONFIG_PERF_EVENTS",
        "perf events, for BPF tracing and profiling",
    ),
];

/// An optional feature: the options it needs (every inner list needs one of its options),
/// and the kernel it needs.
struct FeatureSpec {
    name: &'static str,
    title: &'static str,
    enables: &'static [&'static str],
    needs: &'static [&'static [&'static str]],
    min_kernel: Option<KernelVersion>,
}

const FEATURES: &[FeatureSpec] = &[
    FeatureSpec {
        name: "tcx",
        title: "TCX attachment",
        enables: &["tc programs attached through bpf_link (TCX) instead of a clsact qdisc"],
        needs: &[&["CONFIG_NET_XGRESS"]],
        min_kernel: Some(TCX_KERNEL),
    },
    FeatureSpec {
        name: "masquerade",
        title: "masquerading (NAT)",
        enables: &["source NAT of pod egress to the node's address (iptables or nftables)"],
        needs: &[
            &["CONFIG_NETFILTER"],
            &["CONFIG_NF_CONNTRACK"],
            &["CONFIG_NF_NAT"],
            &["CONFIG_NETFILTER_XT_TARGET_MASQUERADE", "CONFIG_NFT_MASQ"],
        ],
        min_kernel: None,
    },
    FeatureSpec {
        name: "l7-proxy",
        title: "L7 and FQDN proxies",
        enables: &["HTTP rules (toPorts.rules.http)", "DNS rules and toFQDNs"],
        needs: &[
            &["CONFIG_NETFILTER_XT_TARGET_TPROXY", "CONFIG_NFT_TPROXY"],
            &["CONFIG_NETFILTER_XT_MATCH_SOCKET", "CONFIG_NFT_SOCKET"],
        ],
        min_kernel: None,
    },
    FeatureSpec {
        name: "bandwidth",
        title: "bandwidth limits",
        enables: &["pod egress bandwidth limits (EDT pacing with the fq qdisc)"],
        needs: &[&["CONFIG_NET_SCH_FQ"]],
        min_kernel: None,
    },
    FeatureSpec {
        name: "ipv6",
        title: "IPv6",
        enables: &["IPv6 endpoints, CIDR rules and ICMPv6"],
        needs: &[&["CONFIG_IPV6"]],
        min_kernel: None,
    },
    FeatureSpec {
        name: "vxlan",
        title: "VXLAN tunnels",
        enables: &["a VXLAN overlay between nodes"],
        needs: &[&["CONFIG_VXLAN"]],
        min_kernel: None,
    },
    FeatureSpec {
        name: "geneve",
        title: "Geneve tunnels",
        enables: &["a Geneve overlay between nodes"],
        needs: &[&["CONFIG_GENEVE"]],
        min_kernel: None,
    },
    FeatureSpec {
        name: "wireguard",
        title: "WireGuard",
        enables: &["WireGuard encryption between nodes"],
        needs: &[&["CONFIG_WIREGUARD"]],
        min_kernel: None,
    },
    FeatureSpec {
        name: "sctp",
        title: "SCTP",
        enables: &["SCTP ports in policies (protocol: SCTP)"],
        needs: &[&["CONFIG_IP_SCTP"]],
        min_kernel: None,
    },
];

/// A kernel version, `major.minor.patch`, as the leading part of a release string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> KernelVersion {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// The version at the start of a release string (`uname -r`): `6.18.3+deb13-amd64` is
    /// 6.18.3, `5.10.0-28-cloud-amd64` is 5.10.0, `6.6` is 6.6.0. `None` without at least
    /// `major.minor`.
    pub fn parse_release(release: &str) -> Option<KernelVersion> {
        let release = release.trim();
        let end = release
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(release.len());
        let mut parts = release[..end]
            .split('.')
            .take_while(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(KernelVersion::new(major, minor, patch))
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A kernel build configuration (the text of a `.config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Reads `CONFIG_X=value` lines; `# CONFIG_X is not set` and anything else is absent.
    pub fn parse(text: &str) -> KernelConfig {
        let values = text
            .lines()
            .filter_map(|line| {
                let (key, value) = line.trim().split_once('=')?;
                key.starts_with("CONFIG_")
                    .then(|| (key.to_owned(), value.trim().to_owned()))
            })
            .collect();
        KernelConfig { values }
    }

    /// An option's value; `option` with or without its `CONFIG_` prefix.
    pub fn value(&self, option: &str) -> ConfigValue {
        let value = if option.starts_with("CONFIG_") {
            self.values.get(option)
        } else {
            self.values.get(&format!("CONFIG_{option}"))
        };
        match value.map(String::as_str) {
            None | Some("n") | Some("") => ConfigValue::Missing,
            Some("m") => ConfigValue::M,
            // `y`, or the value of a string or number option.
            Some(_) => ConfigValue::Y,
        }
    }
}

/// A kernel option's state: built in, a module, absent, or not known (no config was found).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigValue {
    Y,
    M,
    Missing,
    Unknown,
}

impl ConfigValue {
    /// Built in or a module: either serves (a module is loaded on first use).
    pub fn is_present(self) -> bool {
        matches!(self, ConfigValue::Y | ConfigValue::M)
    }

    fn as_str(self) -> &'static str {
        match self {
            ConfigValue::Y => "y",
            ConfigValue::M => "m",
            ConfigValue::Missing => "missing",
            ConfigValue::Unknown => "unknown",
        }
    }
}

/// RLIMIT_MEMLOCK (the soft limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memlock {
    Unlimited,
    Bytes(u64),
    Unknown,
}

impl fmt::Display for Memlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Memlock::Unlimited => f.write_str("unlimited"),
            Memlock::Bytes(b) if b % (1 << 20) == 0 => write!(f, "{} MiB", b >> 20),
            Memlock::Bytes(b) if b % (1 << 10) == 0 => write!(f, "{} KiB", b >> 10),
            Memlock::Bytes(b) => write!(f, "{b} bytes"),
            Memlock::Unknown => f.write_str("unknown"),
        }
    }
}

/// What preflight reads from the machine.
#[derive(Clone, Debug)]
pub struct HostEnv {
    /// The kernel release (`uname -r`).
    pub release: String,
    /// The kernel build configuration, when one was found.
    pub config: Option<KernelConfig>,
    /// Where the configuration was read, or what was tried when none was found.
    pub config_source: String,
    /// Effective capabilities (`CapEff` in /proc/self/status), `None` when unreadable.
    pub cap_eff: Option<u64>,
    /// Where policyd pins its maps.
    pub bpffs_root: PathBuf,
    /// Whether `bpffs_root` is on a bpf filesystem (or would be, once created).
    pub bpffs_mounted: bool,
    pub memlock: Memlock,
}

impl HostEnv {
    /// An environment from plain values: bpffs root `/sys/fs/bpf`, no memlock limit.
    pub fn new(release: &str, config: Option<&str>, cap_eff: u64, bpffs_mounted: bool) -> HostEnv {
        HostEnv {
            release: release.to_owned(),
            config: config.map(KernelConfig::parse),
            config_source: if config.is_some() {
                "(given)".to_owned()
            } else {
                "(none given)".to_owned()
            },
            cap_eff: Some(cap_eff),
            bpffs_root: PathBuf::from(DEFAULT_BPFFS_ROOT),
            bpffs_mounted,
            memlock: Memlock::Unlimited,
        }
    }

    /// Reads this machine, with the maps pinned under `/sys/fs/bpf`.
    pub fn from_machine() -> HostEnv {
        HostEnv::from_machine_at(Path::new(DEFAULT_BPFFS_ROOT))
    }

    /// Reads this machine, with the maps pinned under `bpffs_root` (`--bpffs-root`).
    ///
    /// The release comes from /proc/sys/kernel/osrelease; the configuration from
    /// /proc/config.gz, else /boot/config-RELEASE, else /lib/modules/RELEASE/config; the
    /// capabilities from /proc/self/status, the memlock limit from /proc/self/limits, and
    /// the bpffs from /proc/self/mountinfo (this process's mount namespace).
    pub fn from_machine_at(bpffs_root: &Path) -> HostEnv {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let (config, config_source) = read_config(&release);
        let cap_eff = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_cap_eff(&s));
        let memlock = std::fs::read_to_string("/proc/self/limits")
            .map(|s| parse_memlock(&s))
            .unwrap_or(Memlock::Unknown);
        let bpffs_mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|mountinfo| {
                let path = resolve_existing(bpffs_root);
                fs_type_at(&mountinfo, &path).as_deref() == Some("bpf")
            })
            .unwrap_or(false);
        HostEnv {
            release,
            config,
            config_source,
            cap_eff,
            bpffs_root: bpffs_root.to_owned(),
            bpffs_mounted,
            memlock,
        }
    }

    fn has_cap(&self, cap: u32) -> Option<bool> {
        self.cap_eff.map(|caps| caps & (1u64 << cap) != 0)
    }

    fn option(&self, option: &str) -> ConfigValue {
        match &self.config {
            Some(config) => config.value(option),
            None => ConfigValue::Unknown,
        }
    }
}

/// The kernel configuration of `release`: /proc/config.gz, else /boot/config-RELEASE, else
/// /lib/modules/RELEASE/config.
fn read_config(release: &str) -> (Option<KernelConfig>, String) {
    let mut candidates = vec![PathBuf::from("/proc/config.gz")];
    if !release.is_empty() {
        candidates.push(PathBuf::from(format!("/boot/config-{release}")));
        candidates.push(PathBuf::from(format!("/lib/modules/{release}/config")));
    }
    read_first_config(&candidates)
}

/// The first of `candidates` that reads (gzip when it ends in `.gz`), and its path; or `None`
/// and what was tried.
fn read_first_config(candidates: &[PathBuf]) -> (Option<KernelConfig>, String) {
    let mut tried = Vec::new();
    for path in candidates {
        let text = std::fs::File::open(path).and_then(|mut f| {
            let mut text = String::new();
            if path.extension().is_some_and(|e| e == "gz") {
                flate2::read::MultiGzDecoder::new(f).read_to_string(&mut text)?;
            } else {
                f.read_to_string(&mut text)?;
            }
            Ok(text)
        });
        match text {
            Ok(text) => return (Some(KernelConfig::parse(&text)), path.display().to_string()),
            Err(e) => tried.push(format!("{} ({e})", path.display())),
        }
    }
    (None, format!("not found: tried {}", tried.join(", ")))
}

/// `CapEff` from the text of /proc/PID/status.
fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The soft `Max locked memory` from the text of /proc/PID/limits.
fn parse_memlock(limits: &str) -> Memlock {
    let Some(rest) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max locked memory"))
    else {
        return Memlock::Unknown;
    };
    match rest.split_whitespace().next() {
        Some("unlimited") => Memlock::Unlimited,
        Some(n) => n.parse().map(Memlock::Bytes).unwrap_or(Memlock::Unknown),
        None => Memlock::Unknown,
    }
}

/// `path` made absolute through its nearest existing ancestor, whose filesystem is the one a
/// directory created at `path` would be on.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut candidate = Some(path);
    while let Some(p) = candidate {
        // A relative path's last ancestor is "", the working directory.
        let real = if p.as_os_str().is_empty() {
            Path::new(".").canonicalize()
        } else {
            p.canonicalize()
        };
        if let Ok(real) = real {
            return real;
        }
        candidate = p.parent();
    }
    path.to_owned()
}

/// The filesystem type of the mount that holds `path` (absolute, symlinks resolved),
/// according to the text of /proc/PID/mountinfo: the mount with the longest mount point
/// above `path`, the later one when two share a mount point (it is mounted on top).
fn fs_type_at(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4).map(|m| unescape_mount(m)) else {
            continue;
        };
        // Optional fields end at a lone "-"; the filesystem type follows it.
        let Some(fs_type) = fields
            .iter()
            .skip(6)
            .position(|f| *f == "-")
            .and_then(|i| fields.get(6 + i + 1))
        else {
            continue;
        };
        let mount_point = Path::new(&mount_point);
        if path.starts_with(mount_point) {
            let depth = mount_point.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, (*fs_type).to_owned()));
            }
        }
    }
    best.map(|(_, fs_type)| fs_type)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present, or good enough.
    Ok,
    /// Works, but deserves a look; or could not be verified.
    Warn,
    /// An optional feature this kernel lacks: not a failure.
    Missing,
    /// A requirement not met: policyd cannot run here.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "missing",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    pub status: Status,
    /// `uname -r`.
    pub release: String,
    /// The version parsed from the release (`null` when it does not parse).
    pub version: Option<KernelVersion>,
    pub minimum: KernelVersion,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigCheck {
    /// `ok` when a configuration was read; `warn` when none was found (the options are then
    /// `unknown`, not failures).
    pub status: Status,
    /// Where it was read, or what was tried.
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct OptionCheck {
    pub status: Status,
    pub option: &'static str,
    pub value: ConfigValue,
    pub purpose: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct OptionValue {
    pub option: &'static str,
    pub value: ConfigValue,
}

#[derive(Clone, Debug, Serialize)]
pub struct FeatureCheck {
    /// `ok` when available, `missing` when not, `warn` when it could not be told.
    pub status: Status,
    pub name: &'static str,
    pub title: &'static str,
    /// What it makes possible.
    pub enables: &'static [&'static str],
    /// Every option looked at, with its value.
    pub options: Vec<OptionValue>,
    pub min_kernel: Option<KernelVersion>,
    /// What is missing, when something is.
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BpffsCheck {
    pub status: Status,
    pub path: PathBuf,
    pub mounted: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapabilityCheck {
    pub status: Status,
    pub name: &'static str,
    /// Whether the process has it (`null` when CapEff could not be read).
    pub present: Option<bool>,
    pub required: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemlockCheck {
    pub status: Status,
    /// `unlimited`, a size, or `unknown`.
    pub limit: String,
    pub detail: String,
}

/// What preflight found. Serialize it for `--json`; [`Report::render_human`] for people.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// No failure: policyd can run on this node.
    pub ok: bool,
    pub kernel: KernelCheck,
    pub config: ConfigCheck,
    pub required_options: Vec<OptionCheck>,
    pub bpffs: BpffsCheck,
    /// CapEff as /proc shows it (16 hex digits).
    pub cap_eff: Option<String>,
    pub capabilities: Vec<CapabilityCheck>,
    pub memlock: MemlockCheck,
    pub optional_features: Vec<FeatureCheck>,
    /// The features this kernel supports, in words.
    pub supported: Vec<String>,
    /// The optional features it lacks, with what is missing.
    pub unavailable: Vec<String>,
    /// One line per failed check, naming it.
    pub failures: Vec<String>,
    /// One line per warning.
    pub warnings: Vec<String>,
}

/// Checks `env` against what the datapath needs.
pub fn inspect(env: &HostEnv) -> Report {
    let version = KernelVersion::parse_release(&env.release);
    let at_least = |min: KernelVersion| version.map(|v| v >= min);

    let kernel = match version {
        Some(v) if v >= MIN_KERNEL => KernelCheck {
            status: Status::Ok,
            release: env.release.clone(),
            version,
            minimum: MIN_KERNEL,
            detail: format!("{v} >= {MIN_KERNEL} ({})", env.release),
        },
        Some(v) => KernelCheck {
            status: Status::Fail,
            release: env.release.clone(),
            version,
            minimum: MIN_KERNEL,
            detail: format!(
                "{v} is older than {MIN_KERNEL} ({}): the datapath needs the ring buffer (5.8), \
                 batch map updates (5.6) and inner maps of any size (5.10)",
                env.release
            ),
        },
        None => KernelCheck {
            status: Status::Warn,
            release: env.release.clone(),
            version,
            minimum: MIN_KERNEL,
            detail: format!(
                "cannot read a version from release `{}`: the minimum ({MIN_KERNEL}) is not \
                 checked",
                env.release
            ),
        },
    };

    let config = ConfigCheck {
        status: if env.config.is_some() {
            Status::Ok
        } else {
            Status::Warn
        },
        source: env.config_source.clone(),
    };

    let required_options = REQUIRED_OPTIONS
        .iter()
        .map(|&(option, purpose)| {
            let value = env.option(option);
            let status = match value {
                ConfigValue::Y | ConfigValue::M => Status::Ok,
                ConfigValue::Missing => Status::Fail,
                ConfigValue::Unknown => Status::Warn,
            };
            OptionCheck {
                status,
                option,
                value,
                purpose,
            }
        })
        .collect::<Vec<_>>();

    let bpffs = BpffsCheck {
        status: if env.bpffs_mounted {
            Status::Ok
        } else {
            Status::Fail
        },
        path: env.bpffs_root.clone(),
        mounted: env.bpffs_mounted,
        detail: if env.bpffs_mounted {
            format!("{} is on a bpffs", env.bpffs_root.display())
        } else {
            format!(
                "{} is not on a bpffs: mount one (`mount -t bpf bpf {}`) so pinned maps \
                 outlive policyd",
                env.bpffs_root.display(),
                env.bpffs_root.display()
            )
        },
    };

    let capabilities = capability_checks(env, version);
    let memlock = memlock_check(env, at_least(MEMCG_ACCOUNTING_KERNEL));
    let optional_features = FEATURES
        .iter()
        .map(|spec| feature_check(env, spec, at_least))
        .collect::<Vec<_>>();

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let mut note = |status: Status, what: String| match status {
        Status::Fail => failures.push(what),
        Status::Warn => warnings.push(what),
        Status::Ok | Status::Missing => {}
    };
    note(kernel.status, format!("kernel: {}", kernel.detail));
    note(config.status, format!("kernel config {}", config.source));
    for o in &required_options {
        let what = match o.value {
            ConfigValue::Unknown => format!("{} not verified (no kernel config)", o.option),
            _ => format!("{} is missing ({})", o.option, o.purpose),
        };
        note(o.status, what);
    }
    note(bpffs.status, format!("bpffs: {}", bpffs.detail));
    for c in &capabilities {
        note(c.status, format!("{}: {}", c.name, c.detail));
    }
    note(
        memlock.status,
        format!("RLIMIT_MEMLOCK: {}", memlock.detail),
    );

    let datapath_ready =
        kernel.status == Status::Ok && required_options.iter().all(|o| o.status == Status::Ok);
    let mut supported = Vec::new();
    if datapath_ready {
        supported.push(format!(
            "the policy datapath: tc programs, ring-buffer events, atomic generation swaps \
             (kernel {})",
            version.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    let mut unavailable = Vec::new();
    for f in &optional_features {
        match f.status {
            Status::Ok => supported.push(f.title.to_owned()),
            Status::Missing => unavailable.push(format!("{} ({})", f.title, f.detail)),
            Status::Warn | Status::Fail => {}
        }
    }

    Report {
        ok: failures.is_empty(),
        kernel,
        config,
        required_options,
        bpffs,
        cap_eff: env.cap_eff.map(|c| format!("{c:016x}")),
        capabilities,
        memlock,
        optional_features,
        supported,
        unavailable,
        failures,
        warnings,
    }
}

fn capability_checks(env: &HostEnv, version: Option<KernelVersion>) -> Vec<CapabilityCheck> {
    let unknown = |name, required| CapabilityCheck {
        status: Status::Warn,
        name,
        present: None,
        required,
        detail: "cannot read CapEff from /proc/self/status".to_owned(),
    };
    let (Some(net_admin), Some(sys_admin), Some(bpf), Some(perfmon)) = (
        env.has_cap(CAP_NET_ADMIN),
        env.has_cap(CAP_SYS_ADMIN),
        env.has_cap(CAP_BPF),
        env.has_cap(CAP_PERFMON),
    ) else {
        return vec![
            unknown("CAP_NET_ADMIN", true),
            unknown("CAP_BPF", true),
            unknown("CAP_PERFMON", false),
            unknown("CAP_SYS_ADMIN", false),
        ];
    };
    let has_cap_bpf = version.is_none_or(|v| v >= CAP_BPF_KERNEL);
    let check =
        |name, present: bool, required: bool, status: Status, detail: &str| CapabilityCheck {
            status,
            name,
            present: Some(present),
            required,
            detail: detail.to_owned(),
        };
    vec![
        if net_admin {
            check(
                "CAP_NET_ADMIN",
                true,
                true,
                Status::Ok,
                "attach the tc programs and set up qdiscs",
            )
        } else {
            check(
                "CAP_NET_ADMIN",
                false,
                true,
                Status::Fail,
                "missing: needed to attach the tc programs and set up qdiscs",
            )
        },
        match (bpf && has_cap_bpf, sys_admin) {
            (true, _) => check(
                "CAP_BPF",
                true,
                true,
                Status::Ok,
                "create maps and load programs",
            ),
            (false, true) => check(
                "CAP_BPF",
                bpf,
                true,
                Status::Ok,
                "CAP_SYS_ADMIN covers it: create maps and load programs",
            ),
            (false, false) if !has_cap_bpf => check(
                "CAP_BPF",
                bpf,
                true,
                Status::Fail,
                "missing: this kernel has no CAP_BPF, loading needs CAP_SYS_ADMIN",
            ),
            (false, false) => check(
                "CAP_BPF",
                false,
                true,
                Status::Fail,
                "missing (and no CAP_SYS_ADMIN): needed to create maps and load programs",
            ),
        },
        match (perfmon, sys_admin) {
            (true, _) => check(
                "CAP_PERFMON",
                true,
                false,
                Status::Ok,
                "the verifier runs without Spectre mitigations",
            ),
            (false, true) => check(
                "CAP_PERFMON",
                false,
                false,
                Status::Ok,
                "CAP_SYS_ADMIN covers it",
            ),
            (false, false) => check(
                "CAP_PERFMON",
                false,
                false,
                Status::Missing,
                "optional: without it the verifier adds Spectre mitigations; the programs \
                 still load",
            ),
        },
        if sys_admin {
            check(
                "CAP_SYS_ADMIN",
                true,
                false,
                Status::Ok,
                "optional: mount a bpffs",
            )
        } else {
            check(
                "CAP_SYS_ADMIN",
                false,
                false,
                Status::Missing,
                "optional: needed only to mount a bpffs",
            )
        },
    ]
}

fn memlock_check(env: &HostEnv, memcg_accounting: Option<bool>) -> MemlockCheck {
    let limit = env.memlock.to_string();
    let (status, detail) = match (memcg_accounting, env.memlock) {
        (Some(true), _) => (
            Status::Ok,
            format!(
                "not used: kernels from {MEMCG_ACCOUNTING_KERNEL} charge BPF memory to the \
                 memory cgroup"
            ),
        ),
        (_, Memlock::Unlimited) => (Status::Ok, "unlimited".to_owned()),
        (_, Memlock::Unknown) => (
            Status::Warn,
            "cannot read it; before 5.11 BPF maps count against it".to_owned(),
        ),
        (_, Memlock::Bytes(_)) => (
            Status::Warn,
            format!(
                "{limit}: before 5.11 BPF maps count against it and large policies fail to \
                 load; raise it (LimitMEMLOCK=infinity, ulimit -l unlimited)"
            ),
        ),
    };
    MemlockCheck {
        status,
        limit,
        detail,
    }
}

fn feature_check(
    env: &HostEnv,
    spec: &FeatureSpec,
    at_least: impl Fn(KernelVersion) -> Option<bool>,
) -> FeatureCheck {
    let options = spec
        .needs
        .iter()
        .flat_map(|any| any.iter())
        .map(|&option| OptionValue {
            option,
            value: env.option(option),
        })
        .collect::<Vec<_>>();
    let mut lacking = Vec::new();
    let mut unknown = false;
    if let Some(min) = spec.min_kernel {
        match at_least(min) {
            Some(true) => {}
            Some(false) => lacking.push(format!("kernel >= {min}")),
            None => unknown = true,
        }
    }
    for any in spec.needs {
        let values: Vec<ConfigValue> = any.iter().map(|o| env.option(o)).collect();
        if values.iter().any(|v| v.is_present()) {
            continue;
        }
        if values.contains(&ConfigValue::Unknown) {
            unknown = true;
        } else if any.len() == 1 {
            lacking.push(format!("{} missing", any[0]));
        } else {
            lacking.push(format!("one of {} missing", any.join(", ")));
        }
    }
    let (status, detail) = if !lacking.is_empty() {
        (Status::Missing, lacking.join("; "))
    } else if unknown {
        (Status::Warn, "unknown without a kernel config".to_owned())
    } else {
        (Status::Ok, String::new())
    };
    FeatureCheck {
        status,
        name: spec.name,
        title: spec.title,
        enables: spec.enables,
        options,
        min_kernel: spec.min_kernel,
        detail,
    }
}

/// One line of the human output.
struct Row {
    status: Status,
    name: String,
    value: String,
    detail: String,
}

impl Report {
    /// No failure: policyd can run on this node. The caller exits non-zero otherwise.
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// The report for people: one aligned line per check, then what this kernel supports.
    pub fn render_human(&self) -> String {
        let row = |status, name: &str, value: &str, detail: &str| Row {
            status,
            name: name.to_owned(),
            value: value.to_owned(),
            detail: detail.to_owned(),
        };
        let mut sections: Vec<(String, Vec<Row>)> = Vec::new();

        let version = self
            .kernel
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".to_owned());
        sections.push((
            "Kernel".to_owned(),
            vec![
                row(self.kernel.status, "kernel", &version, &self.kernel.detail),
                row(
                    self.config.status,
                    "kernel config",
                    if self.config.status == Status::Ok {
                        "found"
                    } else {
                        "not found"
                    },
                    &self.config.source,
                ),
            ],
        ));
        sections.push((
            "Required kernel options".to_owned(),
            self.required_options
                .iter()
                .map(|o| row(o.status, o.option, o.value.as_str(), o.purpose))
                .collect(),
        ));
        sections.push((
            "bpffs".to_owned(),
            vec![row(
                self.bpffs.status,
                "bpffs",
                if self.bpffs.mounted {
                    "mounted"
                } else {
                    "not mounted"
                },
                &self.bpffs.detail,
            )],
        ));
        let mut privileges: Vec<Row> = self
            .capabilities
            .iter()
            .map(|c| {
                let value = match c.present {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "unknown",
                };
                row(c.status, c.name, value, &c.detail)
            })
            .collect();
        privileges.push(row(
            self.memlock.status,
            "RLIMIT_MEMLOCK",
            &self.memlock.limit,
            &self.memlock.detail,
        ));
        sections.push((
            match &self.cap_eff {
                Some(c) => format!("Privileges (CapEff {c})"),
                None => "Privileges".to_owned(),
            },
            privileges,
        ));
        sections.push((
            "Optional features".to_owned(),
            self.optional_features
                .iter()
                .map(|f| {
                    // What it was found with, or what it lacks.
                    let how = match f.status {
                        Status::Ok => {
                            let mut have: Vec<String> = f
                                .min_kernel
                                .map(|k| format!("kernel >= {k}"))
                                .into_iter()
                                .collect();
                            have.extend(f.options.iter().filter(|o| o.value.is_present()).map(
                                |o| {
                                    format!(
                                        "{}={}",
                                        o.option.trim_start_matches("CONFIG_"),
                                        o.value.as_str()
                                    )
                                },
                            ));
                            have.join(" ")
                        }
                        _ => f.detail.clone(),
                    };
                    let value = match f.status {
                        Status::Ok => "yes",
                        Status::Missing => "no",
                        Status::Warn | Status::Fail => "unknown",
                    };
                    row(
                        f.status,
                        f.name,
                        value,
                        &format!("{}: {} ({how})", f.title, f.enables.join("; ")),
                    )
                })
                .collect(),
        ));

        let all = sections.iter().flat_map(|(_, rows)| rows);
        let name_w = all.clone().map(|r| r.name.len()).max().unwrap_or(0);
        let value_w = all.map(|r| r.value.len()).max().unwrap_or(0);

        let mut out = String::new();
        for (title, rows) in &sections {
            out.push_str(title);
            out.push('\n');
            for r in rows {
                let line = format!(
                    "  {:<7}  {:<name_w$}  {:<value_w$}  {}",
                    r.status.label(),
                    r.name,
                    r.value,
                    r.detail
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str("This kernel supports:\n");
        for s in &self.supported {
            out.push_str(&format!("  - {s}\n"));
        }
        if !self.unavailable.is_empty() {
            out.push_str("Not available:\n");
            for s in &self.unavailable {
                out.push_str(&format!("  - {s}\n"));
            }
        }
        out.push('\n');
        if self.ok {
            out.push_str(&format!(
                "Result: ok, policyd can run on this node ({} warning{})\n",
                self.warnings.len(),
                if self.warnings.len() == 1 { "" } else { "s" }
            ));
        } else {
            out.push_str(&format!(
                "Result: FAIL, policyd cannot run on this node ({} failure{}):\n",
                self.failures.len(),
                if self.failures.len() == 1 { "" } else { "s" }
            ));
            for f in &self.failures {
                out.push_str(&format!("  - {f}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option preflight looks at, built in.
    const FULL_CONFIG: &str = "\
#
# Linux/x86 6.12.0 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT=\"gcc (Debian 14.2.0) 14.2.0\"
CONFIG_BPF=y
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
CONFIG_NET_CLS_BPF=y
CONFIG_NET_SCH_INGRESS=y
CONFIG_NET_CLS_ACT=y
CONFIG_CGROUP_BPF=y
CONFIG_PERF_EVENTS=y
CONFIG_NET_XGRESS=y
CONFIG_NETFILTER=y
CONFIG_NF_CONNTRACK=m
CONFIG_NF_NAT=m
CONFIG_NETFILTER_XT_TARGET_MASQUERADE=m
CONFIG_NFT_TPROXY=m
CONFIG_NFT_SOCKET=m
CONFIG_NET_SCH_FQ=m
CONFIG_IPV6=y
CONFIG_VXLAN=m
CONFIG_GENEVE=m
CONFIG_WIREGUARD=m
CONFIG_IP_SCTP=m
";

    /// CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON and CAP_BPF.
    const CAPS: u64 = 1 << CAP_NET_ADMIN | 1 << CAP_SYS_ADMIN | 1 << CAP_PERFMON | 1 << CAP_BPF;

    fn without(config: &str, option: &str) -> String {
        config
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{option}=")) {
                    format!("# {option} is not set")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn feature<'a>(report: &'a Report, name: &str) -> &'a FeatureCheck {
        report
            .optional_features
            .iter()
            .find(|f| f.name == name)
            .expect("a feature of that name")
    }

    #[test]
    fn preflight_release_strings_parse_to_their_leading_version() {
        let parse = KernelVersion::parse_release;
        assert_eq!(
            parse("6.18.3+deb13-amd64"),
            Some(KernelVersion::new(6, 18, 3))
        );
        assert_eq!(
            parse("5.10.0-28-cloud-amd64"),
            Some(KernelVersion::new(5, 10, 0))
        );
        assert_eq!(
            parse("6.18.44-fc-v669"),
            Some(KernelVersion::new(6, 18, 44))
        );
        assert_eq!(
            parse("4.18.0-553.el8_10.x86_64"),
            Some(KernelVersion::new(4, 18, 0))
        );
        assert_eq!(parse("6.6"), Some(KernelVersion::new(6, 6, 0)));
        assert_eq!(parse("6.6-rc1\n"), Some(KernelVersion::new(6, 6, 0)));
        assert_eq!(parse("6"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("linux"), None);
        assert!(parse("5.9.16").expect("parses") < MIN_KERNEL);
        assert!(parse("5.10.0-28-cloud-amd64").expect("parses") >= MIN_KERNEL);
        assert_eq!(KernelVersion::new(6, 18, 3).to_string(), "6.18.3");
    }

    #[test]
    fn preflight_config_values_read_y_m_and_not_set() {
        let config = KernelConfig::parse(
            "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"text\"\nCONFIG_E=n\n",
        );
        assert_eq!(config.value("CONFIG_A"), ConfigValue::Y);
        assert_eq!(config.value("A"), ConfigValue::Y);
        assert_eq!(config.value("CONFIG_B"), ConfigValue::M);
        assert_eq!(config.value("CONFIG_C"), ConfigValue::Missing);
        assert_eq!(config.value("CONFIG_D"), ConfigValue::Y);
        assert_eq!(config.value("CONFIG_E"), ConfigValue::Missing);
        assert_eq!(config.value("CONFIG_F"), ConfigValue::Missing);
    }

    #[test]
    fn preflight_everything_present_is_ok() {
        let report = inspect(&HostEnv::new(
            "6.12.0-1-amd64",
            Some(FULL_CONFIG),
            CAPS,
            true,
        ));
        assert!(report.is_ok(), "{}", report.render_human());
        assert!(report.failures.is_empty());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert!(report
            .required_options
            .iter()
            .all(|o| o.status == Status::Ok));
        assert!(report
            .optional_features
            .iter()
            .all(|f| f.status == Status::Ok));
        assert!(report.unavailable.is_empty());
        assert!(report.supported.iter().any(|s| s == "TCX attachment"));
    }

    #[test]
    fn preflight_missing_bpf_jit_fails_and_names_it() {
        let config = without(FULL_CONFIG, "CONFIG_BPF_JIT");
        let report = inspect(&HostEnv::new("6.12.0", Some(&config), CAPS, true));
        assert!(!report.is_ok());
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(report.failures[0].contains("CONFIG_BPF_JIT"));
        let jit = report
            .required_options
            .iter()
            .find(|o| o.option == "CONFIG_BPF_JIT")
            .expect("checked");
        assert_eq!(
            (jit.status, jit.value),
            (Status::Fail, ConfigValue::Missing)
        );
        let human = report.render_human();
        assert!(
            human
                .lines()
                .any(|l| l.contains("FAIL") && l.contains("CONFIG_BPF_JIT")),
            "{human}"
        );
        assert!(human.contains("Result: FAIL"));
        // Without the required options, the datapath is not listed as supported.
        assert!(!report.supported.iter().any(|s| s.contains("datapath")));
    }

    #[test]
    fn preflight_modules_count_as_present() {
        let config = FULL_CONFIG
            .replace("CONFIG_NET_CLS_BPF=y", "CONFIG_NET_CLS_BPF=m")
            .replace("CONFIG_NET_SCH_INGRESS=y", "CONFIG_NET_SCH_INGRESS=m");
        let report = inspect(&HostEnv::new("6.12.0", Some(&config), CAPS, true));
        assert!(report.is_ok(), "{:?}", report.failures);
        let cls = report
            .required_options
            .iter()
            .find(|o| o.option == "CONFIG_NET_CLS_BPF")
            .expect("checked");
        assert_eq!((cls.status, cls.value), (Status::Ok, ConfigValue::M));
        // The optional groups in FULL_CONFIG are modules too.
        assert_eq!(feature(&report, "sctp").status, Status::Ok);
    }

    #[test]
    fn preflight_old_kernel_is_rejected() {
        let report = inspect(&HostEnv::new(
            "4.19.0-27-amd64",
            Some(FULL_CONFIG),
            CAPS,
            true,
        ));
        assert!(!report.is_ok());
        assert_eq!(report.kernel.status, Status::Fail);
        assert_eq!(report.kernel.version, Some(KernelVersion::new(4, 19, 0)));
        assert!(report
            .failures
            .iter()
            .any(|f| f.contains("older than 5.10")));
        // Version-gated optional features follow the kernel, not the config.
        assert_eq!(feature(&report, "tcx").status, Status::Missing);
        assert_eq!(feature(&report, "tcx").detail, "kernel >= 6.6.0");
        // A 5.10 kernel is fine but has no TCX and counts BPF maps against RLIMIT_MEMLOCK.
        let mut env = HostEnv::new("5.10.0-28-cloud-amd64", Some(FULL_CONFIG), CAPS, true);
        env.memlock = Memlock::Bytes(8 << 20);
        let report = inspect(&env);
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(feature(&report, "tcx").status, Status::Missing);
        assert_eq!(report.memlock.status, Status::Warn);
        assert_eq!(report.memlock.limit, "8 MiB");
    }

    #[test]
    fn preflight_missing_optional_features_are_ok() {
        let mut config = FULL_CONFIG.to_owned();
        for option in [
            "CONFIG_IP_SCTP",
            "CONFIG_WIREGUARD",
            "CONFIG_GENEVE",
            "CONFIG_NFT_TPROXY",
        ] {
            config = without(&config, option);
        }
        let report = inspect(&HostEnv::new(
            "6.18.3+deb13-amd64",
            Some(&config),
            CAPS,
            true,
        ));
        assert!(report.is_ok(), "{:?}", report.failures);
        for name in ["sctp", "wireguard", "geneve", "l7-proxy"] {
            assert_eq!(feature(&report, name).status, Status::Missing, "{name}");
        }
        assert_eq!(feature(&report, "sctp").detail, "CONFIG_IP_SCTP missing");
        assert_eq!(
            feature(&report, "l7-proxy").detail,
            "one of CONFIG_NETFILTER_XT_TARGET_TPROXY, CONFIG_NFT_TPROXY missing"
        );
        assert_eq!(feature(&report, "vxlan").status, Status::Ok);
        assert_eq!(report.unavailable.len(), 4);
        // The iptables flavour serves as well as the nftables one.
        let config = config.replace(
            "# CONFIG_NFT_TPROXY is not set",
            "CONFIG_NETFILTER_XT_TARGET_TPROXY=m",
        );
        let report = inspect(&HostEnv::new("6.18.3", Some(&config), CAPS, true));
        assert_eq!(feature(&report, "l7-proxy").status, Status::Ok);
    }

    #[test]
    fn preflight_bpffs_and_capabilities() {
        let report = inspect(&HostEnv::new("6.12.0", Some(FULL_CONFIG), CAPS, false));
        assert!(!report.is_ok());
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].contains("/sys/fs/bpf is not on a bpffs"));

        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON.
        let caps = 1 << CAP_NET_ADMIN | 1 << CAP_SYS_ADMIN;
        let report = inspect(&HostEnv::new("6.12.0", Some(FULL_CONFIG), caps, true));
        assert!(report.is_ok(), "{:?}", report.failures);

        // CAP_BPF without CAP_PERFMON or CAP_SYS_ADMIN: fine, two optional ones missing.
        let caps = 1 << CAP_NET_ADMIN | 1 << CAP_BPF;
        let report = inspect(&HostEnv::new("6.12.0", Some(FULL_CONFIG), caps, true));
        assert!(report.is_ok(), "{:?}", report.failures);
        let missing: Vec<_> = report
            .capabilities
            .iter()
            .filter(|c| c.status == Status::Missing)
            .map(|c| c.name)
            .collect();
        assert_eq!(missing, ["CAP_PERFMON", "CAP_SYS_ADMIN"]);

        // Neither CAP_NET_ADMIN nor a way to load programs.
        let report = inspect(&HostEnv::new("6.12.0", Some(FULL_CONFIG), 0, true));
        let failed: Vec<_> = report
            .capabilities
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["CAP_NET_ADMIN", "CAP_BPF"]);
        assert_eq!(report.failures.len(), 2);
    }

    #[test]
    fn preflight_without_a_config_warns_instead_of_failing() {
        let report = inspect(&HostEnv::new("6.12.0", None, CAPS, true));
        assert!(report.is_ok());
        assert_eq!(report.config.status, Status::Warn);
        assert!(report
            .required_options
            .iter()
            .all(|o| o.status == Status::Warn && o.value == ConfigValue::Unknown));
        assert!(report
            .optional_features
            .iter()
            .all(|f| f.status == Status::Warn));
        assert_eq!(report.warnings.len(), 1 + REQUIRED_OPTIONS.len());
    }

    #[test]
    fn preflight_proc_parsers() {
        let status = "Name:\tpolicyd\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_feff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max locked memory         8388608              8388608              bytes\n";
        assert_eq!(parse_memlock(limits), Memlock::Bytes(8 << 20));
        assert_eq!(
            parse_memlock(
                "Max locked memory         unlimited            unlimited            bytes\n"
            ),
            Memlock::Unlimited
        );
        assert_eq!(parse_memlock(""), Memlock::Unknown);

        let mountinfo = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
50 23 0:40 / /sys/fs/bpf rw,nosuid shared:9 - bpf bpf rw,mode=700
51 27 0:41 / /tmp/pin\\040dir rw master:3 - bpf none rw
52 27 0:42 / /tmp/pin\\040dir rw - tmpfs tmpfs rw
";
        let at = |p: &str| fs_type_at(mountinfo, Path::new(p));
        assert_eq!(at("/sys/fs/bpf").as_deref(), Some("bpf"));
        assert_eq!(at("/sys/fs/bpf/policyd").as_deref(), Some("bpf"));
        assert_eq!(at("/sys/fs/bpfx").as_deref(), Some("sysfs"));
        assert_eq!(at("/sys/fs").as_deref(), Some("sysfs"));
        assert_eq!(at("/var/run").as_deref(), Some("ext4"));
        // The later of two mounts on one point is the one on top.
        assert_eq!(at("/tmp/pin dir").as_deref(), Some("tmpfs"));
        assert_eq!(
            resolve_existing(Path::new("/no-such-dir-plc/a/b")),
            Path::new("/")
        );
        assert_eq!(
            resolve_existing(Path::new("no-such-dir-plc")),
            std::env::current_dir()
                .expect("cwd")
                .canonicalize()
                .expect("cwd")
        );
        assert_eq!(unescape_mount("a\\040b\\134c\\"), "a b\\c\\");
    }

    #[test]
    fn preflight_json_shape() {
        let mut config = without(FULL_CONFIG, "CONFIG_IP_SCTP");
        config = without(&config, "CONFIG_WIREGUARD");
        let mut env = HostEnv::new("6.12.0-1-amd64", Some(&config), CAPS, true);
        env.config_source = "/proc/config.gz".to_owned();
        let report = inspect(&env);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["ok"], true);
        assert_eq!(json["kernel"]["version"], "6.12.0");
        assert_eq!(json["kernel"]["minimum"], "5.10.0");
        assert_eq!(json["required_options"][2]["option"], "CONFIG_BPF_JIT");
        assert_eq!(json["required_options"][2]["value"], "y");
        assert_eq!(json["cap_eff"], "000000c000201000");
        insta::assert_json_snapshot!(report);
        insta::assert_snapshot!(report.render_human());
    }

    #[test]
    fn preflight_config_is_read_plain_or_gzipped() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("plc-preflight-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let gz = dir.join("config.gz");
        let plain = dir.join("config-6.12.0");
        let missing = dir.join("nothing.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).expect("create"),
            flate2::Compression::default(),
        );
        enc.write_all(FULL_CONFIG.as_bytes()).expect("write");
        enc.finish().expect("finish");
        std::fs::write(&plain, "CONFIG_BPF=m\n").expect("write");

        let (config, source) = read_first_config(&[missing.clone(), gz.clone(), plain.clone()]);
        assert_eq!(source, gz.display().to_string());
        assert_eq!(config, Some(KernelConfig::parse(FULL_CONFIG)));
        let (config, source) = read_first_config(&[missing.clone(), plain.clone()]);
        assert_eq!(source, plain.display().to_string());
        assert_eq!(config.expect("read").value("CONFIG_BPF"), ConfigValue::M);
        // A plain file named .gz is not a gzip stream: skipped, and said why.
        let fake = dir.join("fake.gz");
        std::fs::write(&fake, "CONFIG_BPF=y\n").expect("write");
        let (config, source) = read_first_config(&[missing.clone(), fake.clone()]);
        assert_eq!(config, None);
        assert!(source.starts_with("not found: tried "), "{source}");
        assert!(
            source.contains("nothing.gz") && source.contains("fake.gz"),
            "{source}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// Removes its bpffs mount and directory on drop.
    struct TempBpffs(PathBuf);

    impl Drop for TempBpffs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// This machine (see /work/shared/GROUND.md: Debian, Linux 6.18, root, no SCTP and no
    /// WireGuard in the kernel). Its /sys/fs/bpf may not be a bpffs, so the maps' root is a
    /// private bpffs the test mounts.
    #[test]
    fn preflight_this_machine() {
        let dir = std::env::temp_dir().join(format!("plc-preflight-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the mount point");
        let fs = TempBpffs(dir);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&fs.0)
            .status()
            .expect("run mount");
        assert!(
            mounted.success(),
            "cannot mount a bpffs: this test needs root"
        );

        let env = HostEnv::from_machine_at(&fs.0.join("policyd"));
        let report = inspect(&env);
        eprintln!("{}", report.render_human());
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.config.status, Status::Ok, "{}", report.config.source);
        assert!(report.bpffs.mounted);
        assert_eq!(feature(&report, "sctp").status, Status::Missing);
        assert_eq!(feature(&report, "wireguard").status, Status::Missing);
        assert!(report
            .unavailable
            .iter()
            .any(|u| u.contains("CONFIG_IP_SCTP")));

        // At the default root, the only possible failure is the bpffs.
        let report = inspect(&HostEnv::from_machine());
        if !report.bpffs.mounted {
            assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
            assert!(report.failures[0].starts_with("bpffs:"));
        } else {
            assert!(report.is_ok(), "{:?}", report.failures);
        }
    }
}
