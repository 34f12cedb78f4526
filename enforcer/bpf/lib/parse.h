/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing: Ethernet, IPv4 (options, fragments), IPv6 (extension headers, fragments),
 * TCP, UDP, SCTP, ICMP, ICMPv6. Every read goes through bpf_skb_load_bytes, so a short or
 * non-linear packet is a failed read, never an out-of-bounds one; every length field is
 * checked against the packet before it is trusted. A malformed packet gets a drop reason:
 * the kernel would discard it anyway, and passing it could let it past a deny.
 */
#ifndef PLC_PARSE_H
#define PLC_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include "maps.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define PLC_FRAG_NONE 0
#define PLC_FRAG_FIRST 1
#define PLC_FRAG_LATER 2

/* IPv6 extension headers walked before giving up (PLC_DROP_IPV6_EXT). */
#define PLC_IPV6_MAX_EXT 6

#define PLC_TCP_FIN 0x01
#define PLC_TCP_SYN 0x02
#define PLC_TCP_RST 0x04
#define PLC_TCP_ACK 0x10

struct plc_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 frag_id;
	__u16 sport;
	__u16 dport;
	__u16 policy_port; /* the port policy keys on: destination port or ICMP type */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 frag;         /* PLC_FRAG_* */
	__u8 ct;           /* conntrack applies (ports or echo id known) */
	__u8 icmp_type;
};

static __always_inline __u16 plc_be16(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

/* L4 header at [off, end): end is where the IP datagram ends, not the skb. */
static __always_inline int plc_parse_l4(struct __sk_buff *skb, struct plc_pkt *p, __u32 off,
					__u32 end)
{
	__u8 h[20];

	p->ct = 1;
	switch (p->proto) {
	case IPPROTO_TCP:
		if (off + 20 > end || bpf_skb_load_bytes(skb, off, h, 20) < 0)
			return PLC_DROP_L4_TRUNCATED;
		if ((h[12] >> 4) < 5)
			return PLC_DROP_L4_BAD_HEADER;
		p->sport = plc_be16(h);
		p->dport = plc_be16(h + 2);
		p->tcp_flags = h[13];
		p->policy_port = p->dport;
		return 0;
	case IPPROTO_UDP:
		if (off + 8 > end || bpf_skb_load_bytes(skb, off, h, 8) < 0)
			return PLC_DROP_L4_TRUNCATED;
		p->sport = plc_be16(h);
		p->dport = plc_be16(h + 2);
		p->policy_port = p->dport;
		return 0;
	case IPPROTO_SCTP:
		if (off + 12 > end || bpf_skb_load_bytes(skb, off, h, 12) < 0)
			return PLC_DROP_L4_TRUNCATED;
		p->sport = plc_be16(h);
		p->dport = plc_be16(h + 2);
		p->policy_port = p->dport;
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (off + 8 > end || bpf_skb_load_bytes(skb, off, h, 8) < 0)
			return PLC_DROP_L4_TRUNCATED;
		p->icmp_type = h[0];
		p->policy_port = h[0];
		/* Echo request and reply share the identifier: it is the connection. */
		if ((p->proto == IPPROTO_ICMP && (h[0] == 8 || h[0] == 0)) ||
		    (p->proto == IPPROTO_ICMPV6 && (h[0] == 128 || h[0] == 129))) {
			p->sport = plc_be16(h + 4);
			p->dport = p->sport;
		} else {
			p->ct = 0;
		}
		return 0;
	default:
		/* Other protocols: no ports; policy sees port 0, so only any-protocol
		 * entries match them. */
		return 0;
	}
}

static __always_inline int plc_parse_ipv4(struct __sk_buff *skb, struct plc_pkt *p)
{
	__u8 h[20];
	__u32 ihl, tot, frag;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 20) < 0)
		return PLC_DROP_L3_TRUNCATED;
	if ((h[0] >> 4) != 4)
		return PLC_DROP_L3_VERSION;
	ihl = (__u32)(h[0] & 0x0f) * 4;
	if (ihl < 20)
		return PLC_DROP_L3_BAD_IHL;
	tot = plc_be16(h + 2);
	/* The load above proves skb->len >= ETH_HLEN + 20. */
	if (tot < ihl || tot > skb->len - ETH_HLEN)
		return PLC_DROP_L3_BAD_LENGTH;
	p->family = PLC_FAMILY_V4;
	p->proto = h[9];
	__builtin_memcpy(p->saddr, h + 12, 4);
	__builtin_memcpy(p->daddr, h + 16, 4);
	p->frag_id = plc_be16(h + 4);
	frag = plc_be16(h + 6);
	if (frag & 0x1fff) {
		/* A TCP fragment at offset 8 can only be there to rewrite the first
		 * fragment's header (RFC 1858). */
		if ((frag & 0x1fff) == 1 && p->proto == IPPROTO_TCP)
			return PLC_DROP_FRAG_OVERLAP;
		p->frag = PLC_FRAG_LATER;
		return 0;
	}
	if (frag & 0x2000)
		p->frag = PLC_FRAG_FIRST;
	return plc_parse_l4(skb, p, ETH_HLEN + ihl, ETH_HLEN + tot);
}

