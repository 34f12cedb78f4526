// SPDX-License-Identifier: GPL-2.0
/*
 * Endpoint programs, attached at tc (clsact) on an endpoint's host-side veth:
 *   plc_from_ep  tc ingress of the host-side veth = packets leaving the pod = its EGRESS
 *   plc_to_ep    tc egress of the host-side veth  = packets entering the pod = its INGRESS
 * Each judges its own endpoint's side of a flow; a pod-to-pod flow on one node goes through
 * the sender's plc_from_ep and then the receiver's plc_to_ep, so both sides are checked, as
 * compiler::lookup::Evaluator::evaluate requires. See README.md beside this file.
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
 * lets through towards another endpoint of this node goes straight to that endpoint's
 * host-side veth (bpf_redirect_neigh), past the node's IP stack. The receiver's plc_to_ep
 * still judges it there, at that veth's tc egress.
 */
volatile const __u8 plc_local_delivery = 1;

static __always_inline void plc_ep_key_of(struct plc_ep_key *k, __u8 family, const __u8 *addr)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = family;
	__builtin_memcpy(k->addr, addr, 16);
}

/* The peer's interface when it is a local endpoint on another one (local delivery), else 0. */
static __always_inline __u32 plc_peer_if(const struct plc_ep_val *peer_ep, const struct __sk_buff *skb)
{
	if (peer_ep && peer_ep->ifindex && peer_ep->ifindex != skb->ifindex)
		return peer_ep->ifindex;
	return 0;
}

/*
 * Judges one packet for the endpoint on this interface, in direction `dir`. On a pass towards
 * another local endpoint (egress only), `*deliver` is set to that endpoint's interface.
 */
