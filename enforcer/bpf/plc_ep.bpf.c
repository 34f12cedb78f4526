// SPDX-License-Identifier: GPL-2.0
/*
 * Endpoint programs, attached at tc (clsact) on an endpoint's host-side veth:
 *   plc_from_ep  tc ingress of the host-side veth = packets leaving the pod = its EGRESS
 *   plc_to_ep    tc egress of the host-side veth  = packets entering the pod = its INGRESS
 * Each judges its own endpoint's side of a flow. A pod-to-pod flow on one node is judged for
 * both sides, as compiler::lookup::Evaluator::evaluate requires: the sender's plc_from_ep judges
 * the sender's egress and then, for local delivery, the receiver's ingress too before it hands
 * the packet into the receiver's namespace; without local delivery the receiver's plc_to_ep
 * judges it. See README.md beside this file.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/event.h"
#include "lib/policy.h"
#include "lib/ct.h"

char _license[] SEC("license") = "GPL";

/*
 * Set by policyd at load (`--established keep`): connections that conntrack knows keep
 * passing when a new generation no longer allows them, as Cilium does. 0 (the default,
 * `--established recheck`): the next packet in the original direction after a swap is judged
 * by the new generation, and a connection it denies is cut.
 */
volatile const __u8 plc_keep_established = 0;

/*
 * Set by policyd at load (1 unless `--local-delivery off`): a packet that the sender's side
 * lets through towards another endpoint of this node skips the node's IP stack. When the
 * receiver pod's MAC is known, plc_from_ep judges the receiver's ingress itself and moves the
 * packet straight into the receiver's namespace (bpf_redirect_peer: no second trip through a
 * veth and the backlog queue); otherwise it hands the packet to the receiver's host-side veth
 * (bpf_redirect_neigh), whose plc_to_ep judges it.
 */
volatile const __u8 plc_local_delivery = 1;

#define PLC_AF_INET 2
#define PLC_AF_INET6 10

/* Where a packet that passed goes next: another local endpoint, or the node's stack. */
struct plc_delivery {
	__u32 ifindex; /* the peer's host-side veth when it is a local endpoint on another one */
	__u8 mac[6];   /* the peer pod's own MAC; all zero = unknown */
};

static __always_inline int plc_mac_known(const __u8 *mac)
{
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) != 0;
}

/*
 * The MAC of the local endpoint at `p`'s destination, from the node's neighbour table (the
 * permanent entry policy-cni writes, or one ARP resolved), when the node routes that address
 * to `peer_if`. Left zero otherwise: the packet then takes bpf_redirect_neigh, which resolves.
 */
static __always_inline void plc_peer_mac(struct __sk_buff *skb, const struct plc_pkt *p,
					 __u32 peer_if, __u8 *mac)
{
	struct bpf_fib_lookup f;

	__builtin_memset(&f, 0, sizeof(f));
	f.ifindex = skb->ifindex;
	if (p->family == PLC_FAMILY_V4) {
		f.family = PLC_AF_INET;
		__builtin_memcpy(&f.ipv4_src, p->saddr, 4);
		__builtin_memcpy(&f.ipv4_dst, p->daddr, 4);
	} else {
		f.family = PLC_AF_INET6;
		__builtin_memcpy(f.ipv6_src, p->saddr, 16);
		__builtin_memcpy(f.ipv6_dst, p->daddr, 16);
	}
	if (bpf_fib_lookup(skb, &f, sizeof(f), 0) == BPF_FIB_LKUP_RET_SUCCESS &&
	    f.ifindex == peer_if)
		__builtin_memcpy(mac, f.dmac, 6);
}

/* The packet's Ethernet source: the sending pod's MAC while it is still on the pod's veth. */
static __always_inline void plc_source_mac(struct __sk_buff *skb, __u8 *mac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data + 12 <= data_end)
		__builtin_memcpy(mac, data + 6, 6);
}

static __always_inline void plc_ep_key_of(struct plc_ep_key *k, __u8 family, const __u8 *addr)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = family;
	__builtin_memcpy(k->addr, addr, 16);
}

/* The peer's interface when it is a local endpoint on another one than `ep_if`, else 0. */
static __always_inline __u32 plc_peer_if(const struct plc_ep_val *peer_ep, __u32 ep_if)
{
	if (peer_ep && peer_ep->ifindex && peer_ep->ifindex != ep_if)
		return peer_ep->ifindex;
	return 0;
}

