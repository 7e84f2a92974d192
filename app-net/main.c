/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * UDP echo over lwip sockets, for Unikraft with plat-kvm-arm-rs
 * (docs/realm-io.md): sends ROUNDS datagrams of 64 bytes to <host>:<port> and
 * checks that each comes back byte for byte (a 2 s receive timeout, one retry
 * per datagram for a first ARP resolution). Prints one PASS or FAIL line with
 * the counts. With "bench" it then times BENCH_ROUNDS round trips with
 * ukplat_monotonic_clock and prints one "net-bench:" line. Only the sockets API:
 * the same app runs on Unikraft's own LIBVIRTIO_NET. Without LWIP_SOCKET (the
 * lib-lwip at hand predates the posix-socket API of Unikraft 0.19 and later) it
 * uses lwip's netconn API instead, same exchanges.
 *
 * Arguments (after the kernel's "--"): <host IPv4> <port> [bench]; the
 * interface's address comes from netdev.ip=<cidr>:<gateway>.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/config.h>
#ifndef CONFIG_LWIP_SOCKET
#define CONFIG_LWIP_SOCKET 0
#endif
#if CONFIG_LWIP_SOCKET
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#else
#include <lwip/api.h>
#endif
#include <lwip/def.h>
#include <uk/plat/time.h>
#include <uk/sched.h>

#define ROUNDS 16
#define BENCH_ROUNDS 1000
#define LEN 64
#define TIMEOUT_NS 2000000000ULL

/* The platform's counters; absent (NULL) on Unikraft's own driver. */
int platrs_vnet_stats(unsigned long out[4]) __attribute__((weak));

/* Dotted-quad IPv4 to network order; 0 on malformed input (nolibc has no
 * inet_aton). */
static int parse_ip(const char *p, uint32_t *a)
{
	unsigned long v = 0, part;
	int i;

	for (i = 0; i < 4; i++) {
		if (*p < '0' || *p > '9')
			return 0;
		for (part = 0; *p >= '0' && *p <= '9'; p++)
			if ((part = part * 10 + (unsigned long)(*p - '0')) > 255)
				return 0;
		v = v << 8 | part;
		if (i < 3 && *p++ != '.')
			return 0;
	}
	if (*p)
		return 0;
	*a = lwip_htonl(v);
	return 1;
}

static void fill(unsigned char *p, unsigned int seq)
{
	unsigned int i;

	for (i = 0; i < LEN; i++)
		p[i] = (unsigned char)(i * 29 ^ seq * 7 ^ 0xa5);
	memcpy(p, &seq, sizeof(seq));
}

/* The UDP endpoint: lwip sockets, or its netconn API. ep_recv returns the
 * datagram's length, -EAGAIN when none is waiting, or a negative errno. */
#if CONFIG_LWIP_SOCKET
static int sock = -1;
static struct sockaddr_in peer;

static int ep_open(uint32_t addr, uint16_t port)
{
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = addr;
	peer.sin_port = lwip_htons(port);
	/* Non-blocking: lib-lwip's posix-socket glue blocks in recvfrom even with
	 * MSG_DONTWAIT (seen on 0.17 with an unanswered ARP). */
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	return sock < 0 ? -errno : 0;
}

static int ep_send(const void *p, size_t len)
{
	if (sendto(sock, p, len, 0, (const struct sockaddr *)&peer, sizeof(peer)) !=
	    (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

static int ep_recv(void *p, size_t cap)
{
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(sock, p, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (int)n;
}

static void ep_close(void)
{
	close(sock);
}
#else
static struct netconn *conn;
static ip_addr_t peer;
static uint16_t peer_port;

static int ep_open(uint32_t addr, uint16_t port)
{
	ip_addr_set_ip4_u32(&peer, addr);
	peer_port = port;
	conn = netconn_new(NETCONN_UDP);
	if (!conn)
		return -ENOMEM;
	netconn_set_nonblocking(conn, 1);
	return 0;
}

static int ep_send(const void *p, size_t len)
{
	struct netbuf *b = netbuf_new();
	err_t e;

	if (!b)
		return -ENOMEM;
	if (netbuf_ref(b, p, (u16_t)len) != ERR_OK) {
		netbuf_delete(b);
		return -ENOMEM;
	}
	e = netconn_sendto(conn, b, &peer, peer_port);
	netbuf_delete(b);
	return e == ERR_OK ? 0 : -EIO;
}

static int ep_recv(void *p, size_t cap)
{
	struct netbuf *b;
	u16_t n, len;
	err_t e = netconn_recv(conn, &b);

	if (e == ERR_WOULDBLOCK)
		return -EAGAIN;
	if (e != ERR_OK)
		return -EIO;
	len = netbuf_len(b);
	n = netbuf_copy(b, p, (u16_t)cap);
	netbuf_delete(b);
	return len > cap ? -EMSGSIZE : n;
}

static void ep_close(void)
{
	netconn_delete(conn);
}
#endif

/* One round trip: 0, -ETIMEDOUT (nothing back), -EBADMSG (wrong bytes), or
 * another negative errno. */
static int echo(unsigned int seq)
{
	unsigned char out[LEN], in[LEN + 16];
	__nsec t0;
	int n;

	fill(out, seq);
	if ((n = ep_send(out, LEN)))
		return n;
	/* No receive timeout in this lwip configuration: poll, yielding to its
	 * threads (the scheduler is cooperative). */
	t0 = ukplat_monotonic_clock();
	for (;;) {
		n = ep_recv(in, sizeof(in));
		if (n == -EAGAIN) {
			if (ukplat_monotonic_clock() - t0 > TIMEOUT_NS)
				return -ETIMEDOUT;
			uk_sched_yield();
			continue;
		}
		if (n < 0)
			return n;
		if (n == LEN && !memcmp(in, out, LEN))
			return 0;
		if (n >= 4 && memcmp(in, &seq, sizeof(seq)))
			continue; /* a late reply to an earlier try */
		return -EBADMSG;
	}
}

int main(int argc, char *argv[])
{
	unsigned long st[4] = { 0, 0, 0, 0 };
	unsigned int i, ok = 0, retried = 0;
	int rc = 0, a = 0, bench = 0, port;
	uint32_t addr = 0;
	__nsec t0, t;

	/* The arguments start at the first IPv4 address: argv[0] is the program
	 * name, or the first argument; the kernel's "--" may precede it. */
	while (a < argc && !parse_ip(argv[a], &addr))
		a++;
	if (argc < a + 2) {
		printf("net: FAIL usage: <host IPv4> <port> [bench]\n");
		return 1;
	}
	port = atoi(argv[a + 1]);
	if (port <= 0 || port > 65535) {
		printf("net: FAIL bad port %s\n", argv[a + 1]);
		return 1;
	}
	bench = argc > a + 2 && !strcmp(argv[a + 2], "bench");
	if ((rc = ep_open(addr, (uint16_t)port))) {
		printf("net: FAIL %s: %d\n", CONFIG_LWIP_SOCKET ? "socket" : "netconn", rc);
		return 1;
	}
	for (i = 0; i < ROUNDS; i++) {
		rc = echo(i);
		if (rc == -ETIMEDOUT) { /* once: ARP, or a lost first datagram */
			retried++;
			rc = echo(i);
		}
		if (rc)
			break;
		ok++;
	}
	if (platrs_vnet_stats)
		platrs_vnet_stats(st);
	printf("net: %s udp echo (%s) with %s:%s, %u/%d round trips, %u retried, last error %d; "
	       "frames sent %lu received %lu dropped %lu, bounced %lu bytes\n",
	       ok == ROUNDS ? "PASS" : "FAIL", CONFIG_LWIP_SOCKET ? "sockets" : "netconn",
	       argv[a], argv[a + 1], ok, ROUNDS, retried, rc, st[0], st[1], st[2], st[3]);
	if (ok != ROUNDS)
		return 1;
	if (!bench)
		return 0;
	t0 = ukplat_monotonic_clock();
	for (i = 0; i < BENCH_ROUNDS; i++)
		if ((rc = echo(ROUNDS + i)))
			break;
	t = ukplat_monotonic_clock() - t0;
	if (platrs_vnet_stats)
		platrs_vnet_stats(st);
	printf("net-bench: %s %u round trips of %d bytes in %lu us, error %d; frames sent %lu "
	       "received %lu, bounced %lu bytes\n", rc ? "FAIL" : "done", i, LEN,
	       (unsigned long)(t / 1000), rc, st[0], st[1], st[3]);
	ep_close();
	return rc != 0;
}