static __always_inline int plc_handle(struct __sk_buff *skb, const __u8 dir, __u32 *deliver)
{
	struct plc_ctx c;
	struct plc_ep_key ek;
	struct plc_ct_key ck;
	struct plc_ep_val *ep, *peer_ep;
	struct plc_ct_val *ct = 0;
	struct plc_ipc_val peer;
	void *eps, *ipc;
	__u32 zero = 0, slot, peer_if = 0;
	__u32 *live;
	__u64 now = 0;
	int r, original = 0, recheck = 0;
	__u16 reason;

	__builtin_memset(&c, 0, sizeof(c));
	c.direction = dir;
	c.endpoint_id = PLC_NONE_U32;
	c.rule_id = PLC_NONE_U32;
	c.l7_set = PLC_NONE_U16;
	c.l7_set_other = PLC_NONE_U16;

	/* INVARIANT: the generation is read once; every later lookup uses its slot. */
	live = bpf_map_lookup_elem(&plc_live_v1, &zero);
	if (!live)
		return plc_drop(skb, &c, PLC_DROP_NO_GENERATION);
	c.generation = PLC_READ_ONCE(*live);
	slot = c.generation & 1;

	r = plc_parse(skb, &c.p);
	if (r == PLC_PASS_ARP)
		return plc_pass_quiet(PLC_PASS_ARP);
	if (r)
		return plc_drop(skb, &c, r);
	/* Before the endpoint lookup: ND runs from link-local and unspecified sources. */
	if (plc_is_nd(&c.p))
		return plc_pass_quiet(PLC_PASS_ND);

	eps = bpf_map_lookup_elem(&plc_ep_v1, &slot);
	if (!eps)
		return plc_drop(skb, &c, PLC_DROP_NO_GENERATION);
	plc_ep_key_of(&ek, c.p.family, dir == PLC_DIR_EGRESS ? c.p.saddr : c.p.daddr);
	ep = bpf_map_lookup_elem(eps, &ek);
	if (!ep)
		return plc_drop(skb, &c, PLC_DROP_UNKNOWN_EP);
	c.endpoint_id = ep->endpoint_id;
	if (dir == PLC_DIR_EGRESS)
		c.src_identity = ep->identity;
	else
		c.dst_identity = ep->identity;
	/* The endpoint side must be a local endpoint on this very interface: anything else is
	 * a spoofed source (or a misrouted destination). */
	if (!ep->ifindex)
		return plc_drop(skb, &c, PLC_DROP_NOT_LOCAL);
	if (ep->ifindex != skb->ifindex)
		return plc_drop(skb, &c, PLC_DROP_SPOOFED);

	/* Fragments: later ones borrow the L4 fields their first fragment recorded. */
	if (c.p.frag != PLC_FRAG_NONE) {
		struct plc_frag_key fk;
		struct plc_frag_val *fv;

		__builtin_memset(&fk, 0, sizeof(fk));
		fk.family = c.p.family;
		fk.protocol = c.p.proto;
		fk.id = c.p.frag_id;
		__builtin_memcpy(fk.saddr, c.p.saddr, 16);
		__builtin_memcpy(fk.daddr, c.p.daddr, 16);
		if (c.p.frag == PLC_FRAG_LATER) {
			fv = bpf_map_lookup_elem(&plc_frag_v1, &fk);
			if (!fv)
				return plc_drop(skb, &c, PLC_DROP_FRAG_UNKNOWN);
			c.p.sport = fv->sport;
			c.p.dport = fv->dport;
			c.p.policy_port = fv->policy_port;
			c.p.ct = fv->ct;
		} else {
			struct plc_frag_val nv = {
				.sport = c.p.sport,
				.dport = c.p.dport,
				.policy_port = c.p.policy_port,
				.ct = c.p.ct,
			};
			bpf_map_update_elem(&plc_frag_v1, &fk, &nv, BPF_ANY);
		}
	}

	if (c.p.ct) {
		plc_ct_key_of(&c, &ck);
		ct = bpf_map_lookup_elem(&plc_ct_v1, &ck);
		if (ct) {
			now = bpf_ktime_get_ns();
			original = ct->origin == dir;
			if (ct->expires_ns <= now ||
			    (original && plc_tcp_syn_only(&c.p) && plc_ct_closed(ct->flags))) {
				/* Gone, or a new connection on a closed tuple: judge afresh. */
				ct = 0;
			} else if (original && ct->generation != c.generation &&
				   !plc_keep_established) {
				recheck = 1;
			} else {
				__u8 flags = ct->flags;
				__u64 expires;

				plc_ct_advance(&c.p, original, &flags, &expires, now);
				ct->flags = flags;
				ct->expires_ns = expires;
				if (original && ct->l7_set != PLC_NONE_U16)
					skb->mark = PLC_MARK_REDIRECT | ((__u32)ct->l7_set << 16);
				/* Established flows skip the peer lookup: the entry knows where the
				 * peer lives, as long as the generation did not change. */
				if (ct->generation == c.generation) {
					*deliver = ct->deliver;
				} else {
					plc_ep_key_of(&ek, c.p.family,
						      dir == PLC_DIR_EGRESS ? c.p.daddr : c.p.saddr);
					peer_ep = bpf_map_lookup_elem(eps, &ek);
					*deliver = plc_peer_if(peer_ep, skb);
				}
				return plc_pass_quiet(original ? PLC_PASS_CT_ESTABLISHED
							       : PLC_PASS_CT_REPLY);
			}
		}
	}

	/* A workload reaching itself (any of its addresses) is always allowed (it never gets a
	 * conntrack entry, so checking after the conntrack lookup changes no verdict). */
	plc_ep_key_of(&ek, c.p.family, dir == PLC_DIR_EGRESS ? c.p.daddr : c.p.saddr);
	peer_ep = bpf_map_lookup_elem(eps, &ek);
	if (peer_ep && peer_ep->endpoint_id == ep->endpoint_id)
		return plc_pass_quiet(PLC_PASS_SELF);
	peer_if = plc_peer_if(peer_ep, skb);
	*deliver = peer_if;

	ipc = bpf_map_lookup_elem(&plc_ipc_v2, &slot);
	if (!ipc)
		return plc_drop(skb, &c, PLC_DROP_NO_GENERATION);
	plc_identity(ipc, c.p.family, dir == PLC_DIR_EGRESS ? c.p.daddr : c.p.saddr, &peer);
	if (dir == PLC_DIR_EGRESS)
		c.dst_identity = peer.identity;
	else
		c.src_identity = peer.identity;

	reason = plc_policy(slot, ep, &peer, &c);
	if (reason >= 128) {
		if (recheck)
			bpf_map_delete_elem(&plc_ct_v1, &ck);
		return plc_drop(skb, &c, reason);
	}

	if (c.p.ct) {
		if (!now)
			now = bpf_ktime_get_ns();
		if (recheck && ct) {
			__u8 flags = ct->flags;
			__u64 expires;

			plc_ct_advance(&c.p, 1, &flags, &expires, now);
			ct->generation = c.generation;
			ct->deliver = peer_if;
			ct->rule_id = c.rule_id;
			ct->l7_set = c.l7_set;
			ct->flags = flags;
			ct->expires_ns = expires;
		} else if (!(c.p.proto == IPPROTO_TCP && (c.p.tcp_flags & PLC_TCP_RST))) {
			struct plc_ct_val nv;

			__builtin_memset(&nv, 0, sizeof(nv));
			nv.generation = c.generation;
			nv.deliver = peer_if;
			nv.rule_id = c.rule_id;
			nv.l7_set = c.l7_set;
			nv.origin = dir;
			plc_ct_advance(&c.p, 1, &nv.flags, &nv.expires_ns, now);
			bpf_map_update_elem(&plc_ct_v1, &ck, &nv, BPF_ANY);
		}
	}
	if (reason == PLC_PASS_REDIRECT && c.l7_set != PLC_NONE_U16)
		skb->mark = PLC_MARK_REDIRECT | ((__u32)c.l7_set << 16);
	return plc_pass_traced(skb, &c, reason);
}

SEC("classifier")
int plc_from_ep(struct __sk_buff *skb)
{
	__u32 deliver = 0;
	int r = plc_handle(skb, PLC_DIR_EGRESS, &deliver);

	if (r == TC_ACT_OK && deliver && plc_local_delivery)
		return bpf_redirect_neigh(deliver, 0, 0, 0);
	return r;
}

SEC("classifier")
int plc_to_ep(struct __sk_buff *skb)
{
	__u32 unused = 0;

	return plc_handle(skb, PLC_DIR_INGRESS, &unused);
}
