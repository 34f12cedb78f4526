//! The datapath ABI: `#[repr(C)]` twins of every key, value and event of `bpf/lib/maps.h`,
//! its constants and map names. Sizes are asserted here and in C; a test compares every
//! `#define` of the header with the constant of the same name here.

// `aya::Pod` promises plain old data: every type below is `#[repr(C)]` of integers and byte
// arrays with explicit padding fields, so any byte pattern is a valid value.
#![allow(unsafe_code)]

use std::net::IpAddr;

/// Names of the pinned maps (the kernel keeps 15 characters).
pub mod maps {
    pub const LIVE: &str = "plc_live_v1";
    pub const IPCACHE: &str = "plc_ipc_v2";
    pub const POLICY: &str = "plc_pol_v2";
    pub const ENDPOINTS: &str = "plc_ep_v1";
    pub const CONNTRACK: &str = "plc_ct_v2";
    pub const FRAGMENTS: &str = "plc_frag_v1";
    pub const EVENTS: &str = "plc_evt_v1";
    pub const STATS: &str = "plc_stat_v1";
    /// Every pinned map.
    pub const ALL: &[&str] = &[
        LIVE, IPCACHE, POLICY, ENDPOINTS, CONNTRACK, FRAGMENTS, EVENTS, STATS,
    ];
}

/// Program names (ELF symbols) and where they attach.
pub mod programs {
    /// tc ingress of the host-side veth: packets the pod sends (its egress).
    pub const FROM_EP: &str = "plc_from_ep";
    /// tc egress of the host-side veth: packets the pod receives (its ingress).
    pub const TO_EP: &str = "plc_to_ep";
}

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;
pub const DIR_INGRESS: u8 = 1;
pub const DIR_EGRESS: u8 = 2;
pub const VERDICT_DENY: u8 = 1;
pub const VERDICT_ALLOW: u8 = 2;
pub const VERDICT_REDIRECT: u8 = 3;
pub const EV_PASS: u8 = 0;
pub const EV_DROP: u8 = 1;
pub const EV_REDIRECT: u8 = 2;
pub const EP_F_INGRESS_ENFORCED: u8 = 1;
pub const EP_F_EGRESS_ENFORCED: u8 = 2;
pub const EP_F_ALLOW_HOST: u8 = 4;
pub const CT_F_SEEN_REPLY: u8 = 1;
pub const CT_F_FIN_ORIG: u8 = 2;
pub const CT_F_FIN_REPLY: u8 = 4;
pub const CT_F_RST: u8 = 8;
pub const ID_ANY: u32 = 0;
pub const ID_HOST: u32 = 1;
pub const ID_WORLD: u32 = 2;
pub const ID_WORLD_V4: u32 = 9;
pub const ID_WORLD_V6: u32 = 10;
pub const ID_FIRST_LOCAL: u32 = 0x0100_0000;
pub const ID_FIRST_NAMESPACE: u32 = 0xfffe_0000;
/// Namespace indexes stay below this, so `ID_FIRST_NAMESPACE + index` never reaches a class.
pub const NAMESPACE_LIMIT: u32 = 0x1_0000;
pub const ID_CLUSTER_CLASS: u32 = 0xffff_0001;
pub const ID_WORLD_CLASS: u32 = 0xffff_0002;
pub const NONE_U16: u16 = 0xffff;
pub const NONE_U32: u32 = 0xffff_ffff;
pub const MARK_REDIRECT: u32 = 0x0e00;
pub const MARK_MASK: u32 = 0x0f00;
pub const IPC_FIXED_BITS: u32 = 32;
pub const POL_FIXED_BITS: u32 = 72;
/// Inner maps per generation of the policy map (`PLC_POL_SHARDS`), at outer slots
/// `generation_slot * POL_SHARDS + shard` (see [`pol_shard`]).
pub const POL_SHARDS: u32 = 16;

/// The shard of a policy key: (policy id + peer identity) % [`POL_SHARDS`], in u32
/// arithmetic, as `plc_pol_one` computes it; every prefix of one (policy, peer) shares it.
pub fn pol_shard(k: &PolKey) -> u32 {
    u32::from_be(k.policy_id).wrapping_add(u32::from_be(k.peer_identity)) % POL_SHARDS
}
pub const POL_KEY_BITS: u32 = 96;
pub const CT_TCP_SYN_S: u64 = 60;
pub const CT_TCP_EST_S: u64 = 21600;
pub const CT_TCP_FIN_S: u64 = 60;
pub const CT_TCP_CLOSE_S: u64 = 10;
pub const CT_OTHER_S: u64 = 60;
pub const STAT_EVENTS_LOST: u32 = 255;
pub const STAT_SLOTS: u32 = 256;

