//! Appraisal of Arm CCA realm attestation tokens for plat-kvm-arm-rs images, on
//! Veraison's `ccatoken` crate: the platform and realm signatures, their binding,
//! the challenge, the RIM (computed offline by `tools/rim-measure`), the
//! personalisation value and, where given, the REMs. See `docs/attestation.md`.

pub mod token;
pub mod verify;