/* What plc_start returns when the packet goes on to be judged. */
#define PLC_CONTINUE -1

/* Readies `c` (its parsed packet and generation kept) to judge for an endpoint in `dir`. */
static __always_inline void plc_ctx_judging(struct plc_ctx *c, const __u8 dir)
{
	c->direction = dir;
	c->endpoint_id = PLC_NONE_U32;
	c->src_identity = 0;
	c->dst_identity = 0;
	c->rule_id = PLC_NONE_U32;
	c->l7_set = PLC_NONE_U16;
	c->l7_set_other = PLC_NONE_U16;
}

/*
 * Reads the live generation and parses the packet into `c`. Returns PLC_CONTINUE, or the
 * verdict for a packet that is not judged (ARP, ND) or cannot be (no generation, malformed).
 */
static __always_inline int plc_start(struct __sk_buff *skb, struct plc_ctx *c, const __u8 dir)
{
	__u32 zero = 0, *live;
	int r;

	__builtin_memset(c, 0, sizeof(*c));
	plc_ctx_judging(c, dir);

	/* INVARIANT: the generation is read once; every later lookup uses its slot. */
	live = bpf_map_lookup_elem(&plc_live_v1, &zero);
	if (!live)
		return plc_drop(skb, c, PLC_DROP_NO_GENERATION);
	c->generation = PLC_READ_ONCE(*live);

	r = plc_parse(skb, &c->p);
	if (r == PLC_PASS_ARP)
		return plc_pass_quiet(PLC_PASS_ARP);
	if (r)
		return plc_drop(skb, c, r);
	/* Before the endpoint lookup: ND runs from link-local and unspecified sources. */
	if (plc_is_nd(&c->p))
		return plc_pass_quiet(PLC_PASS_ND);
	return PLC_CONTINUE;
}

/*
 * Judges the parsed packet in `c` for the endpoint on interface `ep_if`, in `c->direction`:
 * `ep_if` is the packet's own interface, except when plc_from_ep judges the receiver of a
 * local delivery (then it is the receiver's). On a pass towards another local endpoint,
 * `out` says where that endpoint is.
 */
static __noinline int plc_judge(struct __sk_buff *skb, struct plc_ctx *c, __u32 ep_if,
			       struct plc_delivery *out)
{
	const __u8 dir = c->direction;
	struct plc_ep_key ek;
	struct plc_ct_key ck;
	struct plc_ep_val *ep, *peer_ep;
	struct plc_ct_val *ct = 0;
	struct plc_ipc_val peer;
	void *eps, *ipc;
	__u32 slot = c->generation & 1, peer_if = 0;
	__u64 now = 0;
	int original = 0, recheck = 0;
	__u16 reason;

	eps = bpf_map_lookup_elem(&plc_ep_v1, &slot);
	if (!eps)
		return plc_drop(skb, c, PLC_DROP_NO_GENERATION);
	plc_ep_key_of(&ek, c->p.family, dir == PLC_DIR_EGRESS ? c->p.saddr : c->p.daddr);
	ep = bpf_map_lookup_elem(eps, &ek);
	if (!ep)
		return plc_drop(skb, c, PLC_DROP_UNKNOWN_EP);
	c->endpoint_id = ep->endpoint_id;
	if (dir == PLC_DIR_EGRESS)
		c->src_identity = ep->identity;
	else
		c->dst_identity = ep->identity;
	/* The endpoint side must be a local endpoint on this very interface: anything else is
	 * a spoofed source (or a misrouted destination). */
	if (!ep->ifindex)
		return plc_drop(skb, c, PLC_DROP_NOT_LOCAL);
	if (ep->ifindex != ep_if)
		return plc_drop(skb, c, PLC_DROP_SPOOFED);

	/* Fragments: later ones borrow the L4 fields their first fragment recorded. */
	if (c->p.frag != PLC_FRAG_NONE) {
		struct plc_frag_key fk;
		struct plc_frag_val *fv;

		__builtin_memset(&fk, 0, sizeof(fk));
		fk.family = c->p.family;
		fk.protocol = c->p.proto;
		fk.id = c->p.frag_id;
		__builtin_memcpy(fk.saddr, c->p.saddr, 16);
		__builtin_memcpy(fk.daddr, c->p.daddr, 16);
		if (c->p.frag == PLC_FRAG_LATER) {
			fv = bpf_map_lookup_elem(&plc_frag_v1, &fk);
			if (!fv)
				return plc_drop(skb, c, PLC_DROP_FRAG_UNKNOWN);
			c->p.sport = fv->sport;
			c->p.dport = fv->dport;
			c->p.policy_port = fv->policy_port;
			c->p.ct = fv->ct;
		} else {
			struct plc_frag_val nv = {
				.sport = c->p.sport,
				.dport = c->p.dport,
				.policy_port = c->p.policy_port,
				.ct = c->p.ct,
			};
			bpf_map_update_elem(&plc_frag_v1, &fk, &nv, BPF_ANY);
		}
	}

