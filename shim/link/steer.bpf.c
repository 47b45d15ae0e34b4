/*
 * shim/link/steer.bpf.c — the XDP program of the AF_XDP link (design §6). It sees every frame
 * the interface receives and redirects to the stack's XSK only IPv4 TCP and UDP frames whose
 * destination (protocol, address, port) is in the flow map, filled by the link as the stack
 * binds and connects, and the ICMP errors (unreachable, time exceeded) that quote a packet of
 * one of those flows, which the stack turns into socket errors and path MTUs. Everything else
 * (ARP, other ICMP, other ports, IPv6, VLAN-tagged frames, IP fragments) goes on to the
 * kernel, which shares the interface and its address with the stack. Built with clang -target bpf
 * and embedded in the link library: no file at run time.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define IPV4_MF	      0x2000 /* more fragments */
#define ICMP_UNREACH  3
#define ICMP_TIMXCEED 11
#define ICMP_HDR_LEN  8
#define IPV4_OFFSET   0x1fff /* fragment offset, 8-byte units */

/* Keep in sync with struct steer_flow_key and the map names in xdp.c. */
struct steer_flow_key {
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];
	__u32 laddr_be32; /* local address; 0 matches any local address */
	__u16 lport_be16;
	__u16 pad2;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct steer_flow_key);
	__type(value, __u32); /* reserved, 0 */
} onr_flows SEC(".maps");

/* Queue index -> the XSK bound to that queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} onr_xsks SEC(".maps");

static __always_inline int steer_flow_is_ours(struct steer_flow_key *key)
{
	if (bpf_map_lookup_elem(&onr_flows, key))
		return 1;
	key->laddr_be32 = 0;
	return bpf_map_lookup_elem(&onr_flows, key) != NULL;
}

/*
 * The link loads this without BPF_F_XDP_HAS_FRAGS unless the MTU needs frames longer than a
 * buffer. With frags only the linear part is reachable here; it always holds the headers.
 */
SEC("xdp.frags")
int onr_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct steer_flow_key key = {};
	struct iphdr *ip;
	__u16 *ports; /* source then destination: the first 4 bytes of TCP and UDP alike */

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return XDP_PASS;
	/* A fragment after the first carries no ports; the kernel reassembles them all. */
	if (ip->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET))
		return XDP_PASS;
	if (ip->protocol == IPPROTO_ICMP) {
		/* an error quotes the IP header and first 8 bytes of the packet that caused it:
		 * ours when that packet's source is one of our flows */
		__u8 *icmp = (void *)ip + ip->ihl * 4;
		struct iphdr *inner = (void *)(icmp + ICMP_HDR_LEN);

		if ((void *)(inner + 1) > end ||
		    (icmp[0] != ICMP_UNREACH && icmp[0] != ICMP_TIMXCEED) || inner->ihl < 5 ||
		    (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP))
			return XDP_PASS;
		ports = (void *)inner + inner->ihl * 4;
		if ((void *)(ports + 2) > end)
			return XDP_PASS;
		key.proto = inner->protocol;
		key.laddr_be32 = inner->saddr;
		key.lport_be16 = ports[0];
	} else if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		ports = (void *)ip + ip->ihl * 4;
		if ((void *)(ports + 2) > end)
			return XDP_PASS;
		key.proto = ip->protocol;
		key.laddr_be32 = ip->daddr;
		key.lport_be16 = ports[1];
	} else {
		return XDP_PASS;
	}
	if (!steer_flow_is_ours(&key))
		return XDP_PASS;
	/* An XSK receives only from the queue it is bound to; with none there, the kernel. */
	return bpf_redirect_map(&onr_xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
