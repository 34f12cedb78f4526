/* SPDX-License-Identifier: GPL-2.0 */
/* Per-packet context, statistics and events. */
#ifndef PLC_EVENT_H
#define PLC_EVENT_H

#include <linux/pkt_cls.h>
#include "maps.h"
#include "parse.h"

#define PLC_READ_ONCE(x) (*(volatile typeof(x) *)&(x))

/* What one program run knows about its packet, filled as it goes. */
struct plc_ctx {
	struct plc_pkt p;
	__u32 generation;
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u16 l7_set;
	__u16 l7_set_other;
	__u8 direction;
};

static __always_inline void plc_count(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&plc_stat_v1, &reason);

	if (n)
		*n += 1;
}

static __always_inline void plc_emit(struct __sk_buff *skb, const struct plc_ctx *c, __u16 reason,
				     __u8 verdict)
{
	struct plc_event *e = bpf_ringbuf_reserve(&plc_evt_v1, sizeof(*e), 0);

	if (!e) {
		plc_count(PLC_STAT_EVENTS_LOST);
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->generation = c->generation;
	e->endpoint_id = c->endpoint_id;
	e->src_identity = c->src_identity;
	e->dst_identity = c->dst_identity;
	e->rule_id = c->rule_id;
	e->ifindex = skb->ifindex;
	e->len = skb->len;
	e->reason = reason;
	e->l7_set = c->l7_set;
	e->l7_set_other = c->l7_set_other;
	e->sport = c->p.sport;
	e->dport = c->p.policy_port;
	e->verdict = verdict;
	e->direction = c->direction;
	e->family = c->p.family;
	e->protocol = c->p.proto;
	e->pad[0] = 0;
	e->pad[1] = 0;
	__builtin_memcpy(e->saddr, c->p.saddr, 16);
	__builtin_memcpy(e->daddr, c->p.daddr, 16);
	/* policyd polls the ring (every 100 ms): no wakeup per event, which costs an irq_work. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline int plc_drop(struct __sk_buff *skb, const struct plc_ctx *c, __u16 reason)
{
	plc_count(reason);
	plc_emit(skb, c, reason, PLC_EV_DROP);
	return TC_ACT_SHOT;
}

/* A pass that policy decided: counted and traced. */
static __always_inline int plc_pass_traced(struct __sk_buff *skb, const struct plc_ctx *c,
					   __u16 reason)
{
	plc_count(reason);
	plc_emit(skb, c, reason, reason == PLC_PASS_REDIRECT ? PLC_EV_REDIRECT : PLC_EV_PASS);
	return TC_ACT_OK;
}

/* A pass without a policy decision (conntrack, self, ARP, ND): counted only. */
static __always_inline int plc_pass_quiet(__u16 reason)
{
	plc_count(reason);
	return TC_ACT_OK;
}

#endif
