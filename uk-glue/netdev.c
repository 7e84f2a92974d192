/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The platform's virtio-net driver as a Unikraft uk_netdev (PLATRS_VIRTIO_NET;
 * docs/realm-io.md). Only the glue to lib/uknetdev is here, built against the
 * tree's own headers; the driver (device discovery, rings, bounce pool, used-ring
 * checks) is the Rust side's platrs_vnet_* (ffi/src/netdev.rs).
 *
 * One device (the first virtio-mmio network device in the device tree), one
 * queue pair, polled: no receive interrupts (lwip then polls from a thread).
 * Frames are copied: tx_one linearises the netbuf chain and waits until the
 * device has taken it (the netbuf is freed at once); rx_one copies the next frame
 * into a netbuf from the queue's alloc_rxpkts.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <uk/alloc.h>
#include <uk/errptr.h>
#include <uk/init.h>
#include <uk/netdev_driver.h>
#include <uk/print.h>
#include <uk/plat/common/bootinfo.h>

int platrs_vnet_probe(uint64_t dtb, uint8_t mac[6], uint16_t *mtu);
int platrs_vnet_send(const void *frame, uint64_t len);
int platrs_vnet_recv(void *buf, uint64_t cap, uint64_t *len);

#define PLATRS_VNET_DESC 16
#define PLATRS_VNET_FRAME 1514

struct uk_netdev_rx_queue {
	uk_netdev_alloc_rxpkts alloc;
	void *alloc_argp;
	struct uk_netbuf *spare; /* allocated, no frame for it yet */
};

struct uk_netdev_tx_queue {
	int configured;
};

static struct uk_netdev platrs_vnet;
static struct uk_netdev_rx_queue platrs_vnet_rxq;
static struct uk_netdev_tx_queue platrs_vnet_txq;
static struct uk_hwaddr platrs_vnet_mac;
static uint16_t platrs_vnet_mtu;
static uint8_t platrs_vnet_txbuf[PLATRS_VNET_FRAME];

static int platrs_vnet_tx_one(struct uk_netdev *dev __unused,
			      struct uk_netdev_tx_queue *q __unused,
			      struct uk_netbuf *pkt)
{
	struct uk_netbuf *nb;
	size_t len = 0;
	int rc;

	for (nb = pkt; nb; nb = nb->next) {
		if (nb->len > PLATRS_VNET_FRAME - len)
			return -EINVAL;
		memcpy(platrs_vnet_txbuf + len, nb->data, nb->len);
		len += nb->len;
	}
	rc = platrs_vnet_send(platrs_vnet_txbuf, len);
	if (rc < 0)
		return rc;
	uk_netbuf_free(pkt); /* ours on success; the device has its copy */
	return UK_NETDEV_STATUS_SUCCESS;
}

static int platrs_vnet_rx_one(struct uk_netdev *dev __unused,
			      struct uk_netdev_rx_queue *q,
			      struct uk_netbuf **pkt)
{
	struct uk_netbuf *nb = q->spare;
	uint64_t len;
	int rc;

	if (!nb) {
		if (q->alloc(q->alloc_argp, &nb, 1) != 1)
			return UK_NETDEV_STATUS_UNDERRUN;
		q->spare = nb;
	}
	rc = platrs_vnet_recv(nb->data, nb->len, &len);
	/* -EPROTO once when the device misbehaves (it is given up, with one
	 * console line); after that, no frames (0), so a polling stack is not
	 * flooded with errors. */
	if (rc <= 0)
		return rc; /* 0: nothing waiting, the netbuf stays spare */
	q->spare = NULL;
	nb->len = len;
	*pkt = nb;
	return UK_NETDEV_STATUS_SUCCESS | UK_NETDEV_STATUS_MORE;
}

static void platrs_vnet_info(struct uk_netdev *dev __unused,
			     struct uk_netdev_info *info)
{
	memset(info, 0, sizeof(*info));
	info->max_rx_queues = 1;
	info->max_tx_queues = 1;
	info->in_queue_pairs = 1;
	info->max_mtu = platrs_vnet_mtu;
	info->ioalign = sizeof(void *);
}

