/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * UDP echo over lwip sockets, for Unikraft with plat-kvm-arm-rs
 * (docs/realm-io.md): sends ROUNDS datagrams of 64 bytes to <host>:<port> and
 * checks that each comes back byte for byte (a 2 s receive timeout, one retry
 * per datagram for a first ARP resolution). Prints one PASS or FAIL line with
 * the counts. With "bench" it then times BENCH_ROUNDS round trips with
 * ukplat_monotonic_clock and prints one "net-bench:" line. Only the sockets API:
 * the same app runs on Unikraft's own LIBVIRTIO_NET.
 *
 * Arguments (after the kernel's "--"): <host IPv4> <port> [bench]; the
 * interface's address comes from netdev.ip=<cidr>:<gateway>.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
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
static int parse_ip(const char *p, struct in_addr *a)
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
	a->s_addr = htonl(v);
	return 1;
}

static void fill(unsigned char *p, unsigned int seq)
{
	unsigned int i;

	for (i = 0; i < LEN; i++)
		p[i] = (unsigned char)(i * 29 ^ seq * 7 ^ 0xa5);
	memcpy(p, &seq, sizeof(seq));
}

/* One round trip: 0, -ETIMEDOUT (nothing back), -EBADMSG (wrong bytes), or
 * another negative errno. */
static int echo(int s, const struct sockaddr_in *to, unsigned int seq)
{
	unsigned char out[LEN], in[LEN + 16];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	__nsec t0;

	fill(out, seq);
	if (sendto(s, out, LEN, 0, (const struct sockaddr *)to, sizeof(*to)) != LEN)
		return errno ? -errno : -EIO;
	/* lwip has no SO_RCVTIMEO here: poll, yielding to its threads (the
	 * scheduler is cooperative) */
	t0 = ukplat_monotonic_clock();
	for (;;) {
		n = recvfrom(s, in, sizeof(in), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (ukplat_monotonic_clock() - t0 > TIMEOUT_NS)
				return -ETIMEDOUT;
			uk_sched_yield();
			continue;
		}
		if (n < 0)
			return -errno;
		if (n == LEN && !memcmp(in, out, LEN))
			return 0;
		if (n >= 4 && memcmp(in, &seq, sizeof(seq)))
			continue; /* a late reply to an earlier try */
		return -EBADMSG;
	}
}

int main(int argc, char *argv[])
{
	struct sockaddr_in to;
	unsigned long st[4] = { 0, 0, 0, 0 };
	unsigned int i, ok = 0, retried = 0;
	int s, rc = 0, a = 0, bench = 0;
	__nsec t0, t;

	/* argv[0] may be the first argument when no program name is passed */
	if (argc > 0 && !parse_ip(argv[0], &to.sin_addr))
		a = 1;
	if (argc < a + 2) {
		printf("net: FAIL usage: <host IPv4> <port> [bench]\n");
		return 1;
	}
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons(atoi(argv[a + 1]));
	if (!parse_ip(argv[a], &to.sin_addr) || !to.sin_port) {
		printf("net: FAIL bad address %s:%s\n", argv[a], argv[a + 1]);
		return 1;
	}
	bench = argc > a + 2 && !strcmp(argv[a + 2], "bench");
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) {
		printf("net: FAIL socket: %d\n", errno);
		return 1;
	}
	for (i = 0; i < ROUNDS; i++) {
		rc = echo(s, &to, i);
		if (rc == -ETIMEDOUT) { /* once: ARP, or a lost first datagram */
			retried++;
			rc = echo(s, &to, i);
		}
		if (rc)
			break;
		ok++;
	}
	if (platrs_vnet_stats)
		platrs_vnet_stats(st);
	printf("net: %s udp echo with %s:%s, %u/%d round trips, %u retried, last error %d; "
	       "frames sent %lu received %lu dropped %lu, bounced %lu bytes\n",
	       ok == ROUNDS ? "PASS" : "FAIL", argv[a], argv[a + 1], ok, ROUNDS,
	       retried, rc, st[0], st[1], st[2], st[3]);
	if (ok != ROUNDS)
		return 1;
	if (!bench)
		return 0;
	t0 = ukplat_monotonic_clock();
	for (i = 0; i < BENCH_ROUNDS; i++)
		if ((rc = echo(s, &to, ROUNDS + i)))
			break;
	t = ukplat_monotonic_clock() - t0;
	if (platrs_vnet_stats)
		platrs_vnet_stats(st);
	printf("net-bench: %s %u round trips of %d bytes in %lu us, error %d; frames sent %lu "
	       "received %lu, bounced %lu bytes\n", rc ? "FAIL" : "done", i, LEN,
	       (unsigned long)(t / 1000), rc, st[0], st[1], st[3]);
	close(s);
	return rc != 0;
}
