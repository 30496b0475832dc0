# Configuration: validation that names the key, secrets apart, and a save that a
# power cut at any byte or step leaves as the old or the new file, never a mix.
import json
import os
import sys
import unittest

from gateway import config
from gateway.config import Config, ConfigError

SCHEMAS = {
    "control": {"mode": ("pv", ("off", "pv", "v2h"), None), "soc_reserve_pct": (30, 0, 100),
                "soc_max_pct": (90, 10, 100), "enabled": (True, None, None)},
    "mqtt": {"host": ("", None, None), "port": (1883, 1, 65535), "password": ("", None, None)},
    "safety": {"reconnect_ms": (60000, 1000, 900000)},
}
OLD = {"control": {"mode": "v2h", "soc_reserve_pct": 20, "enabled": False},
       "mqtt": {"host": "10.0.0.2", "port": 1884}, "safety": {"reconnect_ms": 300000}}
NEW = {"control": {"mode": "off", "soc_reserve_pct": 45, "soc_max_pct": 80},
       "mqtt": {"host": "broker.lan", "port": 8883}, "safety": {"reconnect_ms": 120000}}

_DIR = "build/test-config-" + sys.implementation.name


def _mkdirs(path):
    p = ""
    for part in path.split("/"):
        p = p + "/" + part if p else part
        try:
            os.mkdir(p)
        except OSError:
            pass


def _clean():
    _mkdirs(_DIR)
    for f in os.listdir(_DIR):
        os.remove(_DIR + "/" + f)


def _write(name, data):
    with open(_DIR + "/" + name, "wb") as f:
        f.write(data)


def _fresh(**kw):
    return Config(SCHEMAS, _DIR + "/config.json", _DIR + "/secrets.json", **kw)


def _values(c):
    """The loaded values, compared against defaults overlaid with OLD or NEW."""
    return json.dumps([[s, sorted(c.data[s].items())] for s in sorted(c.data)])


def _expected(over):
    d = config.defaults(SCHEMAS)
    for s, kv in (over or {}).items():
        d[s].update(kv)
    return json.dumps([[s, sorted(d[s].items())] for s in sorted(d)])


def _err(f):
    """The ConfigError message f() raises (micropython-unittest's assertRaises keeps none)."""
    try:
        f()
    except ConfigError as e:
        return str(e)
    raise AssertionError("no ConfigError")


class Log:
    def __init__(self):
        self.lines = []

    def add(self, level, msg):
        self.lines.append((level, msg))


class Validation(unittest.TestCase):
    def test_errors_name_the_key(self):
        cases = (
            ("control.mode", "fast", "control.mode: 'fast' is not one of off, pv, v2h"),
            ("control.soc_reserve_pct", 101, "control.soc_reserve_pct: 101 is above the maximum"),
            ("control.soc_reserve_pct", -5, "below the minimum 0"),
            ("control.soc_reserve_pct", True, "expected an integer, got true"),
            ("control.soc_reserve_pct", 4.5, "expected a whole number"),
            ("control.soc_reserve_pct", "4", "expected an integer, got '4'"),
            ("control.enabled", 1, "control.enabled: expected true or false, got 1"),
            ("mqtt.host", 5, "mqtt.host: expected a string"),
            ("mqtt.host", "a\nb", "control character"),
            ("mqtt.host", "x" * 200, "longer than 128"),
        )
        for name, value, msg in cases:
            sec, key = name.split(".")
            got = _err(lambda: config.check(name, value, SCHEMAS[sec][key]))
            self.assertTrue(msg in got, (msg, got))
        self.assertEqual(config.check("x", 40.0, (1, 0, 100)), 40)
        self.assertIs(type(config.check("x", 40.0, (1, 0, 100))), int)

    def test_typed_text_from_the_console(self):
        spec = SCHEMAS["control"]
        self.assertEqual(config.parse_text("c.soc_reserve_pct", "45", spec["soc_reserve_pct"]), 45)
        self.assertIs(config.parse_text("c.enabled", "off", spec["enabled"]), False)
        with self.assertRaises(ConfigError):
            config.parse_text("c.soc_reserve_pct", "4x", spec["soc_reserve_pct"])
        with self.assertRaises(ConfigError):
            config.parse_text("c.enabled", "maybe", spec["enabled"])

    def test_set_validates_and_marks_dirty(self):
        _clean()
        c = _fresh()
        self.assertEqual(c.set("control.soc_reserve_pct", "55", text=True), 55)
        self.assertTrue(c.dirty)
        for name, v in (("control.nope", 1), ("nope.x", 1), ("control.soc_reserve_pct", 500)):
            with self.assertRaises(ConfigError):
                c.set(name, v)
        self.assertTrue("secret" in _err(lambda: c.set("mqtt.password", "x")))
        self.assertEqual(c.get("control.soc_reserve_pct"), 55)

    def test_section_rule_fails_its_section_only(self):
        def rule(d):
            if d["soc_reserve_pct"] > d["soc_max_pct"]:
                raise ConfigError("control.soc_reserve_pct: above control.soc_max_pct")

        _clean()
        _write("config.json", b'{"control": {"soc_reserve_pct": 95}, "mqtt": {"port": 1884}}')
        c = _fresh(rules={"control": rule})
        self.assertTrue(c.load())
        self.assertTrue("soc_reserve_pct: above" in c.fault, c.fault)
        self.assertEqual(c.error, c.fault)
        self.assertEqual(c.get("control.soc_reserve_pct"), 30)
        self.assertEqual(c.get("mqtt.port"), 1884)  # the valid section still loads
        with self.assertRaises(ConfigError):
            c.set("control.soc_reserve_pct", 95)
        self.assertEqual(c.get("control.soc_reserve_pct"), 30)


