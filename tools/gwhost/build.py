"""Compile the firmware with mpy-cross for the ESP32 and report sizes.

`tools/build` (make build) writes build/firmware/ (a deployable tree of .mpy
files, main.py kept as source as MicroPython runs it by name) and build/sizes.txt.
A production image freezes the firmware instead, from the checked-in
firmware/manifest.py (MANIFEST; the host's ESP32-like runtime is built from it too). It exits 1
when a file does not compile or a size budget is exceeded. Budgets are for
bytecode on flash; RAM use is measured on the unix port by the tests.
"""

import argparse
import os
import shutil
import subprocess
import sys

from gwhost import paths

# Bytes of .mpy per file and in all. For scale: mqtt_as ~11 KB, umodbus core ~15 KB.
FILE_BUDGET = 12 * 1024
TOTAL_BUDGET = 160 * 1024
ARCH = "xtensawin"
MANIFEST = os.path.join(paths.FIRMWARE, "manifest.py")


def firmware_files():
    out = []
    for d, _, files in os.walk(paths.FIRMWARE):
        out += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return sorted(p for p in out if p != MANIFEST)  # the manifest is build input, not firmware


def compile_all(dest, arch=ARCH):
    """[(relative path, source bytes, mpy bytes or None, error)]."""
    rows = []
    for src in firmware_files():
        rel = os.path.relpath(src, paths.FIRMWARE)
        out = os.path.join(dest, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        p = subprocess.run([paths.MPY_CROSS, "-march=" + arch, "-O2", "-s", rel, "-o", out,
                            src], capture_output=True, text=True, check=False)
        if p.returncode:
            rows.append((rel, os.path.getsize(src), None, p.stderr.strip()))
        else:
            rows.append((rel, os.path.getsize(src), os.path.getsize(out), ""))
    return rows


def report(rows):
    lines = ["%-40s %8s %8s" % ("file", "source", ".mpy")]
    total = 0
    problems = []
    for rel, src, mpy, err in rows:
        if mpy is None:
            problems.append("%s does not compile: %s" % (rel, err))
            lines.append("%-40s %8d %8s" % (rel, src, "ERROR"))
            continue
        total += mpy
        flag = "  OVER BUDGET" if mpy > FILE_BUDGET else ""
        if flag:
            problems.append("%s: %d bytes > %d per-file budget" % (rel, mpy, FILE_BUDGET))
        lines.append("%-40s %8d %8d%s" % (rel, src, mpy, flag))
    lines.append("%-40s %8s %8d  (budget %d, %d%% used)"
                 % ("total .mpy (" + ARCH + ")", "", total, TOTAL_BUDGET,
                    100 * total // TOTAL_BUDGET))
    if total > TOTAL_BUDGET:
        problems.append("total %d bytes > budget %d" % (total, TOTAL_BUDGET))
    return "\n".join(lines), total, problems


def write_tree(build):
    """build/firmware: .mpy modules plus main.py as source."""
    tree = os.path.join(build, "firmware")
    shutil.rmtree(tree, ignore_errors=True)
    rows = compile_all(tree)
    os.remove(os.path.join(tree, "main.mpy"))
    shutil.copy(os.path.join(paths.FIRMWARE, "main.py"), os.path.join(tree, "main.py"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description="compile the firmware with mpy-cross")
    ap.add_argument("--check", action="store_true",
                    help="compile into a scratch folder, print the size table, build nothing")
    ap.add_argument("--out", default=os.path.join(paths.ROOT, "build"))
    args = ap.parse_args(argv)
    if args.check:
        scratch = os.path.join(args.out, "check")
        shutil.rmtree(scratch, ignore_errors=True)
        rows = compile_all(scratch)
    else:
        rows = write_tree(args.out)
    table, _, problems = report(rows)
    print(table)
    if not args.check:
        with open(os.path.join(args.out, "sizes.txt"), "w") as f:
            f.write(table + "\n")
        print("deployable tree: %s" % os.path.relpath(os.path.join(args.out, "firmware")))
        print("frozen image: make -C $MPY_DIR/ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=%s"
              % os.path.relpath(MANIFEST))
    for p in problems:
        print("build: error: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
