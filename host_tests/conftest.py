"""pytest on CPython: make the firmware and the host tools importable.

The dual-runtime tests in host_tests/mpy/ import `gateway.*` exactly as they do
on the MicroPython unix port (where MICROPYPATH has firmware/). CPython has no
`micropython` or `const`, so a small stand-in module from host_tests/cpython/ is
put on the path (never on the MicroPython path).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (os.path.join(HERE, "cpython"), os.path.join(ROOT, "firmware"),
          os.path.join(ROOT, "tools"), os.path.join(HERE, "mpy")):
    if p not in sys.path:
        sys.path.insert(0, p)


def _micropython_runtime_shims():
    """Give CPython the few MicroPython runtime functions the firmware calls.

    Test-side only: the firmware is written for MicroPython; these let the same
    modules run under pytest. Ticks use a 30-bit period like the ESP32.
    """
    import asyncio
    import time
    import traceback

    if not hasattr(time, "ticks_ms"):
        time.ticks_ms = lambda: int(time.monotonic() * 1000) & 0x3FFFFFFF
        time.ticks_us = lambda: int(time.monotonic() * 1000000) & 0x3FFFFFFF
        time.ticks_diff = lambda a, b: ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000
        time.ticks_add = lambda a, b: (a + b) & 0x3FFFFFFF
        time.sleep_ms = lambda ms: time.sleep(ms / 1000)
    if not hasattr(asyncio, "sleep_ms"):
        asyncio.sleep_ms = lambda ms: asyncio.sleep(ms / 1000)
    import gc

    if not hasattr(gc, "mem_alloc"):
        gc.mem_alloc = lambda: 0
        gc.mem_free = lambda: 0
    if not hasattr(sys, "print_exception"):
        sys.print_exception = lambda e, f=None: traceback.print_exception(e, file=f)


_micropython_runtime_shims()
