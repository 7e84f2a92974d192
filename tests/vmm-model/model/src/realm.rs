//! Realm mode: TF-RMM's behaviour toward a realm (RSI, RIPAS, aborts).

use crate::config::Config;
use crate::VCpu;
use crate::sys::log;
use core::sync::atomic::{AtomicU64, Ordering};

pub static RSI_CALLS: AtomicU64 = AtomicU64::new(0);
pub static PSCI_CALLS: AtomicU64 = AtomicU64::new(0);
pub static EMPTY_TOUCHES: AtomicU64 = AtomicU64::new(0);
pub static PROTECTED_MMIO: AtomicU64 = AtomicU64::new(0);
pub static HVC_CALLS: AtomicU64 = AtomicU64::new(0);

pub fn count_hvc() {
    HVC_CALLS.fetch_add(1, Ordering::Relaxed);
}
pub fn count_psci(_realm: bool) {
    PSCI_CALLS.fetch_add(1, Ordering::Relaxed);
}

pub fn print_counters() {
    log!(
        "counters: exits={} psci-calls={} rsi-calls={} empty-touches={} protected-mmio={} hvc-in-realm={} unhandled-mmio={}",
        crate::EXITS.load(Ordering::Relaxed),
        PSCI_CALLS.load(Ordering::Relaxed),
        RSI_CALLS.load(Ordering::Relaxed),
        EMPTY_TOUCHES.load(Ordering::Relaxed),
        PROTECTED_MMIO.load(Ordering::Relaxed),
        HVC_CALLS.load(Ordering::Relaxed),
        crate::devices::UNHANDLED_MMIO.load(Ordering::Relaxed),
    );
}

pub fn init(_c: &Config, _kern: u64, _kern_size: u64, _dtb: u64, _dtb_blob: &[u8]) {
    crate::fatal(format_args!("realm mode not implemented yet"))
}

pub fn rsi_call(_v: &mut VCpu) -> bool {
    false
}

pub fn data_abort_filter(_v: &mut VCpu, _esr: u64, _ipa: u64) -> bool {
    false
}

pub fn instruction_abort(_v: &mut VCpu, _esr: u64, _ipa: u64) -> bool {
    false
}
