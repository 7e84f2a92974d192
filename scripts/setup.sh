#!/usr/bin/env bash
# Installs what a fresh Debian 12 (bookworm) machine lacks to build, test and boot
# this project: QEMU >= 9 (from bookworm-backports), the aarch64 cross binutils/gcc
# for the conformance harness, dtc, and the pinned Rust toolchain with its targets.
# Idempotent. Registry hosts are never named here: the backports source is derived
# from the machine's own Debian source list.
#
#   scripts/setup.sh              make run / make test / make bench
#   scripts/setup.sh --unikraft   also a Unikraft build with this platform (UK_ROOT=):
#                                 flex, bison, libclang (bindgen layout check), ncurses
#                                 (menuconfig)
#   scripts/setup.sh --rmm        also building TF-A + TF-RMM for make run VMM=rmm-qemu:
#                                 cmake, the aarch64 C++ cross compiler, pyelftools for
#                                 the system Python, OpenSSL headers (TF-A's host tools)
set -euo pipefail

want_uk=""; want_rmm=""
for a in "$@"; do
    case $a in
        --unikraft) want_uk=1 ;;
        --rmm) want_rmm=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option $a (try --help)" >&2; exit 2 ;;
    esac
done

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

qemu_ok() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || return 1
    local v
    v=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)
    [ "${v:-0}" -ge 9 ]
}

add_backports() {
    # Reuse the URI of the stanza that serves plain "bookworm".
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i=="bookworm"){print u; exit}}' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
        echo "setup: cannot find the bookworm apt source to derive bookworm-backports from" >&2
        return 1
    fi
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$uri" | $SUDO tee /etc/apt/sources.list.d/plat-kvm-arm-rs-backports.sources >/dev/null
    fi
}

# libssl-dev and pkg-config: tools/verify-realm (ccatoken's COSE layer uses OpenSSL).
pkgs=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu device-tree-compiler python3 make gcc bc
      libssl-dev pkg-config)
if [ -n "$want_uk" ]; then pkgs+=(flex bison libclang-dev libncurses-dev); fi
if [ -n "$want_rmm" ]; then
    pkgs+=(cmake g++-aarch64-linux-gnu python3-pyelftools libssl-dev git)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ! qemu_ok || [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! qemu_ok; then add_backports; fi
    $SUDO apt-get update -qq
    if [ ${#missing[@]} -gt 0 ]; then
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! qemu_ok; then
        $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports \
            qemu-system-arm >/dev/null
    fi
fi
qemu-system-aarch64 --version | head -n1

# The pinned toolchain (rust-toolchain.toml) with its components and targets.
cd "$(dirname "$0")/.."
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target add aarch64-unknown-none-softfloat aarch64-unknown-none >/dev/null
rustup component add clippy rustfmt >/dev/null
cargo --version
# The fuzz targets (make fuzz-smoke, part of make test) build with nightly;
# tests/fuzz/run installs cargo-fuzz itself.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal >/dev/null ||
        echo "setup: cannot install the nightly toolchain (needed by make fuzz-smoke)" >&2
fi
rustup run nightly rustc --version 2>/dev/null || true
