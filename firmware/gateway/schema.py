# Settings validation, pure: the one validator and the one ConfigError for every
# settings section (docs/conventions.md). Each firmware module declares
# SCHEMA = {key: (default, lo, hi)}: ints with bounds, bools as (default, None, None),
# strings as (default, None, max_len) (max_len None = MAX_STR), choices as
# (default, ("a", "b"), None); and LIVE = (keys applied while running; every other key
# applies at the next start). Rules across keys stay beside their section as a function
# rule(d) that section() calls. Errors name "section.key". Used by the config store
# (gateway/config.py), the MQTT command handler, the console and the modules' own
# constructors; it imports no firmware module.
import math

from micropython import const

MAX_STR = const(128)  # longest string value of a key that declares no max_len
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
    if isinstance(lo, tuple):  # choices: strings, or ints (bus.baud)
        if type(value) is not type(default) or value not in lo:
            raise ConfigError("%s: %s is not one of %s" % (
                name, _show(value), ", ".join([str(c) for c in lo])))
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
        n = MAX_STR if hi is None else hi
        if len(value) > n:
            raise ConfigError("%s: longer than %d characters" % (name, n))
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


def section(sec, sch, vals, warnings=None, strict=False, rule=None, secrets=None):
    """The complete settings dict of one section: the defaults overlaid with `vals`
    (a dict or None), every value checked, then the section's `rule(d)` for rules across
    keys (raises ConfigError naming the key). Unknown keys raise when `strict` (safety:
    a typo must not silently run a default), else they are skipped with a warning (an
    older or newer firmware's file). secrets None: any key; False: secret keys are
    skipped with a warning (config file); True: only secret keys (secrets file)."""
    if vals is None:
        vals = {}
    if not isinstance(vals, dict):
        raise ConfigError("%s: expected an object, got %s" % (sec, _show(vals)))
    out = {}
    for k, spec in sch.items():
        out[k] = default(spec)  # a small int, even when frozen
    for k, v in vals.items():
        ks = k if isinstance(k, str) else _show(k)
        name = "%s.%s" % (sec, ks)
        spec = sch.get(k) if isinstance(k, str) else None
        if spec is None:
            if strict:
                raise ConfigError("%s: unknown key" % name)
            if warnings is not None:
                warnings.append("unknown key %s ignored" % name)
        elif secrets is not None and is_secret(k) != secrets:
            if warnings is not None:
                warnings.append("%s belongs in the %s; ignored" % (
                    name, "secrets file" if is_secret(k) else "config file"))
        else:
            out[k] = check(name, v, spec)
    if rule is not None:
        rule(out)
    return out


def check_changes(data, rules, changes):
    """Raise ConfigError unless the validated (section, key, value) triples, applied
    together to the live `data`, keep each touched section valid under its rule."""
    done = []
    for sec, _, _ in changes:
        fn = rules.get(sec)
        if fn is None or sec in done:
            continue
        done.append(sec)
        d = dict(data[sec])
        for s, k, v in changes:
            if s == sec:
                d[k] = v
        fn(d)


def merge(schemas, obj, warnings, errors, secrets=False, strict=(), rules=None):
    """Validate a parsed file section by section: {section: {key: value}} of what the
    sections that passed set. A section that fails (a bad value, an unknown key of a
    strict section, its rule) is left out whole and its error appended to `errors`; the
    other sections still count. An unknown section is an error too (a misspelt section
    name would otherwise silently run all its defaults)."""
    if not isinstance(obj, dict):
        errors.append("top level: expected an object, got %s" % _show(obj))
        return {}
    out = {}
    for sec, vals in obj.items():
        sch = schemas.get(sec) if isinstance(sec, str) else None
        if sch is None:
            errors.append("unknown section %s" % _show(sec))
            continue
        try:
            full = section(sec, sch, vals, warnings, sec in strict,
                           rules.get(sec) if rules and not secrets else None, secrets)
        except ConfigError as e:
            errors.append(str(e))
            continue
        d = {}
        for k in vals:
            if isinstance(k, str) and k in sch and is_secret(k) == secrets:
                d[k] = full[k]
        out[sec] = d
    return out
