/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The datapath ABI: every map, key, value, event and constant that policyd and the
 * programs share. Every struct here has a #[repr(C)] twin in enforcer/src/datapath.rs
 * with the same size asserted on both sides, and every #define is compared with its Rust
 * twin by a unit test; change both sides together and bump the map's version suffix
 * when a layout changes (pinned maps of the old layout are then left alone).
 *
 * Byte order: fields of LPM keys are big-endian (prefix bits run from the most significant
 * bit of the first byte); everything else is host order. Addresses are raw network bytes:
 * IPv4 in addr[0..4] with the other 12 bytes zero, IPv6 in all 16, told apart by `family`.
 *
 * Names: `plc_` prefix, layout version suffix, at most 15 characters (the kernel's limit).
 */
#ifndef PLC_MAPS_H
#define PLC_MAPS_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* ---- constants (mirrored in datapath.rs `abi`) ---- */

#define PLC_FAMILY_V4 4
#define PLC_FAMILY_V6 6

/* Direction from the endpoint's point of view, as in the bundle. */
#define PLC_DIR_INGRESS 1
#define PLC_DIR_EGRESS 2

/* Policy entry verdicts (0 never appears in a map). */
#define PLC_VERDICT_DENY 1
#define PLC_VERDICT_ALLOW 2
#define PLC_VERDICT_REDIRECT 3

/* Event verdicts. */
#define PLC_EV_PASS 0
#define PLC_EV_DROP 1
#define PLC_EV_REDIRECT 2

/* Endpoint flags. */
#define PLC_EP_F_INGRESS_ENFORCED 1
#define PLC_EP_F_EGRESS_ENFORCED 2
#define PLC_EP_F_ALLOW_HOST 4

/* Conntrack flags (TCP state). */
#define PLC_CT_F_SEEN_REPLY 1
#define PLC_CT_F_FIN_ORIG 2
#define PLC_CT_F_FIN_REPLY 4
#define PLC_CT_F_RST 8

/* Identities the datapath itself uses (compiler::identity::Identity). */
#define PLC_ID_ANY 0
#define PLC_ID_HOST 1
#define PLC_ID_WORLD 2
#define PLC_ID_WORLD_V4 9
#define PLC_ID_WORLD_V6 10
/* Local identities (CIDR prefixes, DNS-name selectors) from here up to the namespaces. */
#define PLC_ID_FIRST_LOCAL 0x1000000
/* Policy-key pseudo-identities, never carried by a packet: the lookup derives them from
 * the peer. A namespace's is PLC_ID_FIRST_NAMESPACE + its index in the bundle; indexes
 * stay below PLC_NAMESPACE_LIMIT (the writer refuses others) so that they never reach the
 * classes. Class of a peer identity: 2, 9, 10 and [FIRST_LOCAL, FIRST_NAMESPACE) are
 * WORLD_CLASS; [1, FIRST_LOCAL) otherwise CLUSTER_CLASS; 0 and the pseudo-identities none. */
#define PLC_ID_FIRST_NAMESPACE 0xfffe0000
#define PLC_NAMESPACE_LIMIT 0x10000
#define PLC_ID_CLUSTER_CLASS 0xffff0001
#define PLC_ID_WORLD_CLASS 0xffff0002

#define PLC_NONE_U16 0xffff
#define PLC_NONE_U32 0xffffffff

/* skb->mark of a redirected packet: magic in bits 8-11, L7 set id in bits 16-31. */
#define PLC_MARK_REDIRECT 0x0e00
#define PLC_MARK_MASK 0x0f00

/* Prefix lengths: bits of an LPM key after `prefixlen` that are always matched in full. */
#define PLC_IPC_FIXED_BITS 32
#define PLC_POL_FIXED_BITS 72
/* The policy map of a generation is split in this many inner maps, by policy and peer, so that
 * policyd fills them in parallel (a swap's cost is mostly filling the LPM tries). */
#define PLC_POL_SHARDS 16
#define PLC_POL_KEY_BITS 96

/* Conntrack lifetimes in seconds. */
#define PLC_CT_TCP_SYN_S 60
#define PLC_CT_TCP_EST_S 21600
#define PLC_CT_TCP_FIN_S 60
#define PLC_CT_TCP_CLOSE_S 10
#define PLC_CT_OTHER_S 60

/* Reason codes: below 128 the packet passed, from 128 on it was dropped. */
#define PLC_PASS_POLICY 1       /* an allow entry matched */
#define PLC_PASS_REDIRECT 2     /* only L7 (proxy) entries matched */
#define PLC_PASS_NOT_ENFORCED 3 /* direction not enforced, nothing matched */
#define PLC_PASS_HOST 4         /* from the node, allow_host_ingress */
#define PLC_PASS_SELF 5         /* both ends are the same endpoint */
#define PLC_PASS_CT_ESTABLISHED 6 /* conntrack: original direction */
#define PLC_PASS_CT_REPLY 7     /* conntrack: reply direction */
#define PLC_PASS_ARP 8          /* ARP is not policed */
#define PLC_PASS_ND 9           /* ICMPv6 router/neighbour discovery is not policed */
#define PLC_DROP_POLICY_DENY 128   /* a deny entry matched */
#define PLC_DROP_DEFAULT_DENY 129  /* enforced direction, nothing allowed it */
#define PLC_DROP_L2_TRUNCATED 130  /* shorter than an Ethernet header */
#define PLC_DROP_UNKNOWN_L3 131    /* neither IPv4, IPv6 nor ARP */
#define PLC_DROP_L3_TRUNCATED 132  /* IP header cut short */
#define PLC_DROP_L3_VERSION 133    /* IP version does not match the ethertype */
#define PLC_DROP_L3_BAD_IHL 134    /* IPv4 header length below 20 bytes */
#define PLC_DROP_L3_BAD_LENGTH 135 /* total/payload length inconsistent with the packet */
#define PLC_DROP_L4_TRUNCATED 136  /* L4 header missing or cut short */
#define PLC_DROP_L4_BAD_HEADER 137 /* L4 header invalid (TCP data offset below 5) */
#define PLC_DROP_FRAG_UNKNOWN 138  /* non-first fragment whose first fragment was not seen */
#define PLC_DROP_FRAG_OVERLAP 139  /* IPv4 TCP fragment at offset 8 (RFC 1858) */
#define PLC_DROP_IPV6_EXT 140      /* too many IPv6 extension headers */
#define PLC_DROP_NO_GENERATION 141 /* no policy generation written yet */
#define PLC_DROP_UNKNOWN_EP 142    /* the endpoint side's address is no endpoint */
#define PLC_DROP_SPOOFED 143       /* endpoint address on another interface */
#define PLC_DROP_NOT_LOCAL 144     /* endpoint address of another node's endpoint */

/* Index in plc_stat_v1 counting events the ring buffer had no room for. */
#define PLC_STAT_EVENTS_LOST 255
#define PLC_STAT_SLOTS 256

/* ---- keys and values ---- */

/* plc_ipc_v2 inner key: prefixlen = PLC_IPC_FIXED_BITS + address prefix length. */
struct plc_ipc_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct plc_ipc_key) == 24, "plc_ipc_key");