class Load(unittest.TestCase):
    def test_missing_file_means_defaults_without_error(self):
        _clean()
        c = _fresh()
        self.assertFalse(c.load())
        self.assertEqual((c.source, c.error), ("defaults", None))
        self.assertEqual(_values(c), _expected(None))

    def test_values_warnings_and_secrets(self):
        _clean()
        _write("config.json", json.dumps({"control": {"mode": "v2h", "future_key": 1},
                                          "mqtt": {"password": "leak"}}).encode())
        _write("secrets.json", b'{"mqtt": {"password": "s3cret", "host": "x"}}')
        log = Log()
        c = _fresh(log=log)
        self.assertTrue(c.load())
        self.assertEqual(c.get("control.mode"), "v2h")
        self.assertEqual(c.get("mqtt.password"), "s3cret")
        self.assertEqual(c.get("mqtt.host"), "")  # only secrets come from the secrets file
        text = " ".join(m for _, m in log.lines)
        for frag in ("control.future_key ignored",
                     "mqtt.password belongs in the secrets file",
                     "mqtt.host belongs in the config file"):
            self.assertTrue(frag in text, (frag, text))
        self.assertIsNone(c.error)

    def test_bad_value_fails_its_section_and_says_which_key(self):
        _clean()
        _write("config.json", b'{"control": {"mode": "v2h", "soc_max_pct": 500},'
                              b' "mqtt": {"host": "broker.lan"}}')
        log = Log()
        c = _fresh(log=log)
        self.assertTrue(c.load())
        self.assertTrue("control.soc_max_pct: 500 is above the maximum 100" in c.fault, c.fault)
        self.assertEqual(_values(c), _expected({"mqtt": {"host": "broker.lan"}}))
        self.assertEqual(log.lines[-1][0], 3)

    def test_unknown_key_is_an_error_in_a_strict_section_only(self):
        _clean()
        _write("config.json", b'{"safety": {"reconect_ms": 5000}, "control": {"x": 1}}')
        log = Log()
        c = _fresh(log=log)
        c.load()
        self.assertTrue("safety.reconect_ms: unknown key" in c.fault, c.fault)
        self.assertFalse("control.x" in c.fault)
        self.assertTrue(any("control.x ignored" in m for _, m in log.lines), log.lines)

    def test_unknown_section_is_an_error(self):
        _clean()
        _write("config.json", b'{"safty": {"reconnect_ms": 300000}}')
        c = _fresh()
        c.load()
        self.assertTrue("unknown section 'safty'" in c.fault, c.fault)

    def test_per_key_string_length(self):
        sch = {"t": {"schedule": ("", None, 4096), "name": ("", None, None)}}
        self.assertEqual(len(config.check("t.schedule", "x" * 4096, sch["t"]["schedule"])), 4096)
        self.assertTrue("longer than 4096" in _err(
            lambda: config.check("t.schedule", "x" * 4097, sch["t"]["schedule"])))
        self.assertTrue("longer than 128" in _err(
            lambda: config.check("t.name", "x" * 129, sch["t"]["name"])))

    def test_corrupt_file_is_a_fault_and_the_backup_keeps_mqtt_up(self):
        _clean()
        _write("config.json", b"\xff\x00{garbage")
        _write("config.json.bak", json.dumps(OLD).encode())
        c = _fresh()
        self.assertTrue(c.load())
        self.assertEqual(c.source, _DIR + "/config.json.bak")
        self.assertTrue(c.fault.startswith(_DIR + "/config.json: "), c.fault)
        self.assertTrue(c.fault.endswith("using " + _DIR + "/config.json.bak"), c.fault)
        self.assertEqual(_values(c), _expected(OLD))

    def test_torn_temp_file_of_a_first_save_is_no_fault(self):
        _clean()
        _write("config.json.tmp", b'{"control": {"mo')
        c = _fresh()
        self.assertFalse(c.load())
        self.assertIsNone(c.fault)
        self.assertEqual(_values(c), _expected(None))


