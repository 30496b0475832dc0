# Configuration: code defaults + a JSON file on flash + a separate secrets file.
#
# Every module that takes settings declares SCHEMA = {key: (default, lo, hi)} and
# LIVE (the keys it applies while running) per docs/conventions.md; gateway.schema is
# the one validator. This module gets the section schemas as a dict
# ({"control": control.SCHEMA, ...}) so it imports none of them, validates with errors
# that name "section.key", and keeps one dict per section. A change of a LIVE key goes
# to the listeners (Gateway.apply_settings), which hand it to the module that uses it;
# any other key is stored, saved and takes effect at the next start.
#
# Files (the board decides the directory):
#   config.json   only the values that differ from the defaults, no secrets
#   secrets.json  keys named *password, *token, *psk (never in the repository)
# Save is atomic against a power cut at any instant: write config.json.tmp,
# read it back, move config.json to config.json.bak, move the .tmp into place.
# Load reads config.json, or when it is missing the .tmp (complete: it is only moved
# into place after its read-back), else the .bak. Sections are judged one by one: a
# section that fails (a bad value, a broken rule, an unknown key of a strict section
# such as safety, an unknown section) runs its defaults, the others load as written,
# and `fault` names the failure: the gateway latches the safety FAULT on it (export
# blocked) and reports it in the log, on the console and in the MQTT state, so a bad
# file never yields a silently different safety behaviour. A file that does not parse
# at all is a fault too (the .bak, if any, then supplies the sections so that MQTT can
# report it). A torn .tmp (a cut during the very first save) is skipped with a warning.
# Flash writes stall the interpreter (~80 ms per page on the ESP32, community-measured),
# so a save waits while the `busy()` callback says a write must not happen now
# (Gateway.flash_busy: island backup, or the car discharging); changes are saved within
# seconds otherwise (run()).
import json

from gateway.schema import (
    ConfigError,
    check,
    check_changes,
    defaults,
    is_secret,
    merge,
    parse_text,
)


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
    """The configuration: `data[section][key]`, validated on every change.

    schemas: {section: SCHEMA}. log: gateway.log.Log or None. busy: callable, True
    while a flash write must wait. fs: see _OsFs. rules: {section: fn(section_dict)}
    for rules across keys (e.g. safety_cfg.rule); fn raises ConfigError naming the key.
    strict: sections whose unknown keys are errors. live: {section: keys applied live}.
    """

    def __init__(self, schemas, path="config.json", secrets_path="secrets.json", log=None,
                 busy=None, fs=None, rules=None, strict=("safety",), live=None):
        self.schemas = schemas
        self.rules = rules or {}
        self.strict = strict
        self.live = live or {}
        self.path = path
        self.secrets_path = secrets_path
        self.log = log
        self.busy = busy
        self.fs = fs or _OsFs()
        self.data = defaults(schemas)
        self.error = None  # last load/save problem (str) for telemetry and the console
        self.fault = None  # what failed at load (str): the gateway latches FAULT on it
        self.source = "defaults"  # which file the values came from
        self.dirty = False  # live values differ from the file
        self.saves = 0
        self.deferred = False  # a save is waiting for a moment when flash may be written
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
        vals = {}
        tmp = self.path + ".tmp"
        for path in (self.path, tmp, self.path + ".bak"):
            if not self.fs.exists(path):
                continue
            try:
                obj = json.loads(self.fs.read(path))
            except (ValueError, OSError) as e:  # JSON errors are ValueError
                if path == tmp and not errors:
                    self._log(2, "%s: torn save ignored (%s)" % (path, e))
                else:
                    errors.append("%s: %s" % (path, e))
                continue
            warns = []
            errs = []
            vals = merge(self.schemas, obj, warns, errs, False, self.strict, self.rules)
            for w in warns:
                self._log(2, "%s: %s" % (path, w))
            for e in errs:
                errors.append("%s: %s" % (path, e))
            used = path
            break
        self._set_all(vals)
        self.source = used or "defaults"
        self.fault = "; ".join(errors) if errors else None
        if errors and used != self.path:
            self.fault += "; using " + self.source
        self.error = self.fault
        if errors:
            self._log(3, "config " + self.error)
        self.dirty = False
        self._load_secrets()
        return used is not None

    def _load_secrets(self):
        if not self.fs.exists(self.secrets_path):
            return
        warns = []
        errs = []
        try:
            vals = merge(self.schemas, json.loads(self.fs.read(self.secrets_path)), warns, errs,
                         True)
        except (ValueError, OSError) as e:
            errs.append(str(e))
            vals = {}
        if errs:  # secrets are credentials, not behaviour: reported, not a fault
            msg = "%s: %s; those secrets not used" % (self.secrets_path, "; ".join(errs))
            self.error = msg if self.error is None else self.error + "; " + msg
            self._log(3, "config " + msg)
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

    def is_live(self, sec, key):
        """True if a change of section.key applies at once, False if at the next start."""
        return key in self.live.get(sec, ())

    def get(self, name):
        sec, key, _ = self.spec(name)
        return self.data[sec][key]

    def check(self, changes):
        """Raise ConfigError unless the (section, key, value) triples, applied together,
        keep every touched section valid under its rule (values already checked)."""
        check_changes(self.data, self.rules, changes)

    def set(self, name, value, text=False):
        """Validate and apply one value (text=True: convert what was typed)."""
        sec, key, spec = self.spec(name)
        if is_secret(key):
            raise ConfigError("%s: secret, set it in %s" % (name, self.secrets_path))
        v = parse_text(name, value, spec) if text else check(name, value, spec)
        change = ((sec, key, v),)
        self.check(change)  # raises naming the key: the value in force stays
        self.apply(change)
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
        """Write the file atomically. Returns "saved" or "deferred" (not a safe moment)."""
        if self.busy is not None and self.busy():
            if not self.deferred:
                self._log(1, "config save deferred: island backup or the car discharging")
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

    async def run(self, poll_ms=500, min_interval_ms=2000):
        """Persist accepted changes in the background: within a poll of the first moment
        a flash write may happen (busy() False), at most one save per min_interval_ms."""
        import asyncio

        gap = min_interval_ms // poll_ms
        wait = 0
        while True:
            await asyncio.sleep_ms(poll_ms)
            if wait > 0:
                wait -= 1
            if not self.dirty or wait > 0:
                continue
            try:
                if self.save() == "saved":
                    wait = gap
            except (OSError, ConfigError) as e:
                wait = gap
                msg = "save failed: %s" % e
                self.error = msg if self.fault is None else self.fault + "; " + msg
                self._log(3, "config " + msg)
