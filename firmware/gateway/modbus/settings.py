# Fill a settings dict from a module's SCHEMA = {key: (default, lo, hi)} and check it.
#
# Ints: lo/hi are bounds. Choices: (default, (a, b, ...), None). Bools and strings:
# (default, None, None). Unknown keys are errors (a typo must not silently use a default).
# Runs once at start-up; allocation is fine here.
from gateway.schema import default as _default


class ConfigError(ValueError):
    """A bad setting; the message names section.key."""


def settings(schema, cfg, section):
    out = {}
    cfg = cfg or {}
    for key in cfg:
        if key not in schema:
            raise ConfigError(f"{section}.{key}: unknown setting")
    for key, spec in schema.items():
        default, lo, hi = spec
        v = cfg[key] if key in cfg else _default(spec)  # a small int, even when frozen
        if isinstance(lo, tuple):
            if v not in lo:
                raise ConfigError(f"{section}.{key}: {v!r} is not one of {lo!r}")
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{section}.{key}: must be true or false")
        elif isinstance(default, int):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"{section}.{key}: must be an integer")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ConfigError(f"{section}.{key}: {v} outside {lo}..{hi}")
        elif isinstance(default, str) and not isinstance(v, str):
            raise ConfigError(f"{section}.{key}: must be a string")
        out[key] = v
    return out
