# Configuration: code defaults + a JSON file on flash + a separate secrets file.
#
# Every module that takes settings declares SCHEMA = {key: (default, lo, hi)}
# (docs/conventions.md): ints with bounds, bools and strings as
# (default, None, None), choices as (default, ("a", "b"), None). This module
# gets the section schemas as a dict ({"control": control.SCHEMA, ...}) so it
# imports none of them, validates with errors that name "section.key", and
# keeps one live dict per section: modules hold a reference to their section
# dict and see accepted changes at once.
#
# Files (the board decides the directory):
#   config.json   only the values that differ from the defaults, no secrets
#   secrets.json  keys named *password, *token, *psk (never in the repository)
# Save is atomic against a power cut at any instant: write config.json.tmp,
# read it back, move config.json to config.json.bak, move the .tmp into place.
# Load takes the first of config.json, .tmp, .bak that parses and validates
# completely, so a cut anywhere yields the old or the new file, never a mix. A
# file that fails (corrupt JSON or a bad value) is named in `error` (logged and
# published); if none is usable the defaults stand (the safe state).
# Flash writes stall the interpreter (~80 ms per page on the ESP32), so a save
# is deferred while the `busy()` callback reports export protection active.
import json

from gateway.schema import ConfigError, check, defaults, is_secret, merge, parse_text


class _OsFs:
    """The filesystem operations a save needs; tests swap in one that fails midway."""

    def __init__(self):
        import os

        self._os = os

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def write(self, path, data):
        with open(path, "wb") as f:
            f.write(data)

    def rename(self, a, b):
        self._os.rename(a, b)

    def remove(self, path):
        try:
            self._os.remove(path)
        except OSError:
            pass  # already gone

    def exists(self, path):
        try:
            self._os.stat(path)
            return True
        except OSError:
            return False


