//! Shared helpers for the host integration tests in `tests/tests/`.

use std::path::PathBuf;

/// Where the captured fixtures live (`../shared/fixtures` next to the checkout, or `$PLAT_FIXTURES`).
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PLAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    dir.is_dir().then_some(dir)
}
