/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The platform's virtio-blk driver as a Unikraft uk_blkdev (PLATRS_VIRTIO_BLK;
 * docs/realm-io.md). Only the glue to lib/ukblkdev is here, built against the
 * tree's own headers so that each release's structure layouts apply; the driver
 * (device discovery, rings, bounce pool, request bookkeeping) is the Rust side's
 * platrs_vblk_* (ffi/src/blkdev.rs).
 *
 * One device (the first virtio-mmio block device in the device tree, else the
 * first virtio-pci one), one queue, polled: submit_one queues reads, writes and
 * flushes; finish_reqs notifies the device once of what was queued since the
 * last call (a burst of submit_one costs one doorbell) and completes whatever
 * the device has finished. No interrupts, so queue_intr_enable/disable are left
 * out (lib/ukblkdev then returns -ENOTSUP for them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <uk/alloc.h>
#include <uk/blkdev_driver.h>
#include <uk/errptr.h>
#include <uk/init.h>
#include <uk/print.h>
#include <uk/plat/common/bootinfo.h>

int platrs_vblk_probe(uint64_t dtb, uint64_t info[3]);
int platrs_vblk_submit(int op, uint64_t sector, uint64_t count, void *buf,
		       void *cookie);
int platrs_vblk_poll(void **cookie, int *result);

/* The ring: 256 entries (plat-kvm-arm-rs/src/virtio_blkdev.rs, QUEUE). */
#define PLATRS_VBLK_SLOTS 256

struct uk_blkdev_queue {
	int configured;
};

static struct uk_blkdev platrs_vblk;
static struct uk_blkdev_queue platrs_vblk_queue;

static void platrs_vblk_get_info(struct uk_blkdev *dev __unused,
				 struct uk_blkdev_info *info)
{
	info->max_queues = 1;
}

static int platrs_vblk_configure(struct uk_blkdev *dev __unused,
				 const struct uk_blkdev_conf *conf)
{
	return conf->nb_queues == 1 ? 0 : -EINVAL;
}

static int platrs_vblk_queue_info(struct uk_blkdev *dev __unused,
				  uint16_t queue_id,
				  struct uk_blkdev_queue_info *q)
{
	if (queue_id != 0)
		return -EINVAL;
	q->nb_min = PLATRS_VBLK_SLOTS;
	q->nb_max = PLATRS_VBLK_SLOTS;
	q->nb_align = 1;
	q->nb_is_power_of_two = 1;
	return 0;
}

static struct uk_blkdev_queue *
platrs_vblk_queue_configure(struct uk_blkdev *dev __unused, uint16_t queue_id,
			    uint16_t nb_desc __unused,
			    const struct uk_blkdev_queue_conf *conf __unused)
{
	if (queue_id != 0)
		return ERR2PTR(-EINVAL);
	platrs_vblk_queue.configured = 1;
	return &platrs_vblk_queue;
}

static int platrs_vblk_start(struct uk_blkdev *dev __unused)
{
	return 0;
}

static int platrs_vblk_stop(struct uk_blkdev *dev __unused)
{
	return 0;
}

static int platrs_vblk_queue_unconfigure(struct uk_blkdev *dev __unused,
					 struct uk_blkdev_queue *q)
{
	q->configured = 0;
	return 0;
}

static int platrs_vblk_unconfigure(struct uk_blkdev *dev __unused)
{
	return 0;
}

static int platrs_vblk_submit_one(struct uk_blkdev *dev __unused,
				  struct uk_blkdev_queue *q __unused,
				  struct uk_blkreq *req)
{
	int rc, op;

	switch (req->operation) {
	case UK_BLKREQ_READ:
		op = 0;
		break;
	case UK_BLKREQ_WRITE:
		op = 1;
		break;
	case UK_BLKREQ_FFLUSH:
		op = 2; /* -ENOTSUP from a write-through device, as LIBVIRTIO_BLK */
		break;
	default:
		return -EINVAL;
	}
	rc = platrs_vblk_submit(op, req->start_sector, req->nb_sectors,
				req->aio_buf, req);
	if (rc < 0)
		return rc;
	return UK_BLKDEV_STATUS_SUCCESS | (rc > 0 ? UK_BLKDEV_STATUS_MORE : 0);
}

static int platrs_vblk_finish_reqs(struct uk_blkdev *dev __unused,
				   struct uk_blkdev_queue *q __unused)
{
	void *cookie;
	int result, rc;

	while ((rc = platrs_vblk_poll(&cookie, &result)) == 1) {
		struct uk_blkreq *req = cookie;

		req->result = result;
		uk_blkreq_finished(req);
		if (req->cb)
			req->cb(req, req->cb_cookie);
	}
	return rc;
}

static const struct uk_blkdev_ops platrs_vblk_ops = {
	.get_info = platrs_vblk_get_info,
	.dev_configure = platrs_vblk_configure,
	.queue_get_info = platrs_vblk_queue_info,
	.queue_configure = platrs_vblk_queue_configure,
	.dev_start = platrs_vblk_start,
	.dev_stop = platrs_vblk_stop,
	.queue_unconfigure = platrs_vblk_queue_unconfigure,
	.dev_unconfigure = platrs_vblk_unconfigure,
};

static int platrs_vblk_init(struct uk_init_ctx *ictx __unused)
{
	struct ukplat_bootinfo *bi = ukplat_bootinfo_get();
	uint64_t info[3];
	int rc;

	rc = platrs_vblk_probe(bi ? bi->dtb : 0, info);
	if (rc == -ENODEV) {
		uk_pr_info("virtio-blk: no virtio-mmio block device\n");
		return 0;
	}
	if (rc < 0) {
		/* The Rust side printed why; the image runs on without a disk. */
		uk_pr_err("virtio-blk: device not started: %d\n", rc);
		return 0;
	}
	platrs_vblk.submit_one = platrs_vblk_submit_one;
	platrs_vblk.finish_reqs = platrs_vblk_finish_reqs;
	platrs_vblk.dev_ops = &platrs_vblk_ops;
	platrs_vblk.capabilities.sectors = info[0];
	platrs_vblk.capabilities.ssize = 512;
	platrs_vblk.capabilities.mode = info[2] ? O_RDONLY : O_RDWR;
	platrs_vblk.capabilities.max_sectors_per_req = info[1];
	platrs_vblk.capabilities.ioalign = sizeof(void *);
	rc = uk_blkdev_drv_register(&platrs_vblk, uk_alloc_get_default(),
				    "platrs-virtio-blk");
	if (rc < 0)
		uk_pr_err("virtio-blk: registration failed: %d\n", rc);
	return 0;
}

/* Before lib/vfscore's mounts (rootfs class), as Unikraft's bus drivers are. */
uk_lib_initcall(platrs_vblk_init, 0x0);
