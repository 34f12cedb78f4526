// A tc program that passes every packet untouched: attached where the datapath attaches
// (TCX ingress and egress of both host-side veths), it measures what the hooks cost before
// any work of the datapath's own.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int plcb_noop(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char _license[] SEC("license") = "GPL";
