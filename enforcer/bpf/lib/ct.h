/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Conntrack: entries are keyed from one endpoint's point of view, created only by packets
 * that policy allowed, and let every later packet of the connection pass in either direction
 * without a policy lookup, until the live generation changes: then the next packet in the
 * original direction is judged again under the new policy (and the entry deleted if it is
 * now denied), so a revision that removes an allow cuts the connection.
 */
#ifndef PLC_CT_H
#define PLC_CT_H

#include "maps.h"
#include "parse.h"

#define PLC_NS 1000000000ULL

static __always_inline void plc_ct_key_of(const struct plc_ctx *c, struct plc_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (c->direction == PLC_DIR_EGRESS) {
		__builtin_memcpy(k->ep_addr, c->p.saddr, 16);
		__builtin_memcpy(k->peer_addr, c->p.daddr, 16);
		k->ep_port = c->p.sport;
		k->peer_port = c->p.dport;
	} else {
		__builtin_memcpy(k->ep_addr, c->p.daddr, 16);
		__builtin_memcpy(k->peer_addr, c->p.saddr, 16);
		k->ep_port = c->p.dport;
		k->peer_port = c->p.sport;
	}
	k->family = c->p.family;
	k->protocol = c->p.proto;
}

static __always_inline int plc_tcp_syn_only(const struct plc_pkt *p)
{
	return p->proto == IPPROTO_TCP && (p->tcp_flags & (PLC_TCP_SYN | PLC_TCP_ACK)) == PLC_TCP_SYN;
}

static __always_inline int plc_ct_closed(__u8 flags)
{
	return (flags & PLC_CT_F_RST) ||
	       ((flags & PLC_CT_F_FIN_ORIG) && (flags & PLC_CT_F_FIN_REPLY));
}

/* The entry's flags and deadline after `p` went through it. */
static __always_inline void plc_ct_advance(const struct plc_pkt *p, int original, __u8 *flags,
					   __u64 *expires, __u64 now)
{
	__u8 f = *flags;
	__u64 life;

	if (!original)
		f |= PLC_CT_F_SEEN_REPLY;
	if (p->proto == IPPROTO_TCP) {
		if (p->tcp_flags & PLC_TCP_RST)
			f |= PLC_CT_F_RST;
		if (p->tcp_flags & PLC_TCP_FIN)
			f |= original ? PLC_CT_F_FIN_ORIG : PLC_CT_F_FIN_REPLY;
		if (plc_ct_closed(f))
			life = PLC_CT_TCP_CLOSE_S;
		else if (f & (PLC_CT_F_FIN_ORIG | PLC_CT_F_FIN_REPLY))
			life = PLC_CT_TCP_FIN_S;
		else if (f & PLC_CT_F_SEEN_REPLY)
			life = PLC_CT_TCP_EST_S;
		else
			life = PLC_CT_TCP_SYN_S;
	} else {
		life = PLC_CT_OTHER_S;
	}
	*flags = f;
	*expires = now + life * PLC_NS;
}

#endif