	if (c->p.ct) {
		plc_ct_key_of(c, &ck);
		ct = bpf_map_lookup_elem(&plc_ct_v2, &ck);
		if (ct) {
			now = bpf_ktime_get_ns();
			original = ct->origin == dir;
			if (ct->expires_ns <= now ||
			    (original && plc_tcp_syn_only(&c->p) && plc_ct_closed(ct->flags))) {
				/* Gone, or a new connection on a closed tuple: judge afresh. */
				ct = 0;
			} else if (original && ct->generation != c->generation &&
				   !plc_keep_established) {
				recheck = 1;
			} else {
				__u8 flags = ct->flags;
				__u64 expires;

				plc_ct_advance(&c->p, original, &flags, &expires, now);
				ct->flags = flags;
				ct->expires_ns = expires;
				if (original && ct->l7_set != PLC_NONE_U16)
					skb->mark = PLC_MARK_REDIRECT | ((__u32)ct->l7_set << 16);
				/* Established flows skip the peer lookup: the entry knows where the
				 * peer lives, as long as the generation did not change. */
				if (ct->generation == c->generation) {
					out->ifindex = ct->deliver;
					/* The neighbour may have been unresolved when the entry
					 * was made (bpf_redirect_neigh resolves it meanwhile). */
					if (ct->deliver && dir == PLC_DIR_EGRESS && plc_local_delivery &&
					    !plc_mac_known(ct->deliver_mac))
						plc_peer_mac(skb, &c->p, ct->deliver, ct->deliver_mac);
					__builtin_memcpy(out->mac, ct->deliver_mac, 6);
				} else {
					plc_ep_key_of(&ek, c->p.family,
						      dir == PLC_DIR_EGRESS ? c->p.daddr : c->p.saddr);
					peer_ep = bpf_map_lookup_elem(eps, &ek);
					out->ifindex = plc_peer_if(peer_ep, ep_if);
				}
				return plc_pass_quiet(original ? PLC_PASS_CT_ESTABLISHED
							       : PLC_PASS_CT_REPLY);
			}
		}
	}

	/* A workload reaching itself (any of its addresses) is always allowed (it never gets a
	 * conntrack entry, so checking after the conntrack lookup changes no verdict). */
	plc_ep_key_of(&ek, c->p.family, dir == PLC_DIR_EGRESS ? c->p.daddr : c->p.saddr);
	peer_ep = bpf_map_lookup_elem(eps, &ek);
	if (peer_ep && peer_ep->endpoint_id == ep->endpoint_id)
		return plc_pass_quiet(PLC_PASS_SELF);
	peer_if = plc_peer_if(peer_ep, ep_if);
	out->ifindex = peer_if;

	ipc = bpf_map_lookup_elem(&plc_ipc_v2, &slot);
	if (!ipc)
		return plc_drop(skb, c, PLC_DROP_NO_GENERATION);
	plc_identity(ipc, c->p.family, dir == PLC_DIR_EGRESS ? c->p.daddr : c->p.saddr, &peer);
	if (dir == PLC_DIR_EGRESS)
		c->dst_identity = peer.identity;
	else
		c->src_identity = peer.identity;

	reason = plc_policy(slot, ep, &peer, c);
	if (reason >= 128) {
		if (recheck)
			bpf_map_delete_elem(&plc_ct_v2, &ck);
		return plc_drop(skb, c, reason);
	}

	/* Where the peer pod is, for local delivery of this flow's later packets (and of this
	 * one): towards a receiver, from the neighbour table; back to a sender still on its own
	 * veth (the receiver judged by the sender's plc_from_ep), from the packet itself. */
	if (peer_if && plc_local_delivery) {
		if (dir == PLC_DIR_EGRESS)
			plc_peer_mac(skb, &c->p, peer_if, out->mac);
		else if (skb->ifindex == peer_if)
			plc_source_mac(skb, out->mac);
	}