static int platrs_vnet_configure(struct uk_netdev *dev __unused,
				 const struct uk_netdev_conf *conf)
{
	return conf->nb_rx_queues == 1 && conf->nb_tx_queues == 1 ? 0 : -EINVAL;
}

static int platrs_vnet_queue_info(struct uk_netdev *dev __unused,
				  uint16_t queue_id,
				  struct uk_netdev_queue_info *qi)
{
	if (queue_id != 0)
		return -EINVAL;
	qi->nb_min = PLATRS_VNET_DESC;
	qi->nb_max = PLATRS_VNET_DESC;
	qi->nb_align = 1;
	qi->nb_is_power_of_two = 1;
	return 0;
}

static struct uk_netdev_rx_queue *
platrs_vnet_rxq_configure(struct uk_netdev *dev __unused, uint16_t queue_id,
			  uint16_t nb_desc __unused,
			  struct uk_netdev_rxqueue_conf *conf)
{
	if (queue_id != 0 || !conf->alloc_rxpkts)
		return ERR2PTR(-EINVAL);
	platrs_vnet_rxq.alloc = conf->alloc_rxpkts;
	platrs_vnet_rxq.alloc_argp = conf->alloc_rxpkts_argp;
	return &platrs_vnet_rxq;
}

static struct uk_netdev_tx_queue *
platrs_vnet_txq_configure(struct uk_netdev *dev __unused, uint16_t queue_id,
			  uint16_t nb_desc __unused,
			  struct uk_netdev_txqueue_conf *conf __unused)
{
	if (queue_id != 0)
		return ERR2PTR(-EINVAL);
	platrs_vnet_txq.configured = 1;
	return &platrs_vnet_txq;
}

static int platrs_vnet_start(struct uk_netdev *dev __unused)
{
	return 0;
}

static const struct uk_hwaddr *platrs_vnet_hwaddr(struct uk_netdev *dev __unused)
{
	return &platrs_vnet_mac;
}

static uint16_t platrs_vnet_mtu_get(struct uk_netdev *dev __unused)
{
	return platrs_vnet_mtu;
}

static unsigned platrs_vnet_promisc(struct uk_netdev *dev __unused)
{
	return 1; /* the device filters nothing we asked for */
}

static const struct uk_netdev_ops platrs_vnet_ops = {
	.hwaddr_get = platrs_vnet_hwaddr,
	.mtu_get = platrs_vnet_mtu_get,
	.promiscuous_get = platrs_vnet_promisc,
	.info_get = platrs_vnet_info,
	.txq_info_get = platrs_vnet_queue_info,
	.rxq_info_get = platrs_vnet_queue_info,
	.configure = platrs_vnet_configure,
	.txq_configure = platrs_vnet_txq_configure,
	.rxq_configure = platrs_vnet_rxq_configure,
	.start = platrs_vnet_start,
};

static int platrs_vnet_init(struct uk_init_ctx *ictx __unused)
{
	struct ukplat_bootinfo *bi = ukplat_bootinfo_get();
	int rc;

	rc = platrs_vnet_probe(bi ? bi->dtb : 0, platrs_vnet_mac.addr_bytes,
			       &platrs_vnet_mtu);
	if (rc == -ENODEV) {
		uk_pr_info("virtio-net: no virtio-mmio network device\n");
		return 0;
	}
	if (rc < 0) {
		/* The Rust side printed why; the image runs on without a network. */
		uk_pr_err("virtio-net: device not started: %d\n", rc);
		return 0;
	}
	platrs_vnet.tx_one = platrs_vnet_tx_one;
	platrs_vnet.rx_one = platrs_vnet_rx_one;
	platrs_vnet.ops = &platrs_vnet_ops;
	rc = uk_netdev_drv_register(&platrs_vnet, uk_alloc_get_default(),
				    "platrs-virtio-net");
	if (rc < 0)
		uk_pr_err("virtio-net: registration failed: %d\n", rc);
	return 0;
}

/* With the bus drivers, before lwip brings interfaces up. */
uk_lib_initcall(platrs_vnet_init, 0x0);
