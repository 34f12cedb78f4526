/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The policy lookup, exactly as compiler::lookup::Evaluator::side performs it: ipcache
 * longest prefix -> peer identity (miss: world of the family); in the endpoint's policy the
 * longest (protocol, port) prefix for that identity and for identity 0; deny beats allow
 * beats redirect; then the host switch, then default deny where enforced.
 */
#ifndef PLC_POLICY_H
#define PLC_POLICY_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "event.h"

static __always_inline __u32 plc_identity(void *ipc, __u8 family, const __u8 *addr)
{
	struct plc_ipc_key k;
	struct plc_ipc_val *v;

	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = PLC_IPC_FIXED_BITS + (family == PLC_FAMILY_V4 ? 32 : 128);
	k.family = family;
	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(ipc, &k);
	if (v)
		return v->identity;
	return family == PLC_FAMILY_V4 ? PLC_ID_WORLD_V4 : PLC_ID_WORLD_V6;
}

/* Returns a PLC_PASS_* or PLC_DROP_* reason; fills rule and L7 set in the context. */
static __always_inline __u16 plc_policy(void *pol, const struct plc_ep_val *ep, __u32 peer,
					struct plc_ctx *c)
{
	struct plc_pol_key k;
	struct plc_pol_val *a, *b;
	__u8 va, vb, enforced;

	__builtin_memset(&k, 0, sizeof(k));
	k.prefixlen = PLC_POL_KEY_BITS;
	k.policy_id = bpf_htonl(ep->policy_id);
	k.peer_identity = bpf_htonl(peer);
	k.direction = c->direction;
	k.protocol = c->p.proto;
	k.port = bpf_htons(c->p.policy_port);
	a = bpf_map_lookup_elem(pol, &k);
	k.peer_identity = 0;
	b = bpf_map_lookup_elem(pol, &k);
	va = a ? a->verdict : 0;
	vb = b ? b->verdict : 0;

	if (va == PLC_VERDICT_DENY || vb == PLC_VERDICT_DENY) {
		c->rule_id = (a && va == PLC_VERDICT_DENY) ? a->rule_id : (b ? b->rule_id : PLC_NONE_U32);
		return PLC_DROP_POLICY_DENY;
	}
	if (va == PLC_VERDICT_ALLOW || vb == PLC_VERDICT_ALLOW) {
		c->rule_id = (a && va == PLC_VERDICT_ALLOW) ? a->rule_id : (b ? b->rule_id : PLC_NONE_U32);
		return PLC_PASS_POLICY;
	}
	if (va == PLC_VERDICT_REDIRECT || vb == PLC_VERDICT_REDIRECT) {
		if (a && va == PLC_VERDICT_REDIRECT) {
			c->rule_id = a->rule_id;
			c->l7_set = a->l7_set;
			if (b && vb == PLC_VERDICT_REDIRECT && b->l7_set != a->l7_set)
				c->l7_set_any = b->l7_set;
		} else if (b) {
			c->rule_id = b->rule_id;
			c->l7_set = b->l7_set;
		}
		return PLC_PASS_REDIRECT;
	}
	if (c->direction == PLC_DIR_INGRESS && peer == PLC_ID_HOST &&
	    (ep->flags & PLC_EP_F_ALLOW_HOST))
		return PLC_PASS_HOST;
	enforced = c->direction == PLC_DIR_INGRESS ? (ep->flags & PLC_EP_F_INGRESS_ENFORCED)
						   : (ep->flags & PLC_EP_F_EGRESS_ENFORCED);
	return enforced ? PLC_DROP_DEFAULT_DENY : PLC_PASS_NOT_ENFORCED;
}

#endif
