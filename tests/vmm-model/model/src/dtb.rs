//! The device tree the guest gets: a small FDT writer, and the node layout
//! kvmtool 3.18.0 generates on arm64 (facts from its arm/fdt.c and device
//! files; verified against the dumps in shared/fixtures/dtb/kvmtool).

use crate::config::Config;
use crate::layout;

pub const FDT_MAX_SIZE: usize = 0x1_0000;

pub struct FdtWriter<'a> {
    buf: &'a mut [u8],
    st: [u8; 1024],
    st_len: usize,
    len: usize, // bytes of structure block written (starting at 40)
    ok: bool,
}

const HDR: usize = 40;
const RSV: usize = 16; // one empty memory-reservation entry

impl<'a> FdtWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        FdtWriter {
            buf,
            st: [0; 1024],
            st_len: 0,
            len: HDR + RSV,
            ok: true,
        }
    }
    fn put(&mut self, b: &[u8]) {
        if self.len + b.len() > self.buf.len() {
            self.ok = false;
            return;
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn pad(&mut self) {
        while !self.len.is_multiple_of(4) {
            self.put(&[0]);
        }
    }
    fn string_off(&mut self, name: &str) -> u32 {
        let nb = name.as_bytes();
        let mut i = 0;
        while i < self.st_len {
            let end = i + self.st[i..self.st_len]
                .iter()
                .position(|&c| c == 0)
                .unwrap_or(0);
            if &self.st[i..end] == nb {
                return i as u32;
            }
            i = end + 1;
        }
        let off = self.st_len;
        if off + nb.len() + 1 > self.st.len() {
            self.ok = false;
            return 0;
        }
        self.st[off..off + nb.len()].copy_from_slice(nb);
        self.st[off + nb.len()] = 0;
        self.st_len += nb.len() + 1;
        off as u32
    }
    pub fn begin(&mut self, name: &str) {
        self.u32(1);
        self.put(name.as_bytes());
        self.put(&[0]);
        self.pad();
    }
    pub fn end(&mut self) {
        self.u32(2);
    }
    pub fn prop(&mut self, name: &str, val: &[u8]) {
        let off = self.string_off(name);
        self.u32(3);
        self.u32(val.len() as u32);
        self.u32(off);
        self.put(val);
        self.pad();
    }
    pub fn prop_empty(&mut self, name: &str) {
        self.prop(name, &[]);
    }
    pub fn prop_str(&mut self, name: &str, s: &str) {
        let off = self.string_off(name);
        self.u32(3);
        self.u32(s.len() as u32 + 1);
        self.u32(off);
        self.put(s.as_bytes());
        self.put(&[0]);
        self.pad();
    }
    pub fn prop_cells(&mut self, name: &str, cells: &[u32]) {
        let off = self.string_off(name);
        self.u32(3);
        self.u32(cells.len() as u32 * 4);
        self.u32(off);
        for &c in cells {
            self.u32(c);
        }
    }
    /// Finishes the blob; returns its total size, or None if it did not fit.
    pub fn finish(mut self) -> Option<usize> {
        self.u32(9);
        let struct_size = self.len - HDR - RSV;
        let strings_off = self.len;
        let st_len = self.st_len;
        let st = self.st;
        self.put(&st[..st_len]);
        if !self.ok {
            return None;
        }
        let total = self.len;
        let h = [
            0xd00d_feedu32,
            total as u32,
            (HDR + RSV) as u32,
            strings_off as u32,
            HDR as u32,
            17,
            16,
            0,
            st_len as u32,
            struct_size as u32,
        ];
        for (i, v) in h.iter().enumerate() {
            self.buf[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        self.buf[HDR..HDR + RSV].fill(0);
        Some(total)
    }
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}
fn lo(v: u64) -> u32 {
    v as u32
}

struct Name<const N: usize> {
    b: [u8; N],
    n: usize,
}
impl<const N: usize> core::fmt::Write for Name<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let sb = s.as_bytes();
        if self.n + sb.len() > N {
            return Err(core::fmt::Error);
        }
        self.b[self.n..self.n + sb.len()].copy_from_slice(sb);
        self.n += sb.len();
        Ok(())
    }
}
impl<const N: usize> Name<N> {
    fn s(&self) -> &str {
        core::str::from_utf8(&self.b[..self.n]).unwrap_or("")
    }
}
fn fmt_name(args: core::fmt::Arguments) -> Name<64> {
    let mut n = Name { b: [0; 64], n: 0 };
    let _ = core::fmt::write(&mut n, args);
    n
}

/// Builds kvmtool's tree for `cfg` into `buf`; returns the packed size.
pub fn build(cfg: &Config, buf: &mut [u8]) -> Option<usize> {
    let mut w = FdtWriter::new(buf);
    let ncpu = cfg.cpus as u64;
    w.begin("");
    w.prop_cells("interrupt-parent", &[1]);
    w.prop_str("compatible", "linux,dummy-virt");
    w.prop_cells("#address-cells", &[2]);
    w.prop_cells("#size-cells", &[2]);

    let fc = cfg.profile != crate::config::Profile::Kvmtool;
    let (uart_base, uart_count) = cfg.uarts();
    w.begin("chosen");
    if fc {
        // Firecracker appends earlycon= for the UART it created (with console=).
        let mut args = Name::<2200> { b: [0; 2200], n: 0 };
        let _ = core::fmt::Write::write_str(&mut args, cfg.cmdline().unwrap_or(""));
        if uart_count > 0 {
            let _ = core::fmt::write(
                &mut args,
                format_args!(" earlycon=uart,mmio,{:#x}", uart_base),
            );
        }
        w.prop_str("bootargs", args.s().trim_start());
    } else if let Some(c) = cfg.cmdline() {
        w.prop_str("bootargs", c);
    }
    w.prop_cells("kaslr-seed", &[0, 0]);
    let no_stdout = fc || cfg.misbehave == crate::config::Misbehave::NoStdoutPath;
    if !no_stdout {
        w.prop_str("stdout-path", "serial0");
    }
    w.end();

    let ram_base = cfg.ram_dt_base();
    let ram_size = cfg.mem_bytes() - (ram_base - layout::RAM_IPA);
    let mem_end = if cfg.misbehave == crate::config::Misbehave::DtbMemBeyondIpa {
        // Claim twice the real RAM: beyond what is mapped (and, for >= 2 GiB
        // in realm mode, beyond the protected IPA space).
        ram_size * 2
    } else {
        ram_size
    };
    w.begin("memory");
    w.prop_str("device_type", "memory");
    w.prop_cells(
        "reg",
        &[hi(ram_base), lo(ram_base), hi(mem_end), lo(mem_end)],
    );
    w.end();

    w.begin("cpus");
    w.prop_cells("#address-cells", &[1]);
    w.prop_cells("#size-cells", &[0]);
    for i in 0..cfg.cpus {
        let n = fmt_name(format_args!("cpu@{:x}", i));
        w.begin(n.s());
        w.prop_str("device_type", "cpu");
        w.prop_str("compatible", "arm,arm-v8");
        if cfg.cpus > 1 {
            w.prop_str("enable-method", "psci");
        }
        w.prop_cells("reg", &[i as u32]);
        w.end();
    }
    w.end();

    let redist = layout::GICD_IPA - ncpu * layout::GICR_STRIDE;
    let its = redist - layout::GITS_SIZE;
    w.begin("intc");
    w.prop_str("compatible", "arm,gic-v3");
    w.prop_cells("#interrupt-cells", &[3]);
    w.prop_empty("interrupt-controller");
    w.prop_cells(
        "reg",
        &[
            0,
            lo(layout::GICD_IPA),
            0,
            lo(layout::GICD_SIZE),
            0,
            lo(redist),
            0,
            lo(ncpu * layout::GICR_STRIDE),
        ],
    );
    w.prop_cells("phandle", &[1]);
    w.prop_cells("#address-cells", &[2]);
    w.prop_cells("#size-cells", &[2]);
    w.prop_empty("ranges");
    w.begin("msic");
    w.prop_str("compatible", "arm,gic-v3-its");
    w.prop_empty("msi-controller");
    w.prop_cells("phandle", &[2]);
    w.prop_cells("reg", &[0, lo(its), 0, lo(layout::GITS_SIZE)]);
    w.end();
    w.end();

    w.begin("timer");
    w.prop("compatible", b"arm,armv8-timer\0arm,armv7-timer\0");
    // PPIs 13, 14, 11, 10 level-low (flags 8), as kvmtool's arm/timer.c.
    w.prop_cells("interrupts", &[1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]);
    w.prop_empty("always-on");
    w.end();

    for i in 0..uart_count {
        let addr = uart_base + i * 0x1000;
        let n = if fc {
            fmt_name(format_args!("uart@{:x}", addr))
        } else {
            fmt_name(format_args!("U6_16550A@{:x}", addr))
        };
        w.begin(n.s());
        w.prop_str("compatible", "ns16550a");
        w.prop_cells("reg", &[0, lo(addr), 0, if fc { 0x1000 } else { 8 }]);
        w.prop_cells("interrupts", &[0, i as u32, 4]);
        w.prop_cells("clock-frequency", &[1_843_200]);
        w.end();
    }

    if fc {
        // Firecracker: no kvmtool RTC, no PCI host.
        w.begin("psci");
        w.prop_str("compatible", "arm,psci-0.2");
        w.prop_str("method", "hvc");
        w.end();
        w.end();
        return w.finish();
    }

    w.begin("rtc");
    w.prop_str("compatible", "motorola,mc146818");
    w.prop_cells("reg", &[0, lo(layout::RTC_IPA), 0, 2]);
    w.end();

    if cfg.virtio_blk_kib != 0 && cfg.virtio_pci.is_none() {
        // As kvmtool's virtio/mmio.c writes a virtio-mmio node (edge-rising SPI).
        let a = crate::virtio::MMIO_IPA;
        let n = fmt_name(format_args!("virtio@{:x}", a));
        w.begin(n.s());
        w.prop_str("compatible", "virtio,mmio");
        w.prop_cells("reg", &[0, lo(a), 0, lo(crate::virtio::MMIO_SIZE)]);
        w.prop_empty("dma-coherent");
        w.prop_cells("interrupts", &[0, crate::virtio::SPI, 1]);
        w.end();
    }
    if cfg.virtio_net.is_some() && cfg.virtio_pci.is_none() {
        // kvmtool gives each virtio-mmio device the next window and SPI.
        let a = crate::virtio_net::mmio_ipa();
        let n = fmt_name(format_args!("virtio@{:x}", a));
        w.begin(n.s());
        w.prop_str("compatible", "virtio,mmio");
        w.prop_cells("reg", &[0, lo(a), 0, lo(crate::virtio_net::MMIO_SIZE)]);
        w.prop_empty("dma-coherent");
        w.prop_cells("interrupts", &[0, crate::virtio_net::spi(), 1]);
        w.end();
    }

    w.begin("pci");
    w.prop_str("device_type", "pci");
    w.prop_cells("#address-cells", &[3]);
    w.prop_cells("#size-cells", &[2]);
    w.prop_cells("#interrupt-cells", &[1]);
    w.prop_str("compatible", "pci-host-ecam-generic");
    w.prop_empty("dma-coherent");
    w.prop_cells("bus-range", &[0, 0]);
    w.prop_cells("reg", &[0, lo(layout::ECAM_IPA), 0, 0x1000_0000]);
    w.prop_cells(
        "ranges",
        &[
            0x0100_0000,
            0,
            0,
            0,
            0,
            0,
            0x1_0000, // I/O
            0x0200_0000,
            0,
            0x5000_0000,
            0,
            0x5000_0000,
            0,
            0x3000_0000, // MEM32
        ],
    );
    w.prop_cells("msi-parent", &[2]);
    // No PCI devices (as `lkvm run -n mode=none`): an empty interrupt-map.
    w.prop_empty("interrupt-map");
    w.end();

    w.begin("psci");
    w.prop("compatible", b"arm,psci-0.2\0arm,psci\0");
    w.prop_str("method", if cfg.realm { "smc" } else { "hvc" });
    w.prop_cells("cpu_suspend", &[0xc400_0001]);
    w.prop_cells("cpu_off", &[0x8400_0002]);
    w.prop_cells("cpu_on", &[0xc400_0003]);
    w.prop_cells("migrate", &[0xc400_0005]);
    w.end();

    if !no_stdout {
        w.begin("aliases");
        w.prop_str("serial0", "/U6_16550A@1000000");
        w.end();
    }

    w.end();
    w.finish()
}
