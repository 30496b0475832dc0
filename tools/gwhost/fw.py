"""Import the firmware's pure core modules (gateway.*) from host tools on CPython.

`fw.load("gateway.control")` returns the module: `firmware/` goes on sys.path first and, when no `micropython` module exists (CPython), a minimal
stand-in is registered: const() is the identity, heap_lock()/heap_unlock() do nothing
(allocation is proven on the unix port). The same stand-in as host_tests/cpython.
"""

import importlib
import os
import sys
import types

from gwhost import paths


def _stand_in():
    m = types.ModuleType("micropython")
    m.const = lambda x: x
    m.native = m.viper = lambda f: f
    m.heap_lock = m.heap_unlock = lambda: 0
    m.alloc_emergency_exception_buf = lambda n: None
    return m


if paths.FIRMWARE not in sys.path:
    sys.path.insert(0, paths.FIRMWARE)
try:
    import micropython  # noqa: F401
except ImportError:
    sys.modules["micropython"] = _stand_in()
assert os.path.isdir(paths.FIRMWARE)


def load(name):
    """A firmware module, imported after the path is set (import order cannot break it)."""
    return importlib.import_module(name)


def load_tool(name):
    """A module of tools/mpycore (code shared with the unix-port side of a benchmark);
    it may import the firmware, which load() has put on the path."""
    d = os.path.join(paths.ROOT, "tools", "mpycore")
    if d not in sys.path:
        sys.path.append(d)
    return importlib.import_module(name)
