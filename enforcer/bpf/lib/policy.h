/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The policy lookup, exactly as compiler::lookup::Evaluator::side performs it: ipcache
 * longest prefix -> peer identity and namespace (miss: world of the family, no namespace);
 * in the endpoint's policy the longest (protocol, port) prefix under each of the peer's keys
 * (Evaluator::lookup_keys): the identity, its class, its namespace's pseudo-identity, and 0
 * (any peer); deny beats allow beats redirect; then the host switch, then default deny where
 * enforced.
 */
#ifndef PLC_POLICY_H
#define PLC_POLICY_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "event.h"

/* The peer's ipcache entry: its identity and, for a pod address, its namespace index. */
static __always_inline void plc_identity(void *ipc, __u8 family, const __u8 *addr,
					 struct plc_ipc_val *out)
{
	struct plc_ipc_key k;
	struct plc_ipc_val *v;

	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = PLC_IPC_FIXED_BITS + (family == PLC_FAMILY_V4 ? 32 : 128);
	k.family = family;
	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(ipc, &k);
	if (v) {
		out->identity = v->identity;
		out->namespace = v->namespace;
		return;
	}
	out->identity = family == PLC_FAMILY_V4 ? PLC_ID_WORLD_V4 : PLC_ID_WORLD_V6;
	out->namespace = PLC_NONE_U32;
}

/* The class pseudo-identity of a peer identity (Identity::class); 0 when it has none. */
static __always_inline __u32 plc_class(__u32 id)
{
	if (id == PLC_ID_ANY || id >= PLC_ID_FIRST_NAMESPACE)
		return 0;
	if (id == PLC_ID_WORLD || id == PLC_ID_WORLD_V4 || id == PLC_ID_WORLD_V6 ||
	    id >= PLC_ID_FIRST_LOCAL)
		return PLC_ID_WORLD_CLASS;
	return PLC_ID_CLUSTER_CLASS;
}

#define PLC_SEEN_DENY (1 << PLC_VERDICT_DENY)
#define PLC_SEEN_ALLOW (1 << PLC_VERDICT_ALLOW)
#define PLC_SEEN_REDIRECT (1 << PLC_VERDICT_REDIRECT)

/* What the lookups under the peer's keys found, the first key's entry first. */
struct plc_pol_acc {
	__u32 deny_rule;
	__u32 allow_rule;
	__u32 redirect_rule;
	__u16 l7_set;       /* the first redirect entry's */
	__u16 l7_set_other; /* a later, different one */
	__u8 seen;          /* PLC_SEEN_* */
};

/*
 * One key: the longest (protocol, port) prefix entry for `peer`, folded into `a`. The
 * generation's policy is split in PLC_POL_SHARDS tries by (policy id + peer identity), so
 * that policyd fills them in parallel; every prefix of one (policy, peer) is in one shard.
 */
static __always_inline void plc_pol_one(__u32 slot, __u32 policy_id, struct plc_pol_key *k,
					__u32 peer, struct plc_pol_acc *a)
{
	struct plc_pol_val *v;
	__u32 pslot = slot * PLC_POL_SHARDS + (policy_id + peer) % PLC_POL_SHARDS;
	void *pol = bpf_map_lookup_elem(&plc_pol_v2, &pslot);

	if (!pol)
		return;
	k->peer_identity = bpf_htonl(peer);
	v = bpf_map_lookup_elem(pol, k);
	if (!v)
		return;
	switch (v->verdict) {
	case PLC_VERDICT_DENY:
		if (!(a->seen & PLC_SEEN_DENY))
			a->deny_rule = v->rule_id;
		a->seen |= PLC_SEEN_DENY;
		break;
	case PLC_VERDICT_ALLOW:
		if (!(a->seen & PLC_SEEN_ALLOW))
			a->allow_rule = v->rule_id;
		a->seen |= PLC_SEEN_ALLOW;
		break;
	case PLC_VERDICT_REDIRECT:
		if (!(a->seen & PLC_SEEN_REDIRECT)) {
			a->redirect_rule = v->rule_id;
			a->l7_set = v->l7_set;
		} else if (v->l7_set != a->l7_set) {
			a->l7_set_other = v->l7_set;
		}
		a->seen |= PLC_SEEN_REDIRECT;
		break;
	}
}

/* Returns a PLC_PASS_* or PLC_DROP_* reason; fills rule and L7 sets in the context. */
static __always_inline __u16 plc_policy(__u32 slot, const struct plc_ep_val *ep,
					const struct plc_ipc_val *peer, struct plc_ctx *c)
{
	struct plc_pol_key k;
	struct plc_pol_acc a;
	__u32 cls, ns = peer->namespace;
	__u8 enforced;

	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memset(&a, 0, sizeof(a));
	k.prefixlen = PLC_POL_KEY_BITS;
	k.policy_id = bpf_htonl(ep->policy_id);
	k.direction = c->direction;
	k.protocol = c->p.proto;
	k.port = bpf_htons(c->p.policy_port);
	a.l7_set = PLC_NONE_U16;
	a.l7_set_other = PLC_NONE_U16;

	/* The keys in Evaluator::lookup_keys order; after a deny the rest cannot matter. */
	plc_pol_one(slot, ep->policy_id, &k, peer->identity, &a);
	cls = plc_class(peer->identity);
	if (cls && !(a.seen & PLC_SEEN_DENY))
		plc_pol_one(slot, ep->policy_id, &k, cls, &a);
	if (ns < PLC_NAMESPACE_LIMIT && !(a.seen & PLC_SEEN_DENY))
		plc_pol_one(slot, ep->policy_id, &k, PLC_ID_FIRST_NAMESPACE + ns, &a);
	if (peer->identity != PLC_ID_ANY && !(a.seen & PLC_SEEN_DENY))
		plc_pol_one(slot, ep->policy_id, &k, PLC_ID_ANY, &a);

	if (a.seen & PLC_SEEN_DENY) {
		c->rule_id = a.deny_rule;
		return PLC_DROP_POLICY_DENY;
	}
	if (a.seen & PLC_SEEN_ALLOW) {
		c->rule_id = a.allow_rule;
		return PLC_PASS_POLICY;
	}
	if (a.seen & PLC_SEEN_REDIRECT) {
		c->rule_id = a.redirect_rule;
		c->l7_set = a.l7_set;
		c->l7_set_other = a.l7_set_other;
		return PLC_PASS_REDIRECT;
	}
	if (c->direction == PLC_DIR_INGRESS && peer->identity == PLC_ID_HOST &&
	    (ep->flags & PLC_EP_F_ALLOW_HOST))
		return PLC_PASS_HOST;
	enforced = c->direction == PLC_DIR_INGRESS ? (ep->flags & PLC_EP_F_INGRESS_ENFORCED)
						   : (ep->flags & PLC_EP_F_EGRESS_ENFORCED);
	return enforced ? PLC_DROP_DEFAULT_DENY : PLC_PASS_NOT_ENFORCED;
}

#endif