/// Reason codes of events and statistics: below 128 a pass, from 128 on a drop.
pub mod reason {
    pub const PASS_POLICY: u16 = 1;
    pub const PASS_REDIRECT: u16 = 2;
    pub const PASS_NOT_ENFORCED: u16 = 3;
    pub const PASS_HOST: u16 = 4;
    pub const PASS_SELF: u16 = 5;
    pub const PASS_CT_ESTABLISHED: u16 = 6;
    pub const PASS_CT_REPLY: u16 = 7;
    pub const PASS_ARP: u16 = 8;
    pub const PASS_ND: u16 = 9;
    pub const DROP_POLICY_DENY: u16 = 128;
    pub const DROP_DEFAULT_DENY: u16 = 129;
    pub const DROP_L2_TRUNCATED: u16 = 130;
    pub const DROP_UNKNOWN_L3: u16 = 131;
    pub const DROP_L3_TRUNCATED: u16 = 132;
    pub const DROP_L3_VERSION: u16 = 133;
    pub const DROP_L3_BAD_IHL: u16 = 134;
    pub const DROP_L3_BAD_LENGTH: u16 = 135;
    pub const DROP_L4_TRUNCATED: u16 = 136;
    pub const DROP_L4_BAD_HEADER: u16 = 137;
    pub const DROP_FRAG_UNKNOWN: u16 = 138;
    pub const DROP_FRAG_OVERLAP: u16 = 139;
    pub const DROP_IPV6_EXT: u16 = 140;
    pub const DROP_NO_GENERATION: u16 = 141;
    pub const DROP_UNKNOWN_EP: u16 = 142;
    pub const DROP_SPOOFED: u16 = 143;
    pub const DROP_NOT_LOCAL: u16 = 144;

    /// A stable lowercase name for flow logs and metrics labels.
    pub fn name(code: u16) -> &'static str {
        match code {
            PASS_POLICY => "policy-allow",
            PASS_REDIRECT => "policy-redirect",
            PASS_NOT_ENFORCED => "not-enforced",
            PASS_HOST => "host-allowed",
            PASS_SELF => "self",
            PASS_CT_ESTABLISHED => "ct-established",
            PASS_CT_REPLY => "ct-reply",
            PASS_ARP => "arp",
            PASS_ND => "ipv6-nd",
            DROP_POLICY_DENY => "policy-deny",
            DROP_DEFAULT_DENY => "default-deny",
            DROP_L2_TRUNCATED => "l2-truncated",
            DROP_UNKNOWN_L3 => "unknown-l3",
            DROP_L3_TRUNCATED => "l3-truncated",
            DROP_L3_VERSION => "l3-version",
            DROP_L3_BAD_IHL => "l3-bad-ihl",
            DROP_L3_BAD_LENGTH => "l3-bad-length",
            DROP_L4_TRUNCATED => "l4-truncated",
            DROP_L4_BAD_HEADER => "l4-bad-header",
            DROP_FRAG_UNKNOWN => "fragment-without-first",
            DROP_FRAG_OVERLAP => "fragment-overlap",
            DROP_IPV6_EXT => "ipv6-too-many-extension-headers",
            DROP_NO_GENERATION => "no-generation",
            DROP_UNKNOWN_EP => "unknown-endpoint",
            DROP_SPOOFED => "spoofed-source",
            DROP_NOT_LOCAL => "not-local",
            _ => "unknown",
        }
    }

    pub fn is_drop(code: u16) -> bool {
        code >= 128
    }
}

/// An address as the maps hold it: family, and the raw bytes left-aligned in 16.
pub fn addr_bytes(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (FAMILY_V4, out)
        }
        IpAddr::V6(a) => (FAMILY_V6, a.octets()),
    }
}

/// The address of `(family, bytes)`, if the family is known.
pub fn addr_from_bytes(family: u8, bytes: [u8; 16]) -> Option<IpAddr> {
    match family {
        FAMILY_V4 => Some(IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])),
        FAMILY_V6 => Some(IpAddr::from(bytes)),
        _ => None,
    }
}

/// `struct plc_ipc_key`: LPM key of the ipcache.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpcKey {
    pub prefixlen: u32,
    pub family: u8,
    pub pad: [u8; 3],
    pub addr: [u8; 16],
}

/// `struct plc_ipc_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IpcVal {
    pub identity: u32,
    /// Namespace index of a workload identity ([`NONE_U32`] for every other identity).
    pub namespace: u32,
}