class Save(unittest.TestCase):
    def test_round_trip_only_changes_and_no_secrets(self):
        _clean()
        _write("secrets.json", b'{"mqtt": {"password": "s3cret"}}')
        c = _fresh()
        c.load()
        c.set("control.mode", "off")
        self.assertEqual(c.save(), "saved")
        with open(_DIR + "/config.json") as f:
            on_flash = json.loads(f.read())
        self.assertEqual(on_flash, {"control": {"mode": "off"}})
        self.assertFalse(c.dirty)
        c2 = _fresh()
        c2.load()
        self.assertEqual(_values(c2), _values(c))

    def test_deferred_while_a_flash_write_must_wait(self):
        _clean()
        busy = [True]
        c = _fresh(busy=lambda: busy[0])
        c.set("control.mode", "off")
        self.assertEqual(c.save(), "deferred")
        self.assertTrue(c.dirty and c.deferred)
        self.assertFalse("config.json" in os.listdir(_DIR))
        busy[0] = False
        self.assertEqual(c.save(), "saved")
        self.assertFalse(c.dirty or c.deferred)


class PowerCut(Exception):
    pass


class CutFs(config._OsFs):
    """Real files, but the power fails after `budget` units: one per byte written,
    one per rename or remove. A cut write leaves the bytes written so far."""

    def __init__(self, budget):
        super().__init__()
        self.budget = budget

    def _spend(self, n):
        if self.budget < n:
            raise PowerCut
        self.budget -= n

    def write(self, path, data):
        n = min(len(data), self.budget)
        with open(path, "wb") as f:
            f.write(data[:n])
        self.budget -= n
        if n < len(data):
            raise PowerCut

    def rename(self, a, b):
        self._spend(1)
        super().rename(a, b)

    def remove(self, path):
        if self.exists(path):
            self._spend(1)
        super().remove(path)


def _save(over, fs=None):
    c = _fresh(fs=fs)
    for s, kv in over.items():
        for k, v in kv.items():
            c.data[s][k] = v
    return c.save()


class Atomic(unittest.TestCase):
    def test_power_cut_at_every_byte_and_step_of_a_save(self):
        _clean()
        _save(OLD)
        _save(OLD)  # now config.json and config.json.bak both hold OLD
        size = len(json.dumps(_fresh().snapshot()).encode()) + 10
        seen_new = seen_old = 0
        for budget in range(size + 400):
            _clean()
            _save(OLD)
            _save(OLD)
            try:
                _save(NEW, CutFs(budget))
                done = True
            except PowerCut:
                done = False
            c = _fresh()
            c.load()
            got = _values(c)
            if got == _expected(NEW):
                seen_new += 1
            elif got == _expected(OLD):
                seen_old += 1
                self.assertFalse(done, "a completed save must load as the new config")
            else:
                self.fail("budget %d: neither old nor new: %s" % (budget, got))
            if done:
                break
        self.assertTrue(done, "the save never completed")
        self.assertTrue(seen_old > 50 and seen_new >= 1, (seen_old, seen_new))

    def test_config_file_truncated_at_every_offset(self):
        new = json.dumps(NEW).encode() + b"\n"
        old = json.dumps(OLD).encode()
        for with_backup in (True, False):
            for k in range(len(new) + 1):
                _clean()
                _write("config.json", new[:k])
                if with_backup:
                    _write("config.json.bak", old)
                c = _fresh()
                c.load()
                got = _values(c)
                complete = k >= len(new) - 1  # only the newline missing is still the file
                if complete:
                    self.assertEqual(got, _expected(NEW), k)
                    self.assertIsNone(c.fault)
                elif with_backup:  # a fault (FAULT latched), the backup keeps MQTT up
                    self.assertEqual(got, _expected(OLD), k)
                    self.assertTrue(c.fault and "config.json" in c.fault, k)
                else:  # no good file left: the defaults and a fault to publish
                    self.assertEqual(got, _expected(None), k)
                    self.assertTrue(c.fault and "using defaults" in c.fault, k)
