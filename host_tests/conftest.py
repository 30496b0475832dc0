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
