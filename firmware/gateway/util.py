# Small helpers shared by telemetry, discovery and the console (no firmware imports).


def unload(name):
    """Forget a lazily imported module so the collector can free it."""
    import sys

    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    p = sys.modules.get(pkg)
    if p is not None and attr in getattr(p, "__dict__", {}):
        delattr(p, attr)


def name_of(table, code):
    """Text for a code from a dict or a tuple indexed by code (safety.STATE_NAMES); else the code."""
    if isinstance(table, dict):
        return table.get(code, code)
    if table and 0 <= code < len(table):
        return table[code]
    return code


def rand16():
    """A random 16-bit int (jitter)."""
    try:
        import random

        return random.getrandbits(16)
    except ImportError:
        import os

        b = os.urandom(2)
        return (b[0] << 8) | b[1]


_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def check_id(name, s, extra=""):
    """HA ids and our topic levels: [A-Za-z0-9_-] (plus `extra`), not empty."""
    if not s:
        raise ValueError("%s: must not be empty" % name)
    for c in s:
        if c not in _ID_CHARS and c not in extra:
            raise ValueError("%s: %r not allowed (use letters, digits, _ and -)" % (name, c))
    return s


class Topics:
    def __init__(self, prefix, node_id, disc_prefix):
        check_id("telemetry.prefix", prefix, "/")
        check_id("telemetry.node_id", node_id)
        check_id("telemetry.discovery_prefix", disc_prefix)
        self.root = root = prefix + "/" + node_id
        self.status = root + "/status"
        self.state = root + "/state"
        self.cmd = root + "/cmd"
        self.reply = root + "/cmd/reply"
        self.disc = disc_prefix
        self.ha_status = disc_prefix + "/status"
