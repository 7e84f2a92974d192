/*
 * Conformance harness for plat-kvm-arm-rs. THIS IS NOT UNIKRAFT.
 *
 * A small freestanding program that stands in for the parts of Unikraft 0.17
 * the platform hands over to: it provides ukplat_bootinfo_get(), a coalescing
 * stand-in and _ukplat_entry(), then prints "Hello world!" through the
 * platform's ukplat_coutk(), the boot information it was given, and calls
 * ukplat_terminate(). Tests read its console output.
 */
#include <stddef.h>
#include <stdint.h>
#include "uk017/plat.h"
#if defined(PLAT_KVM_ARM_REALM) || defined(PLAT_KVM_ARM_VIRTIO)
#include "plat_kvm_arm.h"
#endif

#define MRDS 128

static struct {
	struct ukplat_bootinfo bi;
	struct ukplat_memregion_desc mrds[MRDS];
} storage = {
	.bi = {
		.magic = UKPLAT_BOOTINFO_MAGIC,
		.version = 1,
		.mrds = { .capacity = MRDS, .count = 0 },
	},
};

struct ukplat_bootinfo *ukplat_bootinfo_get(void)
{
	return &storage.bi;
}

/* Stand-in for Unikraft's coalescing: only sorts by base (the platform already
 * hands over non-overlapping regions). */
void ukplat_memregion_list_coalesce(struct ukplat_memregion_list *list)
{
	struct ukplat_memregion_desc *m = storage.mrds, t;
	uint32_t i, j;

	for (i = 1; i < list->count; i++)
		for (j = i; j > 0 && m[j - 1].pbase > m[j].pbase; j--) {
			t = m[j]; m[j] = m[j - 1]; m[j - 1] = t;
		}
}

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void out(const char *s)
{
	ukplat_coutk(s, (unsigned int)slen(s));
}

static void hex(uint64_t v)
{
	char b[19];
	int i;

	b[0] = '0';
	b[1] = 'x';
	for (i = 0; i < 16; i++)
		b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
	b[18] = 0;
	out(b);
}

static const char *type_name(uint16_t t)
{
	switch (t) {
	case UKPLAT_MEMRT_FREE: return "free";
	case UKPLAT_MEMRT_RESERVED: return "reserved";
	case UKPLAT_MEMRT_KERNEL: return "kernel";
	case UKPLAT_MEMRT_INITRD: return "initrd";
	case UKPLAT_MEMRT_CMDLINE: return "cmdline";
	case UKPLAT_MEMRT_DEVICETREE: return "devicetree";
	case UKPLAT_MEMRT_STACK: return "stack";
	case UKPLAT_MEMRT_DEVICE: return "device";
	default: return "?";
	}
}