/// `struct plc_pol_key`: LPM key of the policy map; big-endian fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolKey {
    pub prefixlen: u32,
    /// Big-endian.
    pub policy_id: u32,
    /// Big-endian; 0 = any peer.
    pub peer_identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Big-endian.
    pub port: u16,
}

/// `struct plc_pol_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolVal {
    pub verdict: u8,
    pub pad: u8,
    pub l7_set: u16,
    pub rule_id: u32,
}

/// `struct plc_ep_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EpKey {
    pub family: u8,
    pub pad: [u8; 3],
    pub addr: [u8; 16],
}

/// `struct plc_ep_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EpVal {
    pub endpoint_id: u32,
    pub policy_id: u32,
    pub identity: u32,
    pub ifindex: u32,
    pub flags: u8,
    pub pad: [u8; 3],
}

/// `struct plc_ct_key`: a connection from one endpoint's point of view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub ep_addr: [u8; 16],
    pub peer_addr: [u8; 16],
    pub ep_port: u16,
    pub peer_port: u16,
    pub family: u8,
    pub protocol: u8,
    pub pad: [u8; 2],
}

/// `struct plc_ct_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtVal {
    pub expires_ns: u64,
    pub generation: u32,
    pub rule_id: u32,
    pub l7_set: u16,
    pub origin: u8,
    pub flags: u8,
    /// The peer's host-side ifindex when it is a local endpoint (local delivery), else 0;
    /// valid under `generation` only.
    pub deliver: u32,
    /// That peer pod's own MAC, all zero when unknown.
    pub deliver_mac: [u8; 6],
    pub pad: [u8; 2],
}

/// `struct plc_frag_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub family: u8,
    pub protocol: u8,
    pub pad: [u8; 2],
    pub id: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// `struct plc_frag_val`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragVal {
    pub sport: u16,
    pub dport: u16,
    pub policy_port: u16,
    pub ct: u8,
    pub pad: u8,
}

/// `struct plc_event`: one ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ns: u64,
    pub generation: u32,
    pub endpoint_id: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub rule_id: u32,
    pub ifindex: u32,
    pub len: u32,
    pub reason: u16,
    pub l7_set: u16,
    pub l7_set_other: u16,
    pub sport: u16,
    pub dport: u16,
    pub verdict: u8,
    pub direction: u8,
    pub family: u8,
    pub protocol: u8,
    pub pad: [u8; 2],
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

impl Event {
    /// Decodes a ring buffer record (`None` when it is too short).
    pub fn from_bytes(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < size_of::<Event>() {
            return None;
        }
        // SAFETY: length checked; `Event` is plain old data and the read is unaligned.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
    }

    pub fn source(&self) -> Option<IpAddr> {
        addr_from_bytes(self.family, self.saddr)
    }

    pub fn destination(&self) -> Option<IpAddr> {
        addr_from_bytes(self.family, self.daddr)
    }
}

const _: () = {
    assert!(size_of::<IpcKey>() == 24);
    assert!(size_of::<IpcVal>() == 8);
    assert!(size_of::<PolKey>() == 16);
    assert!(size_of::<PolVal>() == 8);
    assert!(size_of::<EpKey>() == 20);
    assert!(size_of::<EpVal>() == 20);
    assert!(size_of::<CtKey>() == 40);
    assert!(size_of::<CtVal>() == 32);
    assert!(size_of::<FragKey>() == 40);
    assert!(size_of::<FragVal>() == 8);
    assert!(size_of::<Event>() == 88);
};

// SAFETY: see the module attribute: `#[repr(C)]`, integer and byte-array fields only, every
// padding byte an explicit field.
unsafe impl aya::Pod for IpcKey {}
unsafe impl aya::Pod for IpcVal {}
unsafe impl aya::Pod for PolKey {}
unsafe impl aya::Pod for PolVal {}
unsafe impl aya::Pod for EpKey {}
unsafe impl aya::Pod for EpVal {}
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for CtVal {}
unsafe impl aya::Pod for FragKey {}
unsafe impl aya::Pod for FragVal {}
unsafe impl aya::Pod for Event {}