/*
 * The namespace travels with the address so that the policy lookup of a pod peer finds its
 * namespace key without a second map lookup (a function of the identity, joined in by the
 * writer from bundle.identity_namespaces).
 */
struct plc_ipc_val {
	__u32 identity;
	__u32 namespace; /* namespace index of a workload identity; PLC_NONE_U32 for others */
};
_Static_assert(sizeof(struct plc_ipc_val) == 8, "plc_ipc_val");

/*
 * plc_pol_v2 inner key. policy_id, peer_identity and direction are the fixed part (always
 * matched in full); protocol and port follow. prefixlen = PLC_POL_FIXED_BITS for a
 * protocol-0 ("any") entry, else PLC_POL_FIXED_BITS + 8 + port prefix length (0..16).
 * Fields are ordered so that the struct has no padding: a padding byte inside an LPM key
 * would take part in the prefix.
 */
struct plc_pol_key {
	__u32 prefixlen;
	__u32 policy_id;     /* big-endian */
	__u32 peer_identity; /* big-endian; 0 = any peer; or a class/namespace pseudo-identity */
	__u8 direction;      /* PLC_DIR_* */
	__u8 protocol;       /* IP protocol; 0 = any */
	__u16 port;          /* big-endian; destination port or ICMP type */
};
_Static_assert(sizeof(struct plc_pol_key) == 16, "plc_pol_key");

