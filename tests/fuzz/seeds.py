#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets into OUT/<target>/.

bootinfo: 8-byte little-endian DTB address + a captured fixture DTB, at several
plausible addresses per fixture (RAM end - 2 MiB, mid-RAM, RAM start + 64 MiB,
read from the fixture's /memory reg, plus a few fixed ones).
bootmap: 4 parameter bytes + the same (see fuzz/fuzz_targets/bootmap.rs).
dtb_structured, rsi: a few deterministic byte patterns (their input is decoded
with `arbitrary`, so any bytes are a valid input).

Usage: seeds.py FIXTURES_DIR OUT_DIR
"""
import hashlib
import pathlib
import struct
import sys

FIXED = [0x83E00000, 0x44000000, 0x8FE00000, 0x9FE00000]
MIB = 1 << 20


def memory_banks(blob):
    """(start, size) of every /memory reg entry, from the structure block."""
    if len(blob) < 40 or struct.unpack_from(">I", blob, 0)[0] != 0xD00DFEED:
        return []
    off_struct, off_strings = struct.unpack_from(">II", blob, 8)
    cells = {"#address-cells": 2, "#size-cells": 1}
    pos, depth, is_mem, regs, banks = off_struct, 0, False, None, []
    while pos + 4 <= len(blob):
        (tok,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if tok == 1:  # BEGIN_NODE
            end = blob.index(b"\0", pos)
            depth += 1
            if depth == 2:
                is_mem, regs = False, None
            pos = (end + 4) & ~3
        elif tok == 2:  # END_NODE
            if depth == 2 and is_mem and regs is not None:
                a, s = cells["#address-cells"], cells["#size-cells"]
                step = 4 * (a + s)
                for i in range(0, len(regs) - step + 1, step):
                    num = lambda b: int.from_bytes(b, "big")
                    banks.append((num(regs[i:i + 4 * a]), num(regs[i + 4 * a:i + step])))
            depth -= 1
        elif tok == 3:  # PROP
            ln, nameoff = struct.unpack_from(">II", blob, pos)
            pos += 8
            val = blob[pos:pos + ln]
            pos = (pos + ln + 3) & ~3
            name_end = blob.index(b"\0", off_strings + nameoff)
            name = blob[off_strings + nameoff:name_end].decode()
            if depth == 1 and name in cells:
                cells[name] = int.from_bytes(val, "big")
            elif depth == 2 and name == "device_type" and val == b"memory\0":
                is_mem = True
            elif depth == 2 and name == "reg":
                regs = val
        elif tok == 4:  # NOP
            continue
        else:  # END or garbage
            break
    return banks


def addresses(blob):
    out = []
    for start, size in memory_banks(blob)[:1]:
        end = start + size
        out += [end - 2 * MIB, (start + size // 2) & ~(2 * MIB - 1)]
        if start + 64 * MIB < end:
            out.append(start + 64 * MIB)
    out += FIXED
    return sorted(set(a for a in out if a >= 0))


def write(d, data):
    d.mkdir(parents=True, exist_ok=True)
    # libFuzzer names corpus files by content hash too: no duplicates on rerun.
    (d / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)


def main():
    fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    dtbs = sorted(fixtures.glob("dtb/**/*.dtb"))
    if not dtbs:
        sys.exit(f"no *.dtb under {fixtures}/dtb")
    n = 0
    for p in dtbs:
        blob = p.read_bytes()
        for a in addresses(blob):
            head = struct.pack("<Q", a)
            write(out / "bootinfo", head + blob)
            n += 1
        # bootmap: PARange 48 bits, 64 tables; no alias + every extra map; the
        # shared bit 1 << 32 with W^X; PARange 40 bits with W^X.
        for params in (b"\x05\x40\x00\x07", b"\x05\x40\x02\x01", b"\x02\x40\x00\x01"):
            for a in addresses(blob)[:2]:
                write(out / "bootmap", params + struct.pack("<Q", a) + blob)
    patterns = [bytes(64), bytes(range(256)), b"\x01" * 128, b"\xff" * 64,
                bytes((i * 37) & 0xFF for i in range(512))]
    for pat in patterns:
        write(out / "dtb_structured", pat)
        write(out / "rsi", pat)
        write(out / "bootmap", b"\x85\x40\x00\x07" + pat)
    print(f"seeds: {len(dtbs)} fixtures, {n} bootinfo seeds -> {out}")


if __name__ == "__main__":
    main()