#ifdef PLAT_KVM_ARM_REALM
static void hexbytes(const uint8_t *p, size_t n)
{
	char b[2 * 64 + 1];
	size_t i, k;

	while (n) {
		k = n > 64 ? 64 : n;
		for (i = 0; i < k; i++) {
			b[2 * i] = "0123456789abcdef"[p[i] >> 4];
			b[2 * i + 1] = "0123456789abcdef"[p[i] & 0xf];
		}
		b[2 * k] = 0;
		out(b);
		p += k;
		n -= k;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static uint8_t token[16384] __attribute__((aligned(4096)));

/* In a realm: extend REM1, print the RIM and REM1, fetch a token for the
 * challenge given as "challenge=<hex>" on the command line (or a fixed one),
 * print it. The tests verify all of it against the machine model. */
static void realm_checks(struct ukplat_bootinfo *bi)
{
	static const char ext[] = "plat-kvm-arm-rs harness";
	uint8_t challenge[64] = { 0 }, m[64];
	size_t clen = 64, tlen = 0, i;
	const char *c = (const char *)(uintptr_t)bi->cmdline, *p = 0;
	int rc;

	if (!ukplat_realm_is_realm()) {
		out("harness: not a realm\n");
		return;
	}
	for (i = 0; c && i + 10 < bi->cmdline_len; i++)
		if (c[i] == 'c' && !__builtin_memcmp(c + i, "challenge=", 10)) {
			p = c + i + 10;
			break;
		}
	if (p) {
		for (clen = 0; clen < 64 && hexval(p[2 * clen]) >= 0 &&
		     hexval(p[2 * clen + 1]) >= 0; clen++)
			challenge[clen] = (uint8_t)(hexval(p[2 * clen]) << 4 |
						    hexval(p[2 * clen + 1]));
	} else {
		for (i = 0; i < 64; i++)
			challenge[i] = (uint8_t)i;
	}
	rc = ukplat_realm_measurement_extend(1, ext, sizeof(ext) - 1);
	out(rc ? "harness: extend failed\n" : "harness: extended REM1\n");
	if (!ukplat_realm_measurement_read(0, m)) {
		out("guest: RIM ");
		hexbytes(m, 32);
		out("\n");
	}
	if (!ukplat_realm_measurement_read(1, m)) {
		out("harness: REM1 ");
		hexbytes(m, 32);
		out("\n");
	}
	rc = ukplat_realm_attestation_token(challenge, clen, 0, 0, &tlen);
	out("harness: token bound ");
	hex(tlen);
	out("\n");
	rc = ukplat_realm_attestation_token(challenge, clen, token, sizeof(token), &tlen);
	if (rc) {
		out("harness: token failed\n");
		return;
	}
	out("guest: token: ");
	hexbytes(token, tlen);
	out("\n");
}
#endif

/* "console-reentry=0x<hex>" on the command line: write 64 bytes from that address
 * straight to the console. The test picks an address 32 bytes below the end of
 * RAM: the read faults while the console is held, and the fault report must still
 * come out (no deadlock on the console). */
static void console_reentry(const struct ukplat_bootinfo *bi)
{
	static const char key[] = "console-reentry=0x";
	const char *c = (const char *)(uintptr_t)bi->cmdline;
	uint64_t a = 0, i, k = sizeof(key) - 1;

	for (i = 0; c && i + k < bi->cmdline_len; i++)
		if (!__builtin_memcmp(c + i, key, k))
			break;
	if (!c || i + k >= bi->cmdline_len)
		return;
	for (i += k; i < bi->cmdline_len; i++) {
		char d = c[i];
		int v = d >= '0' && d <= '9' ? d - '0' : d >= 'a' && d <= 'f' ? d - 'a' + 10 : -1;

		if (v < 0)
			break;
		a = a << 4 | (uint64_t)v;
	}
	out("harness: console re-entry from ");
	hex(a);
	out("\n");
	ukplat_coutk((const char *)(uintptr_t)a, 64);
	out("harness: console re-entry: no fault\n");
}

#ifdef PLAT_KVM_ARM_VIRTIO
/* "virtio-blk-test" on the command line: write a pattern to sectors 8-15 of the
 * first virtio-mmio block device in the DTB, read it back (through the bounce
 * pool in a realm) and print one PASS or FAIL line. Negative tests add
 * "virtio-no-bounce" (the device gets protected addresses) or
 * "virtio-no-access-platform". */
static int has(const struct ukplat_bootinfo *bi, const char *key)
{
	const char *c = (const char *)(uintptr_t)bi->cmdline;
	uint64_t i, k = slen(key);

	for (i = 0; c && i + k <= bi->cmdline_len; i++)
		if (!__builtin_memcmp(c + i, key, k))
			return 1;
	return 0;
}

static void virtio_blk_test(const struct ukplat_bootinfo *bi)
{
	uint64_t r[4] = { 0 }, flags = 0;
	int rc;

	if (!has(bi, "virtio-blk-test"))
		return;
	if (has(bi, "virtio-no-bounce"))
		flags |= 1;
	if (has(bi, "virtio-no-access-platform"))
		flags |= 2;
	rc = ukplat_virtio_blk_selftest(bi->dtb, 8, 8, flags, r);
	if (rc) {
		out("harness: virtio-blk FAIL rc -");
		hex((uint64_t)-rc);
		out("\n");
		return;
	}
	out("harness: virtio-blk PASS capacity ");
	hex(r[0]);
	out(" sectors ");
	hex(r[1]);
	out(" bounced ");
	hex(r[2]);
	out(" pool-pages-left ");
	hex(r[3]);
	out("\n");
}

/* "virtio-blkq-test": the queue behind Unikraft's uk_blkdev (PLATRS_VIRTIO_BLK),
 * on virtio-mmio or virtio-pci: 300 writes with up to 8 in flight, a flush, the
 * data read back; printed as "harness: virtio-blkq". */
static void virtio_blkq_test(const struct ukplat_bootinfo *bi)
{
	uint64_t r[6] = { 0 }, flags = 0;
	static const char *const what[6] = { " capacity ", " requests ", " flushes ",
		" bounced ", " pool-pages-left ", " notifications " };
	int rc, i;

	if (!has(bi, "virtio-blkq-test"))
		return;
	if (has(bi, "virtio-no-bounce"))
		flags |= 1;
	rc = ukplat_virtio_blkq_selftest(bi->dtb, flags, r);
	if (rc) {
		out("harness: virtio-blkq FAIL rc -");
		hex((uint64_t)-rc);
		out("\n");
		return;
	}
	out("harness: virtio-blkq PASS");
	for (i = 0; i < 6; i++) {
		out(what[i]);
		hex(r[i]);
	}
	out("\n");
}

/* The decimal number after `key` on the command line, or `dflt`. */
static uint64_t num_after(const struct ukplat_bootinfo *bi, const char *key, uint64_t dflt)
{
	const char *c = (const char *)(uintptr_t)bi->cmdline;
	uint64_t i, j, k = slen(key), v;

	for (i = 0; c && i + k <= bi->cmdline_len; i++) {
		if (__builtin_memcmp(c + i, key, k))
			continue;
		for (v = 0, j = i + k; j < bi->cmdline_len && c[j] >= '0' && c[j] <= '9' && v < 100000; j++)
			v = v * 10 + (uint64_t)(c[j] - '0');
		return j > i + k ? v : dflt;
	}
	return dflt;
}

/* "virtio-net-test": ARP, ICMP echo and UDP echo with the gateway through the
 * first virtio-mmio network device. Addresses are kvmtool's user-mode network
 * (192.168.33.15, gateway .1), or QEMU's with "virtio-net-slirp" (10.0.2.15,
 * gateway 10.0.2.2); the gateway's UDP echo port is 7 or "virtio-net-port=N".
 * Negative tests add the same options as the block test. "virtio-netq-test": the
 * same exchanges through the queue behind Unikraft's uk_netdev
 * (PLATRS_VIRTIO_NET), printed as "harness: virtio-netq". */
static void virtio_net_test(const struct ukplat_bootinfo *bi)
{
	int q = has(bi, "virtio-netq-test");
	uint64_t r[6] = { 0 }, flags = 0;
	uint32_t me = 0xc0a8210f, gw = 0xc0a82101;
	int rc, i;
	static const char *const what[6] = { " mac ", " gateway-mac ", " sent ",
		" received ", " bounced ", " pool-pages-left " };

	if (!q && !has(bi, "virtio-net-test"))
		return;
	if (has(bi, "virtio-net-slirp")) {
		me = 0x0a00020f;
		gw = 0x0a000202;
	}
	if (has(bi, "virtio-no-bounce"))
		flags |= 1;
	if (has(bi, "virtio-no-access-platform"))
		flags |= 2;
	rc = (q ? ukplat_virtio_netq_selftest : ukplat_virtio_net_selftest)(
		bi->dtb, me, gw, (uint32_t)num_after(bi, "virtio-net-port=", 7), flags, r);
	if (rc) {
		out(q ? "harness: virtio-netq FAIL rc -" : "harness: virtio-net FAIL rc -");
		hex((uint64_t)-rc);
		out("\n");
		return;
	}
	out(q ? "harness: virtio-netq PASS" : "harness: virtio-net PASS");
	for (i = 0; i < 6; i++) {
		out(what[i]);
		hex(r[i]);
	}
	out("\n");
}
#endif

void _ukplat_entry(void)
{
	struct ukplat_bootinfo *bi = ukplat_bootinfo_get();
	uint64_t free_bytes = 0;
	uint32_t i;

	out("Hello world!\n");
	out("harness: dtb ");
	hex(bi->dtb);
	out(" cmdline \"");
	if (bi->cmdline)
		ukplat_coutk((const char *)(uintptr_t)bi->cmdline,
			     (unsigned int)bi->cmdline_len);
	out("\"\n");
	for (i = 0; i < bi->mrds.count; i++) {
		struct ukplat_memregion_desc *m = &storage.mrds[i];

		out("harness: mrd ");
		hex(m->pbase + m->pg_off);
		out("-");
		hex(m->pbase + m->pg_off + m->len);
		out(" ");
		out(type_name(m->type));
		out("\n");
		if (m->type == UKPLAT_MEMRT_FREE)
			free_bytes += m->len;
	}
	out("harness: free ");
	hex(free_bytes);
	out("\n");
	console_reentry(bi);
#ifdef PLAT_KVM_ARM_VIRTIO
	virtio_blk_test(bi);
	virtio_blkq_test(bi);
	virtio_net_test(bi);
#endif
#ifdef PLAT_KVM_ARM_REALM
	realm_checks(bi);
#endif
	out("harness: done\n");
	ukplat_terminate(UKPLAT_HALT);
}
