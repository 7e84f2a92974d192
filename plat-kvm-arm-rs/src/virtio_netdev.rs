//! A polled virtio-net queue for Unikraft's `uk_netdev` driver API
//! (`docs/realm-io.md`), on `virtio-drivers`' allocation-free `VirtIONetRaw` and
//! the bounce-pool [`PoolHal`] (every buffer the device sees is bounced in a
//! realm).
//!
//! The C glue (`uk-glue/netdev.c`) owns Unikraft's structures (`uk_netdev`,
//! `uk_netbuf`); this module moves Ethernet frames in and out of its own
//! buffers. Transmission is synchronous (one frame on the ring at a time, waited
//! for); reception keeps [`RX_BUFS`] buffers posted and hands frames out by
//! copy. Everything the device writes into the used rings is checked: a used id
//! that is not outstanding, or a length beyond its buffer, is [`NetError`]'s
//! `BadUsed`, after which the queue refuses everything (the device is given up).
//! The frame buffers live in a [`NetBufs`] the caller lends the queue (keep it
//! in a static: the device holds their addresses once [`NetQueue::start`] has
//! posted them), so that the queue itself is small and may move.

use crate::virtio::{PoolHal, release_reserved, reserve};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::Transport;

/// Descriptors per queue: 256, what kvmtool, QEMU and Firecracker offer. Not
/// fewer: kvmtool (3.18) ignores the queue size a driver writes and lays every
/// ring out for its own 256 entries (virtio/net.c `set_size_vq`: "FIXME:
/// dynamic"), so with a smaller queue the 17th frame is read past the driver's
/// ring. A device offering fewer than 256 is refused (`NetError::Io`).
pub const QUEUE: usize = 256;
/// Receive buffers kept posted.
pub const RX_BUFS: usize = 4;
/// Size of each receive buffer (at least `virtio-drivers`' 1526-byte minimum).
pub const RX_BUF: usize = 2048;
/// Largest Ethernet frame without the FCS (MTU 1500 + 14-byte header).
pub const MAX_FRAME: usize = 1514;
/// Room for the virtio-net header in front of a transmitted frame.
const TX_HDR: usize = 12;
/// Polls of the transmit used ring before [`NetError::Timeout`].
pub const TX_POLLS: u32 = 20_000_000;

/// Why a frame was refused or the queue failed; [`NetError::errno`] gives the
/// value the C side returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// A frame longer than [`MAX_FRAME`], empty, or a buffer too small for the
    /// frame received (the frame is dropped).
    Invalid,
    /// The bounce pool has no room for the buffer.
    NoMemory,
    /// The device did not complete a transmission in [`TX_POLLS`] polls.
    Timeout,
    /// The device wrote an impossible used-ring element: `id` not outstanding
    /// (`len` 0), or `len` (header included) beyond the `cap`-byte buffer. The
    /// queue is given up.
    BadUsed {
        /// The descriptor id the device reported.
        id: u16,
        /// The length it reported (0 if the id was already wrong).
        len: u64,
        /// The buffer's size.
        cap: u64,
    },
    /// The queue was given up earlier (after [`NetError::BadUsed`] or
    /// [`NetError::Timeout`]).
    GivenUp,
    /// The device refused an operation.
    Io,
}

impl NetError {
    /// The negative errno the C side returns.
    pub fn errno(self) -> i32 {
        match self {
            NetError::Invalid => -22,                            // EINVAL
            NetError::NoMemory => -12,                           // ENOMEM
            NetError::Timeout => -110,                           // ETIMEDOUT
            NetError::BadUsed { .. } | NetError::GivenUp => -71, // EPROTO
            NetError::Io => -5,                                  // EIO
        }
    }
}

/// The frame buffers of a [`NetQueue`] (10 KiB: keep them in a static, not on
/// a stack).
pub struct NetBufs {
    rx: [[u8; RX_BUF]; RX_BUFS],
    tx: [u8; TX_HDR + MAX_FRAME],
}

impl NetBufs {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        NetBufs {
            rx: [[0; RX_BUF]; RX_BUFS],
            tx: [0; TX_HDR + MAX_FRAME],
        }
    }
}

impl Default for NetBufs {
    fn default() -> Self {
        Self::new()
    }
}

/// A started virtio-net device with its receive buffers.
pub struct NetQueue<'b, T: Transport> {
    dev: VirtIONetRaw<PoolHal, T, QUEUE>,
    bufs: &'b mut NetBufs,
    /// The token (head descriptor) each receive buffer is posted under.
    rx_token: [Option<u16>; RX_BUFS],
    mac: [u8; 6],
    broken: bool,
    /// Frames sent and received, and frames dropped (too large for the caller).
    pub counts: NetCounts,
}

/// Frame counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounts {
    /// Frames the device completed transmitting.
    pub sent: u64,
    /// Frames handed to the caller.
    pub received: u64,
    /// Frames dropped because the caller's buffer was too small.
    pub dropped: u64,
}

impl<'b, T: Transport> NetQueue<'b, T> {
    /// Starts the device behind `transport` (rings from the bounce pool), with
    /// `bufs` for its frames. Call [`NetQueue::start`] to post the receive
    /// buffers.
    ///
    /// # Errors
    ///
    /// [`NetError::NoMemory`] when the pool cannot hold the rings, [`NetError::Io`]
    /// when the device refuses to start.
    pub fn new(transport: T, bufs: &'b mut NetBufs) -> Result<Self, NetError> {
        let mut dev = VirtIONetRaw::<PoolHal, _, QUEUE>::new(transport).map_err(|e| match e {
            virtio_drivers::Error::DmaError => NetError::NoMemory,
            _ => NetError::Io,
        })?;
        // We poll the used rings: no used-buffer notifications (NO_INTERRUPT;
        // EVENT_IDX, which would override it, is never negotiated).
        dev.disable_interrupts();
        let mac = dev.mac_address();
        Ok(NetQueue {
            dev,
            bufs,
            rx_token: [None; RX_BUFS],
            mac,
            broken: false,
            counts: NetCounts::default(),
        })
    }

