/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Block device check for Unikraft with plat-kvm-arm-rs (docs/realm-io.md): opens
 * the first uk_blkdev, writes a pattern to sectors 8-71 with eight 8-sector
 * requests in flight at once, reads them back (one 64-sector request, then one
 * request per 8 sectors), compares, then fills the queue with 4 KiB reads until
 * the driver refuses one (queue full, or the realm's bounce pool full), drains it
 * and reads once more. Prints one PASS or FAIL line with the counts. Only the
 * uk_blkdev API: the same app runs on Unikraft's own LIBVIRTIO_BLK. Polled (the
 * platform's driver has no interrupts): requests complete in finish_reqs.
 *
 * With the argument "bench" it then times BENCH_MIB MiB written and read back
 * (cycling over BENCH_REGION_MIB MiB of disk)
 * (requests of BENCH_SEC sectors, up to BENCH_DEPTH in flight) with
 * ukplat_monotonic_clock and prints one "blk-bench:" line (tests/bench/blk-compare).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uk/alloc.h>
#include <uk/blkdev.h>
#include <uk/plat/time.h>

#define FIRST 8
#define SECTORS 64
#define CHUNK 8
#define MAXQ 64
#define POLLS 100000000UL

/* Bench: a region past the check's sectors, 16 KiB requests, 4 in flight (fits
 * the platform's 16-descriptor queue and, in a realm, its default 128 KiB pool). */
#define BENCH_FIRST 2048
#define BENCH_MIB 32
#define BENCH_REGION_MIB 8 /* BENCH_MIB cycles over this much disk */
#define BENCH_SEC 32
#define BENCH_DEPTH 4

/* The platform's bounce statistics; absent (NULL) on Unikraft's own driver. */
int platrs_vblk_stats(unsigned long out[2]) __attribute__((weak));

static unsigned char pattern(unsigned long s, unsigned long i)
{
	return (unsigned char)((s * 131) ^ (i * 7) ^ 0x5a);
}

static struct uk_blkdev *dev;
static unsigned long submitted, completed, errors;

/* Completes what the device finished; -ETIMEDOUT if req never completes. */
static int wait_done(struct uk_blkreq *req)
{
	unsigned long n;
	int rc;

	for (n = 0; n < POLLS; n++) {
		if (uk_blkreq_is_done(req))
			return 0;
		rc = uk_blkdev_queue_finish_reqs(dev, 0);
		if (rc < 0)
			return rc;
	}
	return -ETIMEDOUT;
}

static void count_done(struct uk_blkreq *req, void *cookie __unused)
{
	completed++;
	if (req->result)
		errors++;
}

/* Submits req; on a full queue or pool, completes `pending` requests first. */
static int submit(struct uk_blkreq *req, struct uk_blkreq *pending, int npending)
{
	int rc, i;

	for (;;) {
		rc = uk_blkdev_queue_submit_one(dev, 0, req);
		if (uk_blkdev_status_successful(rc)) {
			submitted++;
			return 0;
		}
		if (rc != -ENOSPC && rc != -EAGAIN)
			return rc ? rc : -EIO;
		for (i = 0; i < npending; i++)
			if (!uk_blkreq_is_done(&pending[i]))
				break;
		if (i == npending)
			return rc; /* nothing in flight to wait for */
		if ((rc = wait_done(&pending[i])))
			return rc;
	}
}

static int rw(enum uk_blkreq_op op, unsigned long sector, unsigned long n,
	      unsigned char *buf)
{
	struct uk_blkreq req;
	int rc;

	uk_blkreq_init(&req, op, sector, n, buf, count_done, NULL);
	if ((rc = submit(&req, NULL, 0)))
		return rc;
	if ((rc = wait_done(&req)))
		return rc;
	return req.result;
}

static unsigned long mismatches(const unsigned char *buf, unsigned long first,
				unsigned long n)
{
	unsigned long s, i, bad = 0;

	for (s = 0; s < n; s++)
		for (i = 0; i < 512; i++)
			if (buf[s * 512 + i] != pattern(first + s, i))
				bad++;
	return bad;
}

/* One timed pass over the bench region; returns 0 or a negative errno. */
static int bench_pass(enum uk_blkreq_op op, unsigned char *bufs, __nsec *took,
		      unsigned long *nreq_out)
{
	static struct uk_blkreq r[BENCH_DEPTH];
	int busy[BENCH_DEPTH] = { 0 };
	unsigned long nreq = (BENCH_MIB << 20) / (BENCH_SEC * 512);
	unsigned long region = (BENCH_REGION_MIB << 20) / (BENCH_SEC * 512);
	unsigned long next = 0, done = 0, s, inflight = 0;
	__nsec t0 = ukplat_monotonic_clock();
	int rc;

	while (done < nreq) {
		for (s = 0; s < BENCH_DEPTH && next < nreq; s++) {
			if (busy[s])
				continue;
			uk_blkreq_init(&r[s], op, BENCH_FIRST + next % region * BENCH_SEC,
				       BENCH_SEC, bufs + s * BENCH_SEC * 512,
				       count_done, NULL);
			rc = uk_blkdev_queue_submit_one(dev, 0, &r[s]);
			if (!uk_blkdev_status_successful(rc)) {
				if ((rc != -ENOSPC && rc != -EAGAIN) || !inflight)
					return rc ? rc : -EIO;
				break; /* full: complete some first */
			}
			submitted++;
			busy[s] = 1;
			inflight++;
			next++;
		}
		if ((rc = uk_blkdev_queue_finish_reqs(dev, 0)) < 0)
			return rc;
		for (s = 0; s < BENCH_DEPTH; s++) {
			if (!busy[s] || !uk_blkreq_is_done(&r[s]))
				continue;
			if (r[s].result)
				return r[s].result;
			busy[s] = 0;
			inflight--;
			done++;
		}
	}
	*took = ukplat_monotonic_clock() - t0;
	*nreq_out = nreq;
	return 0;
}

static void bench(void)
{
	unsigned char *bufs;
	unsigned long i, nreq = 0, st0[2] = { 0, 0 }, st1[2] = { 0, 0 };
	__nsec tw = 0, tr = 0;
	int rc;

	if (uk_blkdev_sectors(dev) < BENCH_FIRST + (BENCH_REGION_MIB << 11) ||
	    uk_blkdev_max_sec_per_req(dev) < BENCH_SEC) {
		printf("blk-bench: FAIL the disk needs %d sectors\n",
		       BENCH_FIRST + (BENCH_REGION_MIB << 11));
		return;
	}
	if (!(bufs = malloc(BENCH_DEPTH * BENCH_SEC * 512))) {
		printf("blk-bench: FAIL out of memory\n");
		return;
	}
	for (i = 0; i < BENCH_DEPTH * BENCH_SEC * 512; i++)
		bufs[i] = pattern(i / 512, i % 512);
	if (platrs_vblk_stats)
		platrs_vblk_stats(st0);
	if ((rc = bench_pass(UK_BLKREQ_WRITE, bufs, &tw, &nreq)) ||
	    (rc = bench_pass(UK_BLKREQ_READ, bufs, &tr, &nreq))) {
		printf("blk-bench: FAIL %d\n", rc);
		return;
	}
	if (platrs_vblk_stats)
		platrs_vblk_stats(st1);
	printf("blk-bench: write %d MiB %lu us, read %d MiB %lu us, %lu requests of %d "
	       "sectors each way, depth %d, bounced %lu bytes, pool pages in use %lu\n",
	       BENCH_MIB, (unsigned long)(tw / 1000), BENCH_MIB,
	       (unsigned long)(tr / 1000), nreq, BENCH_SEC, BENCH_DEPTH,
	       st1[0] - st0[0], st1[1]);
}

int main(int argc, char *argv[])
{
	struct uk_blkdev_conf conf = { .nb_queues = 1 };
	struct uk_blkdev_queue_info qi;
	struct uk_blkdev_queue_conf qc;
	static struct uk_blkreq reqs[MAXQ];
	unsigned char *buf, *q;
	unsigned long i, bad = 0, depth = 0;
	int rc, refused = 0;

	if (uk_blkdev_count() == 0 || !(dev = uk_blkdev_get(0))) {
		printf("blk: FAIL no block device\n");
		return 1;
	}
	memset(&qc, 0, sizeof(qc));
	qc.a = uk_alloc_get_default();
	if ((rc = uk_blkdev_configure(dev, &conf)) ||
	    (rc = uk_blkdev_queue_get_info(dev, 0, &qi)) ||
	    (rc = uk_blkdev_queue_configure(dev, 0, qi.nb_min, &qc)) ||
	    (rc = uk_blkdev_start(dev))) {
		printf("blk: FAIL setting up the device: %d\n", rc);
		return 1;
	}
	/* (the capabilities are readable once the device runs) */
	printf("blk: %s, %lu sectors of %lu bytes, at most %lu per request\n",
	       uk_blkdev_drv_name_get(dev),
	       (unsigned long)uk_blkdev_sectors(dev),
	       (unsigned long)uk_blkdev_ssize(dev),
	       (unsigned long)uk_blkdev_max_sec_per_req(dev));
	if (uk_blkdev_ssize(dev) != 512 || uk_blkdev_sectors(dev) < FIRST + SECTORS ||
	    uk_blkdev_max_sec_per_req(dev) < CHUNK) {
		printf("blk: FAIL disk too small or sectors not 512 bytes\n");
		return 1;
	}
	buf = malloc(SECTORS * 512);
	q = malloc(MAXQ * 4096);
	if (!buf || !q) {
		printf("blk: FAIL out of memory\n");
		return 1;
	}

	/* Write: SECTORS / CHUNK requests in flight together. */
	for (i = 0; i < SECTORS * 512; i++)
		buf[i] = pattern(FIRST + i / 512, i % 512);
	for (i = 0; i < SECTORS / CHUNK; i++) {
		uk_blkreq_init(&reqs[i], UK_BLKREQ_WRITE, FIRST + i * CHUNK, CHUNK,
			       buf + i * CHUNK * 512, count_done, NULL);
		if ((rc = submit(&reqs[i], reqs, i))) {
			printf("blk: FAIL write submit %lu: %d\n", i, rc);
			return 1;
		}
	}
	for (i = 0; i < SECTORS / CHUNK; i++)
		if ((rc = wait_done(&reqs[i])) || (rc = reqs[i].result)) {
			printf("blk: FAIL write %lu: %d\n", i, rc);
			return 1;
		}

	/* Flush: 0, or -ENOTSUP from a device that writes through (no FLUSH). */
	rc = rw(UK_BLKREQ_FFLUSH, 0, 0, NULL);
	printf("blk: flush %d\n", rc);
	if (rc && rc != -ENOTSUP) {
		printf("blk: FAIL flush: %d\n", rc);
		return 1;
	}

	/* Read back: all at once if the driver takes it, then per CHUNK. */
	memset(buf, 0, SECTORS * 512);
	if (uk_blkdev_max_sec_per_req(dev) >= SECTORS) {
		if ((rc = rw(UK_BLKREQ_READ, FIRST, SECTORS, buf))) {
			printf("blk: FAIL read of %d sectors: %d\n", SECTORS, rc);
			return 1;
		}
		bad += mismatches(buf, FIRST, SECTORS);
	}
	memset(buf, 0, SECTORS * 512);
	for (i = 0; i < SECTORS / CHUNK; i++)
		if ((rc = rw(UK_BLKREQ_READ, FIRST + i * CHUNK, CHUNK,
			     buf + i * CHUNK * 512))) {
			printf("blk: FAIL read %lu: %d\n", i, rc);
			return 1;
		}
	bad += mismatches(buf, FIRST, SECTORS);

	/* Queue depth: 4 KiB reads until one is refused, then drain. */
	for (depth = 0; depth < MAXQ; depth++) {
		uk_blkreq_init(&reqs[depth], UK_BLKREQ_READ,
			       FIRST + (depth % (SECTORS / CHUNK)) * CHUNK, CHUNK,
			       q + depth * 4096, count_done, NULL);
		rc = uk_blkdev_queue_submit_one(dev, 0, &reqs[depth]);
		if (!uk_blkdev_status_successful(rc)) {
			refused = rc;
			break;
		}
		submitted++;
	}
	for (i = 0; i < depth; i++)
		if ((rc = wait_done(&reqs[i])) || (rc = reqs[i].result)) {
			printf("blk: FAIL queued read %lu: %d\n", i, rc);
			return 1;
		}
	for (i = 0; i < depth; i++)
		bad += mismatches(q + i * 4096, FIRST + (i % (SECTORS / CHUNK)) * CHUNK, CHUNK);
	memset(buf, 0, CHUNK * 512);
	if ((rc = rw(UK_BLKREQ_READ, FIRST, CHUNK, buf))) {
		printf("blk: FAIL read after draining: %d\n", rc);
		return 1;
	}
	bad += mismatches(buf, FIRST, CHUNK);

	printf("blk: %s wrote %d sectors from %d, %lu requests submitted, %lu completed, "
	       "%lu errors, %lu bytes differ, queue took %lu then refused with %d\n",
	       bad || errors || submitted != completed || depth == 0 ? "FAIL" : "PASS",
	       SECTORS, FIRST, submitted, completed, errors, bad, depth, refused);
	if (bad || errors || submitted != completed || depth == 0)
		return 1;
	/* (argv[0] is the first word of the command line when the boot loader
	 * passes no program name) */
	for (i = 0; i < (unsigned long)argc; i++)
		if (!strcmp(argv[i], "bench")) {
			bench();
			break;
		}
	return 0;
}
