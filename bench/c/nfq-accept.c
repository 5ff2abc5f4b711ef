/*
 * gcc -O2 -o nfq-accept nfq-accept.c -lnetfilter_queue -lmnl
 *
 * Accept-all NFQUEUE consumer in plain C: the ceiling the datapath benchmark compares
 * nfsessiond's queue against. It configures the queue the way src/kernel/queue.ts does
 * (copy PACKET 0xffff, maxlen 4096, GSO, 8 MiB SO_RCVBUFFORCE, NETLINK_NO_ENOBUFS) and issues one
 * NFQNL_MSG_VERDICT per packet, as libnetfilter_queue's own example does.
 *
 * usage: nfq-accept [--mark MARK] QUEUE [MAXLEN] [fail-open]
 * --mark: every verdict also sets the packet mark to MARK (NFQA_MARK, like nfq_set_verdict2),
 * so a rule in a later chain can copy it into the ct mark and the connection's next packets skip
 * the queue: the same first-packet offload the daemon does, with a consumer that does nothing else.
 * Prints "ready" on stdout once bound; on SIGINT/SIGTERM prints "packets N" and exits 0.
 * Needs apt packages libnetfilter-queue-dev and libmnl-dev to build.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static volatile sig_atomic_t stop;
static unsigned long long packets;
static uint32_t verdict_mark;
static int set_mark;

static void on_signal(int sig) { (void)sig; stop = 1; }

static struct nlmsghdr *put_header(char *buf, int type, uint32_t queue) {
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, type, queue);
	return nlh;
}

static int send_config(struct mnl_socket *nl, struct nlmsghdr *nlh) {
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return -1;
	return 0;
}

static int queue_cb(const struct nlmsghdr *nlh, void *data) {
	struct mnl_socket *nl = data;
	struct nlattr *attr[NFQA_MAX + 1] = {0};
	char buf[256]; /* one verdict message */
	if (nfq_nlmsg_parse(nlh, attr) < 0) return MNL_CB_ERROR;
	if (attr[NFQA_PACKET_HDR] == NULL) return MNL_CB_ERROR;
	struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	uint32_t id = ntohl(ph->packet_id);
	struct nlmsghdr *v = put_header(buf, NFQNL_MSG_VERDICT, ntohs(nfg->res_id));
	nfq_nlmsg_verdict_put(v, id, NF_ACCEPT);
	if (set_mark) nfq_nlmsg_verdict_put_mark(v, verdict_mark);
	if (mnl_socket_sendto(nl, v, v->nlmsg_len) < 0) {
		perror("verdict");
		return MNL_CB_ERROR;
	}
	packets++;
	return MNL_CB_OK;
}

int main(int argc, char **argv) {
	/* Options may come anywhere; what remains keeps the positional form older callers use. */
	int n_pos = 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mark") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			unsigned long m = strtoul(argv[++i], &end, 0);
			if (errno != 0 || *end != '\0' || m > 0xffffffffUL) {
				fprintf(stderr, "bad --mark %s\n", argv[i]);
				return 2;
			}
			verdict_mark = (uint32_t)m;
			set_mark = 1;
		} else {
			argv[n_pos++] = argv[i];
		}
	}
	argc = n_pos;
	if (argc < 2) {
		fprintf(stderr, "usage: %s [--mark MARK] QUEUE [MAXLEN] [fail-open]\n", argv[0]);
		return 2;
	}
	uint32_t queue = (uint32_t)strtoul(argv[1], NULL, 10);
	uint32_t maxlen = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 4096;
	int fail_open = argc > 3 && strcmp(argv[3], "fail-open") == 0;

	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("mnl_socket");
		return 1;
	}
	int fd = mnl_socket_get_fd(nl);
	int rcvbuf = 8 * 1024 * 1024, one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

	/* One config message per setting, ACKed, so a failure names its step. */
	static char buf[0xffff + 4096]; /* one full-size packet message plus headers */
	struct nlmsghdr *nlh;
	const char *step[] = {"bind", "params", "maxlen", "flags"};
	for (int i = 0; i < 4; i++) {
		nlh = put_header(buf, NFQNL_MSG_CONFIG, queue);
		switch (i) {
		case 0: nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND); break;
		case 1: nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff); break;
		case 2: nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen); break;
		case 3: {
			uint32_t flags = NFQA_CFG_F_GSO | (fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
			mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
			mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
			break;
		}
		}
		nlh->nlmsg_flags |= NLM_F_ACK;
		nlh->nlmsg_seq = (uint32_t)i + 1;
		if (send_config(nl, nlh) < 0) {
			perror(step[i]);
			return 1;
		}
		int n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0 || mnl_cb_run(buf, n, (uint32_t)i + 1, mnl_socket_get_portid(nl), NULL, NULL) < 0) {
			fprintf(stderr, "%s queue %u: %s\n", step[i], queue, strerror(errno));
			return 1;
		}
	}

	struct sigaction sa = {0};
	sa.sa_handler = on_signal; /* no SA_RESTART: recv must return EINTR so we can stop */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("ready\n");
	fflush(stdout);

	while (!stop) {
		int n = mnl_socket_recvfrom(nl, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR) continue;
			if (errno == ENOBUFS) continue;
			perror("recv");
			break;
		}
		if (mnl_cb_run(buf, n, 0, mnl_socket_get_portid(nl), queue_cb, nl) < 0 && errno != 0) {
			perror("mnl_cb_run");
		}
	}
	printf("packets %llu\n", packets);
	mnl_socket_close(nl);
	return 0;
}