struct plc_pol_val {
	__u8 verdict; /* PLC_VERDICT_* */
	__u8 pad;
	__u16 l7_set;  /* redirect: the L7 set id; else PLC_NONE_U16 */
	__u32 rule_id; /* first bundle rule behind the entry, PLC_NONE_U32 if none */
};
_Static_assert(sizeof(struct plc_pol_val) == 8, "plc_pol_val");

/* plc_ep_v1 inner key: one entry per endpoint address. */
struct plc_ep_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct plc_ep_key) == 20, "plc_ep_key");

struct plc_ep_val {
	__u32 endpoint_id; /* index of the endpoint in the generation's bundle */
	__u32 policy_id;   /* index of its policy in the generation's bundle */
	__u32 identity;
	__u32 ifindex;     /* host-side veth; 0 = an endpoint of another node */
	__u8 flags;        /* PLC_EP_F_* */
	__u8 pad[3];
};
_Static_assert(sizeof(struct plc_ep_val) == 20, "plc_ep_val");

/*
 * plc_ct_v2 key: a connection as seen from one endpoint (its address and port first), so
 * the two endpoints of a pod-to-pod flow on one node keep separate entries and each side
 * judges its own direction.
 */
struct plc_ct_key {
	__u8 ep_addr[16];
	__u8 peer_addr[16];
	__u16 ep_port;   /* ICMP echo: the echo id on both ports */
	__u16 peer_port;
	__u8 family;
	__u8 protocol;
	__u8 pad[2];
};
_Static_assert(sizeof(struct plc_ct_key) == 40, "plc_ct_key");

struct plc_ct_val {
	__u64 expires_ns; /* bpf_ktime_get_ns() deadline */
	__u32 generation; /* live generation whose policy last allowed the connection */
	__u32 rule_id;
	__u16 l7_set;     /* PLC_NONE_U16 unless redirected */
	__u8 origin;      /* PLC_DIR_* of the packet that opened it */
	__u8 flags;       /* PLC_CT_F_* */
	__u32 deliver;    /* the peer's host-side ifindex when it is a local endpoint on another
			   * interface (local delivery), else 0; valid under `generation` only */
	__u8 deliver_mac[6]; /* that peer pod's own MAC, all zero when unknown (the packet then
			      * takes the peer's veth instead of going straight into its netns) */
	__u8 pad[2];
};
_Static_assert(sizeof(struct plc_ct_val) == 32, "plc_ct_val");

/* plc_frag_v1 key: one fragmented datagram. */
struct plc_frag_key {
	__u8 family;
	__u8 protocol;
	__u8 pad[2];
	__u32 id; /* IPv4: the 16-bit identification; IPv6: the fragment header's id */
	__u8 saddr[16];
	__u8 daddr[16];
};
_Static_assert(sizeof(struct plc_frag_key) == 40, "plc_frag_key");

/* What a non-first fragment lacks: its first fragment's L4 fields. */
struct plc_frag_val {
	__u16 sport;
	__u16 dport;
	__u16 policy_port;
	__u8 ct;  /* the datagram is tracked by conntrack */
	__u8 pad;
};
_Static_assert(sizeof(struct plc_frag_val) == 8, "plc_frag_val");

/* plc_evt_v1 record: a drop, or a pass decided by policy (never per established packet). */
struct plc_event {
	__u64 timestamp_ns;
	__u32 generation;
	__u32 endpoint_id;  /* PLC_NONE_U32 before the endpoint is known */
	__u32 src_identity; /* 0 when not looked up */
	__u32 dst_identity;
	__u32 rule_id;
	__u32 ifindex;
	__u32 len;
	__u16 reason;       /* PLC_PASS_* / PLC_DROP_* */
	__u16 l7_set;
	__u16 l7_set_other; /* a second, different L7 set of a later key's redirect entry */
	__u16 sport;
	__u16 dport;        /* destination port, or the ICMP type */
	__u8 verdict;       /* PLC_EV_* */
	__u8 direction;     /* PLC_DIR_* */
	__u8 family;
	__u8 protocol;
	__u8 pad[2];
	__u8 saddr[16];
	__u8 daddr[16];
};
_Static_assert(sizeof(struct plc_event) == 88, "plc_event");

/* ---- maps ---- */