/// A value read back from raw map bytes (`None` when the length is wrong).
pub(crate) fn from_bytes<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; `T: Pod` accepts any bytes; the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Anything whose bytes are its value, for the raw batch calls.
pub(crate) fn as_bytes<T: aya::Pod>(v: &[T]) -> &[u8] {
    // SAFETY: `T: Pod` has no padding bytes and no invalid bit patterns.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

impl IpcKey {
    pub fn new(prefix: ipnet::IpNet) -> IpcKey {
        let (family, addr) = addr_bytes(prefix.network());
        IpcKey {
            prefixlen: IPC_FIXED_BITS + u32::from(prefix.prefix_len()),
            family,
            pad: [0; 3],
            addr,
        }
    }
}

impl EpKey {
    pub fn new(ip: IpAddr) -> EpKey {
        let (family, addr) = addr_bytes(ip);
        EpKey {
            family,
            pad: [0; 3],
            addr,
        }
    }
}

/// The C `#define`s and their Rust twins, compared by a test against the header.
pub const C_CONSTANTS: &[(&str, u64)] = &[
    ("PLC_FAMILY_V4", FAMILY_V4 as u64),
    ("PLC_FAMILY_V6", FAMILY_V6 as u64),
    ("PLC_DIR_INGRESS", DIR_INGRESS as u64),
    ("PLC_DIR_EGRESS", DIR_EGRESS as u64),
    ("PLC_VERDICT_DENY", VERDICT_DENY as u64),
    ("PLC_VERDICT_ALLOW", VERDICT_ALLOW as u64),
    ("PLC_VERDICT_REDIRECT", VERDICT_REDIRECT as u64),
    ("PLC_EV_PASS", EV_PASS as u64),
    ("PLC_EV_DROP", EV_DROP as u64),
    ("PLC_EV_REDIRECT", EV_REDIRECT as u64),
    ("PLC_EP_F_INGRESS_ENFORCED", EP_F_INGRESS_ENFORCED as u64),
    ("PLC_EP_F_EGRESS_ENFORCED", EP_F_EGRESS_ENFORCED as u64),
    ("PLC_EP_F_ALLOW_HOST", EP_F_ALLOW_HOST as u64),
    ("PLC_CT_F_SEEN_REPLY", CT_F_SEEN_REPLY as u64),
    ("PLC_CT_F_FIN_ORIG", CT_F_FIN_ORIG as u64),
    ("PLC_CT_F_FIN_REPLY", CT_F_FIN_REPLY as u64),
    ("PLC_CT_F_RST", CT_F_RST as u64),
    ("PLC_ID_ANY", ID_ANY as u64),
    ("PLC_ID_HOST", ID_HOST as u64),
    ("PLC_ID_WORLD", ID_WORLD as u64),
    ("PLC_ID_WORLD_V4", ID_WORLD_V4 as u64),
    ("PLC_ID_FIRST_LOCAL", ID_FIRST_LOCAL as u64),
    ("PLC_ID_FIRST_NAMESPACE", ID_FIRST_NAMESPACE as u64),
    ("PLC_NAMESPACE_LIMIT", NAMESPACE_LIMIT as u64),
    ("PLC_ID_CLUSTER_CLASS", ID_CLUSTER_CLASS as u64),
    ("PLC_ID_WORLD_CLASS", ID_WORLD_CLASS as u64),
    ("PLC_ID_WORLD_V6", ID_WORLD_V6 as u64),
    ("PLC_NONE_U16", NONE_U16 as u64),
    ("PLC_NONE_U32", NONE_U32 as u64),
    ("PLC_MARK_REDIRECT", MARK_REDIRECT as u64),
    ("PLC_MARK_MASK", MARK_MASK as u64),
    ("PLC_IPC_FIXED_BITS", IPC_FIXED_BITS as u64),
    ("PLC_POL_FIXED_BITS", POL_FIXED_BITS as u64),
    ("PLC_POL_SHARDS", POL_SHARDS as u64),
    ("PLC_POL_KEY_BITS", POL_KEY_BITS as u64),
    ("PLC_CT_TCP_SYN_S", CT_TCP_SYN_S),
    ("PLC_CT_TCP_EST_S", CT_TCP_EST_S),
    ("PLC_CT_TCP_FIN_S", CT_TCP_FIN_S),
    ("PLC_CT_TCP_CLOSE_S", CT_TCP_CLOSE_S),
    ("PLC_CT_OTHER_S", CT_OTHER_S),
    ("PLC_PASS_POLICY", reason::PASS_POLICY as u64),
    ("PLC_PASS_REDIRECT", reason::PASS_REDIRECT as u64),
    ("PLC_PASS_NOT_ENFORCED", reason::PASS_NOT_ENFORCED as u64),
    ("PLC_PASS_HOST", reason::PASS_HOST as u64),
    ("PLC_PASS_SELF", reason::PASS_SELF as u64),
    (
        "PLC_PASS_CT_ESTABLISHED",
        reason::PASS_CT_ESTABLISHED as u64,
    ),
    ("PLC_PASS_CT_REPLY", reason::PASS_CT_REPLY as u64),
    ("PLC_PASS_ARP", reason::PASS_ARP as u64),
    ("PLC_PASS_ND", reason::PASS_ND as u64),
    ("PLC_DROP_POLICY_DENY", reason::DROP_POLICY_DENY as u64),
    ("PLC_DROP_DEFAULT_DENY", reason::DROP_DEFAULT_DENY as u64),
    ("PLC_DROP_L2_TRUNCATED", reason::DROP_L2_TRUNCATED as u64),
    ("PLC_DROP_UNKNOWN_L3", reason::DROP_UNKNOWN_L3 as u64),
    ("PLC_DROP_L3_TRUNCATED", reason::DROP_L3_TRUNCATED as u64),
    ("PLC_DROP_L3_VERSION", reason::DROP_L3_VERSION as u64),
    ("PLC_DROP_L3_BAD_IHL", reason::DROP_L3_BAD_IHL as u64),
    ("PLC_DROP_L3_BAD_LENGTH", reason::DROP_L3_BAD_LENGTH as u64),
    ("PLC_DROP_L4_TRUNCATED", reason::DROP_L4_TRUNCATED as u64),
    ("PLC_DROP_L4_BAD_HEADER", reason::DROP_L4_BAD_HEADER as u64),
    ("PLC_DROP_FRAG_UNKNOWN", reason::DROP_FRAG_UNKNOWN as u64),
    ("PLC_DROP_FRAG_OVERLAP", reason::DROP_FRAG_OVERLAP as u64),
    ("PLC_DROP_IPV6_EXT", reason::DROP_IPV6_EXT as u64),
    ("PLC_DROP_NO_GENERATION", reason::DROP_NO_GENERATION as u64),
    ("PLC_DROP_UNKNOWN_EP", reason::DROP_UNKNOWN_EP as u64),
    ("PLC_DROP_SPOOFED", reason::DROP_SPOOFED as u64),
    ("PLC_DROP_NOT_LOCAL", reason::DROP_NOT_LOCAL as u64),
    ("PLC_STAT_EVENTS_LOST", STAT_EVENTS_LOST as u64),
    ("PLC_STAT_SLOTS", STAT_SLOTS as u64),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `#define PLC_NAME value` lines of the shared header.
    fn header_defines() -> BTreeMap<String, u64> {
        let text = include_str!("../bpf/lib/maps.h");
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                continue;
            }
            let (Some(name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            if !name.starts_with("PLC_") || name.ends_with("_H") {
                continue;
            }
            let parsed = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => value.parse(),
            };
            let value = parsed.unwrap_or_else(|_| panic!("`{name}` has no literal value"));
            out.insert(name.to_owned(), value);
        }
        out
    }

    #[test]
    fn every_c_constant_has_its_rust_twin() {
        let c = header_defines();
        let rust: BTreeMap<String, u64> = C_CONSTANTS
            .iter()
            .map(|(n, v)| ((*n).to_owned(), *v))
            .collect();
        assert_eq!(c, rust);
    }

    /// The identities the programs compute with are the compiler's.
    #[test]
    fn identity_constants_are_the_compilers() {
        use compiler::identity::Identity;
        assert_eq!(ID_ANY, Identity::ANY.0);
        assert_eq!(ID_HOST, Identity::HOST.0);
        assert_eq!(ID_WORLD, Identity::WORLD.0);
        assert_eq!(ID_WORLD_V4, Identity::WORLD_IPV4.0);
        assert_eq!(ID_WORLD_V6, Identity::WORLD_IPV6.0);
        assert_eq!(ID_FIRST_LOCAL, Identity::FIRST_LOCAL);
        assert_eq!(ID_FIRST_NAMESPACE, Identity::FIRST_NAMESPACE);
        assert_eq!(ID_CLUSTER_CLASS, Identity::CLUSTER_CLASS.0);
        assert_eq!(ID_WORLD_CLASS, Identity::WORLD_CLASS.0);
        // The last namespace below the limit stays below both classes.
        let last = Identity::namespace(NAMESPACE_LIMIT - 1).0;
        assert!(last < ID_CLUSTER_CLASS.min(ID_WORLD_CLASS));
    }

    #[test]
    fn reason_names_are_distinct() {
        let mut names: Vec<&str> = (0..=u16::from(u8::MAX)).map(reason::name).collect();
        names.retain(|n| *n != "unknown");
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn addresses_round_trip() {
        for ip in ["10.1.2.3", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("ip");
            let (f, b) = addr_bytes(ip);
            assert_eq!(addr_from_bytes(f, b), Some(ip));
        }
    }
}
