# Settings validation, pure: each firmware module declares
# SCHEMA = {key: (default, lo, hi)} (docs/conventions.md): ints with bounds,
# bools and strings as (default, None, None), choices as (default, ("a", "b"), None).
# Errors name "section.key". Used by the config store (gateway/config.py), the
# MQTT command handler and the console; it imports no firmware module.
import math

from micropython import const

MAX_STR = const(128)  # longest string value accepted anywhere
_SECRET_SUFFIXES = ("password", "token", "psk")


class ConfigError(ValueError):
    """A value or file rejected by validation; the message names the key."""


def is_secret(key):
    for s in _SECRET_SUFFIXES:
        if key.endswith(s):
            return True
    return False


def _show(v):
    if isinstance(v, str):
        return repr(v) if len(v) <= 24 else repr(v[:24]) + "..."
    if isinstance(v, (dict, list)):
        return "a " + ("list" if isinstance(v, list) else "object")
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def check(name, value, spec):
    """Return `value` if it satisfies spec (default, lo, hi), else raise ConfigError.

    Integral floats (50.0, as JSON tools like to send) are accepted for int keys
    and returned as int; bool is never an int here (MicroPython and CPython
    disagree on isinstance(True, int), so types are compared exactly).
    """
    default, lo, hi = spec
    if isinstance(lo, tuple):
        if not isinstance(value, str) or value not in lo:
            raise ConfigError("%s: %s is not one of %s" % (name, _show(value), ", ".join(lo)))
        return value
    t = type(default)
    if t is bool:
        if type(value) is not bool:
            raise ConfigError("%s: expected true or false, got %s" % (name, _show(value)))
        return value
    if t is int:
        if type(value) is float and math.isfinite(value):
            if value != int(value):
                raise ConfigError("%s: expected a whole number, got %s" % (name, _show(value)))
            value = int(value)
        if type(value) is not int:
            raise ConfigError("%s: expected an integer, got %s" % (name, _show(value)))
        if lo is not None and value < lo:
            raise ConfigError("%s: %d is below the minimum %d" % (name, value, lo))
        if hi is not None and value > hi:
            raise ConfigError("%s: %d is above the maximum %d" % (name, value, hi))
        return value
    if t is str:
        if not isinstance(value, str):
            raise ConfigError("%s: expected a string, got %s" % (name, _show(value)))
        if len(value) > MAX_STR:
            raise ConfigError("%s: longer than %d characters" % (name, MAX_STR))
        for c in value:
            if ord(c) < 32:
                raise ConfigError("%s: control character in string" % name)
        return value
    raise ConfigError("%s: unsupported schema type %s" % (name, t.__name__))


def parse_text(name, text, spec):
    """Convert what a person typed (console) to the schema's type, then check it."""
    default, lo, _ = spec
    t = type(default)
    if isinstance(lo, tuple) or t is str:
        return check(name, text, spec)
    if t is bool:
        s = text.lower()
        if s in ("1", "true", "on", "yes"):
            return True
        if s in ("0", "false", "off", "no"):
            return False
        raise ConfigError("%s: expected true or false, got %s" % (name, _show(text)))
    try:
        v = int(text)
    except ValueError:
        raise ConfigError("%s: expected an integer, got %s" % (name, _show(text)))
    return check(name, v, spec)


def default(spec):
    """The default of a spec as a value the hot paths can compute with for free.

    Rule for every place a default is materialised: take it through here. Frozen into
    an image (as production runs), an int outside +-8191 in a constant tuple, such as a
    spec, is a long object; arithmetic on it then allocates on every use (a safety tick,
    a control step). `+ 0` gives back the small int (to +-2**30 on an ESP32).
    """
    v = spec[0]
    return v + 0 if type(v) is int else v


def defaults(schemas):
    return {sec: {k: default(spec) for k, spec in sch.items()} for sec, sch in schemas.items()}


def merge(schemas, obj, warnings, secrets=False):
    """Validate a parsed file against the schemas: {section: {key: value}} of what it sets.

    All-or-nothing: the first bad value raises ConfigError. Unknown sections and
    keys (an older or newer firmware's file) are skipped with a warning; secret
    keys are taken only from the secrets file, other keys only from the config file.
    """
    if not isinstance(obj, dict):
        raise ConfigError("top level: expected an object, got %s" % _show(obj))
    out = {}
    for sec, vals in obj.items():
        sch = schemas.get(sec)
        if sch is None:
            warnings.append("unknown section %s ignored" % _show(sec))
            continue
        if not isinstance(vals, dict):
            raise ConfigError("%s: expected an object, got %s" % (sec, _show(vals)))
        if not isinstance(sec, str):
            raise ConfigError("section names must be strings, got %s" % _show(sec))
        d = {}
        for k, v in vals.items():
            name = "%s.%s" % (sec, k)
            spec = sch.get(k) if isinstance(k, str) else None
            if spec is None:
                warnings.append("unknown key %s ignored" % name)
            elif is_secret(k) != secrets:
                where = "secrets file" if is_secret(k) else "config file"
                warnings.append("%s belongs in the %s; ignored" % (name, where))
            else:
                d[k] = check(name, v, spec)
        out[sec] = d
    return out