    /// The device's MAC address (from its config space).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Posts every receive buffer not posted yet.
    ///
    /// # Errors
    ///
    /// [`NetError::NoMemory`] when the pool has no room for a buffer (those posted
    /// stay posted), [`NetError::GivenUp`] after the device was given up.
    pub fn start(&mut self) -> Result<(), NetError> {
        for i in 0..RX_BUFS {
            self.post(i)?;
        }
        Ok(())
    }

    fn post(&mut self, i: usize) -> Result<(), NetError> {
        if self.broken {
            return Err(NetError::GivenUp);
        }
        if self.rx_token[i].is_some() {
            return Ok(());
        }
        // A bounce slot first, so that a full pool is an error, not a panic.
        reserve(&[RX_BUF]).map_err(|_| NetError::NoMemory)?;
        // SAFETY: `rx[i]` is lent to the queue for its lifetime and not touched
        // until `receive_complete` for this token, or until the device is reset
        // when the queue is dropped.
        let t = unsafe { self.dev.receive_begin(&mut self.bufs.rx[i]) };
        release_reserved();
        self.rx_token[i] = Some(t.map_err(|_| NetError::Io)?);
        Ok(())
    }

    /// Sends `frame` (an Ethernet frame without FCS) and waits until the device
    /// has consumed it.
    ///
    /// # Errors
    ///
    /// [`NetError::Invalid`] for an empty or oversized frame, [`NetError::NoMemory`],
    /// [`NetError::Timeout`], [`NetError::BadUsed`] or [`NetError::GivenUp`]
    /// (device given up), [`NetError::Io`].
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if self.broken {
            return Err(NetError::GivenUp);
        }
        if frame.is_empty() || frame.len() > MAX_FRAME {
            return Err(NetError::Invalid);
        }
        let h = self
            .dev
            .fill_buffer_header(&mut self.bufs.tx)
            .map_err(|_| NetError::Io)?;
        let len = h + frame.len();
        let tx = &mut self.bufs.tx;
        if len > tx.len() {
            return Err(NetError::Invalid);
        }
        tx[h..len].copy_from_slice(frame);
        reserve(&[len]).map_err(|_| NetError::NoMemory)?;
        // SAFETY: `tx` is not touched until `transmit_complete`; on a timeout the
        // queue is given up and the device reset on drop before `tx` goes away.
        let t = unsafe { self.dev.transmit_begin(&self.bufs.tx[..len]) };
        release_reserved();
        let t = t.map_err(|_| NetError::Io)?;
        for _ in 0..TX_POLLS {
            if let Some(u) = self.dev.poll_transmit() {
                if u != t {
                    self.broken = true;
                    return Err(NetError::BadUsed {
                        id: u,
                        len: 0,
                        cap: len as u64,
                    });
                }
                // SAFETY: the same buffer as `transmit_begin`'s.
                unsafe { self.dev.transmit_complete(t, &self.bufs.tx[..len]) }
                    .map_err(|_| NetError::Io)?;
                self.counts.sent += 1;
                return Ok(());
            }
            core::hint::spin_loop();
        }
        // The buffer stays on the ring: never reuse it.
        self.broken = true;
        Err(NetError::Timeout)
    }

    /// Copies the next received frame into `out` and re-posts its buffer.
    /// Returns its length, or `None` when no frame is waiting.
    ///
    /// # Errors
    ///
    /// [`NetError::Invalid`] when `out` is smaller than the frame (it is dropped),
    /// [`NetError::BadUsed`] or [`NetError::GivenUp`] (device given up),
    /// [`NetError::NoMemory`] when the buffer cannot be re-posted, [`NetError::Io`].
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Option<usize>, NetError> {
        if self.broken {
            return Err(NetError::GivenUp);
        }
        let Some(u) = self.dev.poll_receive() else {
            return Ok(None);
        };
        let Some(i) = self.rx_token.iter().position(|t| *t == Some(u)) else {
            self.broken = true;
            return Err(NetError::BadUsed {
                id: u,
                len: 0,
                cap: RX_BUF as u64,
            });
        };
        self.rx_token[i] = None;
        // SAFETY: the buffer posted under token `u`. The Hal copies back at most
        // `RX_BUF` bytes whatever length the device claims.
        let r = unsafe { self.dev.receive_complete(u, &mut self.bufs.rx[i]) };
        let (hdr, len) = match r {
            Ok(v) => v,
            Err(_) => {
                self.broken = true;
                return Err(NetError::Io);
            }
        };
        // The crate does not bound the device's length by the buffer.
        if hdr.checked_add(len).is_none_or(|e| e > RX_BUF) {
            self.broken = true;
            return Err(NetError::BadUsed {
                id: u,
                len: (hdr as u64).saturating_add(len as u64),
                cap: RX_BUF as u64,
            });
        }
        let res = if len > out.len() {
            self.counts.dropped += 1;
            Err(NetError::Invalid)
        } else {
            out[..len].copy_from_slice(&self.bufs.rx[i][hdr..hdr + len]);
            self.counts.received += 1;
            Ok(Some(len))
        };
        self.post(i)?;
        res
    }
}
