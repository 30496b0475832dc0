# Small helpers shared by telemetry and the console (no firmware imports).


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