static __always_inline int plc_parse_ipv6(struct __sk_buff *skb, struct plc_pkt *p)
{
	__u8 h[40];
	__u8 e[8];
	__u32 off, end, len;
	__u8 next;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 40) < 0)
		return PLC_DROP_L3_TRUNCATED;
	if ((h[0] >> 4) != 6)
		return PLC_DROP_L3_VERSION;
	end = ETH_HLEN + 40 + (__u32)plc_be16(h + 4);
	if (end > skb->len)
		return PLC_DROP_L3_BAD_LENGTH;
	p->family = PLC_FAMILY_V6;
	__builtin_memcpy(p->saddr, h + 8, 16);
	__builtin_memcpy(p->daddr, h + 24, 16);
	next = h[6];
	off = ETH_HLEN + 40;

#pragma unroll
	for (int i = 0; i < PLC_IPV6_MAX_EXT; i++) {
		switch (next) {
		case 0:  /* hop-by-hop options */
		case 43: /* routing */
		case 60: /* destination options */
		case 51: /* authentication header */
			if (off + 8 > end || bpf_skb_load_bytes(skb, off, e, 2) < 0)
				return PLC_DROP_L3_TRUNCATED;
			len = next == 51 ? ((__u32)e[1] + 2) * 4 : ((__u32)e[1] + 1) * 8;
			next = e[0];
			off += len;
			if (off > end)
				return PLC_DROP_L3_TRUNCATED;
			break;
		case 44: /* fragment */
			if (off + 8 > end || bpf_skb_load_bytes(skb, off, e, 8) < 0)
				return PLC_DROP_L3_TRUNCATED;
			next = e[0];
			off += 8;
			p->frag_id = ((__u32)e[4] << 24) | ((__u32)e[5] << 16) |
				     ((__u32)e[6] << 8) | e[7];
			if (plc_be16(e + 2) & 0xfff8) {
				p->proto = next;
				p->frag = PLC_FRAG_LATER;
				return 0;
			}
			if (e[3] & 1)
				p->frag = PLC_FRAG_FIRST;
			break;
		default:
			p->proto = next;
			return plc_parse_l4(skb, p, off, end);
		}
	}
	return PLC_DROP_IPV6_EXT;
}

/*
 * The common case read straight from the linear packet data (no helper calls): IPv4 without
 * options, not a fragment, TCP or UDP, every header inside the linear part and every length
 * consistent. Fills `p` exactly as the general path would, and returns 0; anything else
 * returns -1 and goes the general way, which also names what is wrong.
 */
static __always_inline int plc_parse_fast(struct __sk_buff *skb, struct plc_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *eth = data;
	__u8 *ip = data + ETH_HLEN;
	__u8 *l4 = ip + 20;
	__u32 tot;

	/* The longest header read below: TCP's 20 bytes. */
	if ((void *)(l4 + 20) > data_end)
		return -1;
	if (plc_be16(eth + 12) != ETH_P_IP || ip[0] != 0x45)
		return -1;
	/* Any fragment bit (more fragments, or an offset) takes the general path. */
	if ((plc_be16(ip + 6) & 0x3fff) != 0)
		return -1;
	tot = plc_be16(ip + 2);
	if (tot > skb->len - ETH_HLEN)
		return -1;
	switch (ip[9]) {
	case IPPROTO_TCP:
		if (tot < 40 || (l4[12] >> 4) < 5)
			return -1;
		p->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		if (tot < 28)
			return -1;
		break;
	default:
		return -1;
	}
	p->family = PLC_FAMILY_V4;
	p->proto = ip[9];
	__builtin_memcpy(p->saddr, ip + 12, 4);
	__builtin_memcpy(p->daddr, ip + 16, 4);
	p->frag_id = plc_be16(ip + 4);
	p->sport = plc_be16(l4);
	p->dport = plc_be16(l4 + 2);
	p->policy_port = p->dport;
	p->ct = 1;
	return 0;
}

/* 0 for an IP packet to police, PLC_PASS_ARP, or a drop reason. */
static __always_inline int plc_parse(struct __sk_buff *skb, struct plc_pkt *p)
{
	__u8 eth[ETH_HLEN];
	__u16 proto;

	if (plc_parse_fast(skb, p) == 0)
		return 0;

	if (bpf_skb_load_bytes(skb, 0, eth, ETH_HLEN) < 0)
		return PLC_DROP_L2_TRUNCATED;
	proto = plc_be16(eth + 12);
	if (proto == ETH_P_IP)
		return plc_parse_ipv4(skb, p);
	if (proto == ETH_P_IPV6)
		return plc_parse_ipv6(skb, p);
	if (proto == ETH_P_ARP)
		return PLC_PASS_ARP;
	return PLC_DROP_UNKNOWN_L3;
}

/* Router and neighbour discovery (ICMPv6 133-137): IPv6's ARP. */
static __always_inline int plc_is_nd(const struct plc_pkt *p)
{
	return p->family == PLC_FAMILY_V6 && p->proto == IPPROTO_ICMPV6 &&
	       p->frag == PLC_FRAG_NONE && p->icmp_type >= 133 && p->icmp_type <= 137;
}

#endif