	if (c->p.ct) {
		if (!now)
			now = bpf_ktime_get_ns();
		if (recheck && ct) {
			__u8 flags = ct->flags;
			__u64 expires;

			plc_ct_advance(&c->p, 1, &flags, &expires, now);
			ct->generation = c->generation;
			ct->deliver = peer_if;
			__builtin_memcpy(ct->deliver_mac, out->mac, 6);
			ct->rule_id = c->rule_id;
			ct->l7_set = c->l7_set;
			ct->flags = flags;
			ct->expires_ns = expires;
		} else if (!(c->p.proto == IPPROTO_TCP && (c->p.tcp_flags & PLC_TCP_RST))) {
			struct plc_ct_val nv;

			__builtin_memset(&nv, 0, sizeof(nv));
			nv.generation = c->generation;
			nv.deliver = peer_if;
			__builtin_memcpy(nv.deliver_mac, out->mac, 6);
			nv.rule_id = c->rule_id;
			nv.l7_set = c->l7_set;
			nv.origin = dir;
			plc_ct_advance(&c->p, 1, &nv.flags, &nv.expires_ns, now);
			bpf_map_update_elem(&plc_ct_v2, &ck, &nv, BPF_ANY);
		}
	}
	if (reason == PLC_PASS_REDIRECT && c->l7_set != PLC_NONE_U16)
		skb->mark = PLC_MARK_REDIRECT | ((__u32)c->l7_set << 16);
	return plc_pass_traced(skb, c, reason);
}

/*
 * Local delivery of a packet the sender's side passed, towards the local endpoint `to`. With
 * the receiver pod's MAC known and no L7 redirection in the way, the receiver's ingress is
 * judged here and the packet goes straight into the receiver's namespace, addressed to its
 * MAC from the gateway MAC the sender used; otherwise it goes to the receiver's host-side
 * veth, whose plc_to_ep judges it (a conntrack entry made here then passes it there).
 * `c` holds the sender's judgement of the packet; it is reused for the receiver's.
 */
static __always_inline int plc_deliver_local(struct __sk_buff *skb, struct plc_ctx *c,
					     const struct plc_delivery *to)
{
	struct plc_delivery back = {};
	__u8 eth[12];
	int r;

	if (!plc_mac_known(to->mac) || (skb->mark & PLC_MARK_MASK) == PLC_MARK_REDIRECT)
		return bpf_redirect_neigh(to->ifindex, 0, 0, 0);

	/* `c` now judges for the receiver (one stack frame for both sides: the verifier allows
	 * 512 bytes across the calls). */
	plc_ctx_judging(c, PLC_DIR_INGRESS);
	r = plc_judge(skb, c, to->ifindex, &back);
	if (r != TC_ACT_OK)
		return r;
	/* The proxy would need the mark, which the switch of namespace clears. */
	if ((skb->mark & PLC_MARK_MASK) == PLC_MARK_REDIRECT)
		return bpf_redirect_neigh(to->ifindex, 0, 0, 0);

	if (bpf_skb_load_bytes(skb, 0, eth, 12) < 0)
		return bpf_redirect_neigh(to->ifindex, 0, 0, 0);
	__builtin_memcpy(eth + 6, eth, 6);
	__builtin_memcpy(eth, to->mac, 6);
	if (bpf_skb_store_bytes(skb, 0, eth, 12, 0) < 0)
		return bpf_redirect_neigh(to->ifindex, 0, 0, 0);
	return bpf_redirect_peer(to->ifindex, 0);
}

SEC("classifier")
int plc_from_ep(struct __sk_buff *skb)
{
	struct plc_ctx c;
	struct plc_delivery to = {};
	int r = plc_start(skb, &c, PLC_DIR_EGRESS);

	if (r != PLC_CONTINUE)
		return r;
	r = plc_judge(skb, &c, skb->ifindex, &to);
	if (r == TC_ACT_OK && to.ifindex && plc_local_delivery)
		return plc_deliver_local(skb, &c, &to);
	return r;
}

SEC("classifier")
int plc_to_ep(struct __sk_buff *skb)
{
	struct plc_ctx c;
	struct plc_delivery unused = {};
	int r = plc_start(skb, &c, PLC_DIR_INGRESS);

	if (r != PLC_CONTINUE)
		return r;
	return plc_judge(skb, &c, skb->ifindex, &unused);
}