/*
 * plc_live_v1: ARRAY, 1 entry. key u32 0 -> value u32: the live generation counter; its low
 * bit is the slot of the per-generation maps below. Writer: policyd (the flip). Every packet
 * reads it once and then uses only that slot.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plc_live_v1 SEC(".maps");

/*
 * plc_ipc_v2: ARRAY_OF_MAPS, 2 slots (generation & 1). Inner: LPM_TRIE
 * struct plc_ipc_key -> struct plc_ipc_val, the ipcache (address prefix -> identity and, for
 * pod addresses, the namespace index); a miss means world-ipv4 / world-ipv6 without a
 * namespace. Inner max entries: sized by policyd per generation. Writer: policyd (fresh
 * inner map per generation). v2: the value gained `namespace` (v1 held the identity only).
 */
struct plc_ipc_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* Sizes, not types: clang 14 emits only forward declarations for the types of an
	 * inner map definition, which BTF loaders reject. */
	__uint(key_size, sizeof(struct plc_ipc_key));
	__uint(value_size, sizeof(struct plc_ipc_val));
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct plc_ipc_inner);
} plc_ipc_v2 SEC(".maps");

/*
 * plc_pol_v2: ARRAY_OF_MAPS, 2 x PLC_POL_SHARDS slots: generation slot g's shard s is slot
 * g * PLC_POL_SHARDS + s; the entries of (policy p, peer identity i) live in shard
 * (p + i) % PLC_POL_SHARDS (u32 arithmetic). Inner: LPM_TRIE struct plc_pol_key ->
 * struct plc_pol_val, the generation's endpoint policies (one copy per shared policy).
 * A packet looks up to four peer keys: the peer identity, its class, its namespace (pods)
 * and 0 (any peer). Inner max entries: sized by policyd. Writer: policyd.
 */
struct plc_pol_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* Sizes, not types: clang 14 emits only forward declarations for the types of an
	 * inner map definition, which BTF loaders reject. */
	__uint(key_size, sizeof(struct plc_pol_key));
	__uint(value_size, sizeof(struct plc_pol_val));
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2 * PLC_POL_SHARDS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct plc_pol_inner);
} plc_pol_v2 SEC(".maps");

/*
 * plc_ep_v1: ARRAY_OF_MAPS, 2 slots. Inner: HASH struct plc_ep_key -> struct plc_ep_val,
 * every endpoint of the bundle by address: local ones with their interface, others (ifindex
 * 0) only so that the self rule knows a workload's pods on other nodes. Per generation
 * because the endpoint -> policy id mapping, the enforcement flags and the host switch change
 * with every revision. No namespace here: a peer is always resolved through plc_ipc_v2,
 * which carries it. Inner max entries: sized by policyd. Writer: policyd.
 */
struct plc_ep_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* Sizes, not types: clang 14 emits only forward declarations for the types of an
	 * inner map definition, which BTF loaders reject. */
	__uint(key_size, sizeof(struct plc_ep_key));
	__uint(value_size, sizeof(struct plc_ep_val));
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct plc_ep_inner);
} plc_ep_v1 SEC(".maps");

/*
 * plc_ct_v2: LRU_HASH struct plc_ct_key -> struct plc_ct_val, 65536 entries by default
 * (policyd may resize at load). Writer: the datapath (allowed packets create entries);
 * policyd only reads and flushes. Not per generation: a connection outlives a revision, and
 * its entry records the generation that allowed it so that the next revision re-checks it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct plc_ct_key);
	__type(value, struct plc_ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plc_ct_v2 SEC(".maps");

/*
 * plc_frag_v1: LRU_HASH struct plc_frag_key -> struct plc_frag_val, 8192 entries. Writer:
 * the datapath (first fragments). Lets non-first fragments, which carry no L4 header, be
 * judged with their datagram's ports.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct plc_frag_key);
	__type(value, struct plc_frag_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plc_frag_v1 SEC(".maps");

/*
 * plc_evt_v1: RINGBUF of struct plc_event, 256 KiB. Writer: the datapath; reader: policyd
 * (flow log). A full buffer loses the event and counts it in plc_stat_v1.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plc_evt_v1 SEC(".maps");

/*
 * plc_stat_v1: PERCPU_ARRAY, PLC_STAT_SLOTS entries: u32 reason code -> u64 packets, plus
 * PLC_STAT_EVENTS_LOST. Writer: the datapath; reader: policyd (metrics).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PLC_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} plc_stat_v1 SEC(".maps");

#endif