class Config:
    """The live configuration: `data[section][key]`, validated on every change.

    schemas: {section: SCHEMA}. log: gateway.log.Log or None. busy: callable,
    True while export protection is active (saving waits). fs: see _OsFs.
    validators: optional {section: fn(section_dict)} for rules across keys (e.g.
    safety_cfg.validate); fn raises ValueError naming the key, and a file that
    fails it is rejected like any other bad value.
    """

    def __init__(self, schemas, path="config.json", secrets_path="secrets.json", log=None,
                 busy=None, fs=None, validators=None):
        self.schemas = schemas
        self.validators = validators or {}
        self.path = path
        self.secrets_path = secrets_path
        self.log = log
        self.busy = busy
        self.fs = fs or _OsFs()
        self.data = defaults(schemas)
        self.error = None  # last load/save problem (str) for telemetry and the console
        self.source = "defaults"  # which file the values came from
        self.dirty = False  # live values differ from the file
        self.saves = 0
        self.deferred = False  # a save is waiting for export protection to end
        self.listeners = []  # fn(changes) called after live changes were applied

    def _log(self, level, msg):
        if self.log is not None:
            self.log.add(level, msg)

    def _set_all(self, vals):
        """Defaults overlaid with vals, written into the existing section dicts."""
        base = defaults(self.schemas)
        for sec, d in self.data.items():
            d.update(base[sec])
            if sec in vals:
                d.update(vals[sec])

    def load(self):
        """Read config then secrets. Returns True if a config file was used."""
        errors = []
        used = None
        for path in (self.path, self.path + ".tmp", self.path + ".bak"):
            if not self.fs.exists(path):
                continue
            warns = []
            try:
                vals = merge(self.schemas, json.loads(self.fs.read(path)), warns)
                self._validate_sections(vals)
            except (ValueError, ConfigError, OSError) as e:  # JSON errors are ValueError
                errors.append("%s: %s" % (path, e))
                continue
            for w in warns:
                self._log(2, "%s: %s" % (path, w))
            self._set_all(vals)
            used = path
            break
        if used is None:
            self._set_all({})
        self.source = used or "defaults"
        self.error = "; ".join(errors) if errors else None
        if errors:
            self.error += "; using " + self.source
            self._log(3, "config " + self.error)
        self.dirty = False
        self._load_secrets()
        return used is not None

    def _validate_sections(self, vals):
        for sec, fn in self.validators.items():
            d = {k: spec[0] for k, spec in self.schemas[sec].items()}
            d.update(vals.get(sec, {}))
            fn(d)

    def _load_secrets(self):
        if not self.fs.exists(self.secrets_path):
            return
        warns = []
        try:
            vals = merge(self.schemas, json.loads(self.fs.read(self.secrets_path)), warns, True)
        except (ValueError, ConfigError, OSError) as e:
            msg = "%s: %s; secrets not used" % (self.secrets_path, e)
            self.error = msg if self.error is None else self.error + "; " + msg
            self._log(3, "config " + msg)
            return
        for w in warns:
            self._log(2, "%s: %s" % (self.secrets_path, w))
        for sec, d in vals.items():
            self.data[sec].update(d)

    def spec(self, name):
        """(section, key, spec) for "section.key", or raise ConfigError."""
        sec, _, key = name.partition(".")
        sch = self.schemas.get(sec)
        if sch is None or key not in sch:
            raise ConfigError("%s: no such setting" % name)
        return sec, key, sch[key]

    def get(self, name):
        sec, key, _ = self.spec(name)
        return self.data[sec][key]

    def set(self, name, value, text=False):
        """Validate and apply one live value (text=True: convert what was typed)."""
        sec, key, spec = self.spec(name)
        if is_secret(key):
            raise ConfigError("%s: secret, set it in %s" % (name, self.secrets_path))
        v = parse_text(name, value, spec) if text else check(name, value, spec)
        fn = self.validators.get(sec)
        if fn is not None:
            d = dict(self.data[sec])
            d[key] = v
            fn(d)  # raises ValueError naming the key: the live value stays
        self.apply(((sec, key, v),))
        return v

    def apply(self, changes):
        """Apply already validated (section, key, value) triples; mark for saving."""
        for sec, key, v in changes:
            d = self.data[sec]
            if d[key] != v:
                d[key] = v
                self.dirty = True
        for fn in self.listeners:
            fn(changes)

    def snapshot(self):
        """What the config file holds: values that differ from the defaults, no secrets."""
        out = {}
        for sec, sch in self.schemas.items():
            d = self.data[sec]
            s = {k: d[k] for k, spec in sch.items() if not is_secret(k) and d[k] != spec[0]}
            if s:
                out[sec] = s
        return out

    def save(self):
        """Write the file atomically. Returns "saved" or "deferred" (export active)."""
        if self.busy is not None and self.busy():
            if not self.deferred:
                self._log(1, "config save deferred: export protection active")
            self.deferred = True
            return "deferred"
        self.deferred = False
        data = json.dumps(self.snapshot()).encode() + b"\n"
        tmp, bak, fs = self.path + ".tmp", self.path + ".bak", self.fs
        fs.remove(tmp)
        fs.write(tmp, data)
        if fs.read(tmp) != data:
            fs.remove(tmp)
            raise ConfigError("%s: read-back differs after write" % tmp)
        if fs.exists(self.path):
            fs.remove(bak)
            fs.rename(self.path, bak)
        fs.rename(tmp, self.path)
        self.dirty = False
        self.saves += 1
        self.source = self.path
        self._log(1, "config saved (%d bytes)" % len(data))
        return "saved"

    async def run(self, min_interval_ms=10000):
        """Persist accepted changes in the background: at most one save per interval."""
        import asyncio

        while True:
            await asyncio.sleep_ms(min_interval_ms)
            if self.dirty:
                try:
                    self.save()
                except (OSError, ConfigError) as e:
                    self.error = "save failed: %s" % e
                    self._log(3, "config " + self.error)
