"""The firmware as the unix port runs it: compiled to .mpy, as it is deployed.

Compiling .py source on the device (or the unix port) needs a lot of heap for the
parser; a board runs precompiled .mpy (make build / frozen). So the unix-port tests
and live runs use build/mpy-x64/: every firmware module compiled with mpy-cross for
the host's native emitter (viper/native functions need a -march), main.py kept as
source. Only changed files are recompiled.
"""

import os
import shutil
import subprocess
import threading

from gwhost import paths

ARCH = "x64"
OUT = os.path.join(paths.ROOT, "build", "mpy-" + ARCH)
_lock = threading.Lock()


class CompileError(Exception):
    pass


def compiled_firmware():
    """Bring build/mpy-x64 up to date with firmware/ and return its path."""
    with _lock:
        seen = set()
        for d, _, files in os.walk(paths.FIRMWARE):
            for f in files:
                if not f.endswith(".py"):
                    continue
                src = os.path.join(d, f)
                rel = os.path.relpath(src, paths.FIRMWARE)
                if rel == "manifest.py":  # build input for frozen images, not a module
                    continue
                if rel == "main.py":
                    dst = os.path.join(OUT, rel)
                else:
                    dst = os.path.join(OUT, rel[:-3] + ".mpy")
                seen.add(dst)
                if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
                    continue
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if rel == "main.py":
                    shutil.copy(src, dst)
                    continue
                p = subprocess.run([paths.MPY_CROSS, "-march=" + ARCH, "-s", rel, "-o", dst, src],
                                   capture_output=True, text=True, check=False)
                if p.returncode:
                    raise CompileError("%s: %s" % (rel, p.stderr.strip()))
        for d, _, files in os.walk(OUT):  # drop modules whose source is gone
            for f in files:
                p = os.path.join(d, f)
                if p not in seen:
                    os.remove(p)
    return OUT
