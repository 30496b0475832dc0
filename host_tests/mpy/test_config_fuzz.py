# mpytest: heap=512k
# (the whole app's bytecode is loaded into the heap on the unix port; a board runs it frozen)
# Config fuzz through the production path (wiring.build_config + Gateway), on both
# runtimes: every key of every section with valid values, wrong types and values out of
# range, unknown keys and sections, and the file truncated at every offset. The outcome
# of each file is either the file as written (no fault, every key it sets in force, the
# safety settings exactly the ones it spells) or FAULT/config latched with the reason
# naming what failed (export blocked, interlock off): never a silently different safety
# behaviour. The counts are printed as JSON.
import gc
import json
import os
import sys
import unittest

from gateway import safety_cfg, wiring
from gateway.app import Gateway
from gateway.log import Log
from gateway.ports.sim import SimBoard
from gateway.safety import REASON_FAULT_CONFIG, STATE_FAULT
from gateway.schema import MAX_STR, is_secret

BASE = {
    "safety": {"profile": "ieee1547", "reconnect_ms": 120000, "backup": False,
               "limit_max_w": 7000},
    "control": {"mode": "v1g", "soc_reserve_pct": 40, "max_discharge_w": 6000},
    "mqtt": {"host": "10.0.0.2", "port": 1884},
    "telemetry": {"period_s": 10},
    "plan": {"departure_min": 420, "departure_soc_pct": 80},
    "app": {"safety_tick_ms": 25},
}


_DIR = "build/test-cfgfuzz-" + sys.implementation.name


def _mkdirs(path):
    p = ""
    for part in path.split("/"):
        p = p + "/" + part if p else part
        try:
            os.mkdir(p)
        except OSError:
            pass


def _quiet(line):
    pass


_mkdirs(_DIR)
_BOARD = SimBoard({"name": "fuzz", "port": "sim", "storage": _DIR})


def boot(text):
    """The gateway as main.py builds it from a config.json holding `text`."""
    with open(_DIR + "/config.json", "w") as f:
        f.write(text)
    cfg = wiring.build_config(_BOARD, Log(4, _BOARD.clock))
    return Gateway(_BOARD, cfg, out=_quiet)


def _merged(sec, key, v):
    obj = {}
    for s, d in BASE.items():
        obj[s] = dict(d)
    obj.setdefault(sec, {})[key] = v
    return obj


class Counts:
    def __init__(self):
        self.as_written = 0
        self.fault = 0


class Fuzz(unittest.TestCase):
    def setUp(self):
        gc.collect()
        self.n = Counts()
        self.schemas = wiring.schemas()

    def fault(self, text, names):
        gw = boot(text)
        s = gw.safety
        self.assertEqual((s.state, s.fault_reason), (STATE_FAULT, REASON_FAULT_CONFIG),
                         "no FAULT for %s" % text[:120])
        p = gw.permits
        self.assertFalse(p.export or p.discharge or p.charge or s.interlock_on)
        self.assertTrue(s.config_error and names in s.config_error,
                        (names, s.config_error))
        self.n.fault += 1

    def written(self, obj, text=None):
        """The outcome must be the file as written: no fault and every key it sets."""
        gw = boot(text if text is not None else json.dumps(obj))
        s = gw.safety
        self.assertTrue(s.state != STATE_FAULT, s.config_error)
        self.assertIsNone(gw.config.error)
        for sec, d in obj.items():
            sch = self.schemas[sec]
            for k, v in d.items():
                if k in sch and not is_secret(k):
                    self.assertEqual(gw.config.data[sec][k], v, (sec, k))
        want = safety_cfg.validate(obj.get("safety"))
        for k in want:
            self.assertEqual(s.cfg[k], want[k], k)
        self.assertEqual(s._backup, want["backup"])
        self.assertEqual(s._reconnect_ms, want["reconnect_ms"])
        self.n.as_written += 1

    def either(self, obj, names):
        """A valid value per key: as written, or FAULT naming the section (a rule)."""
        text = json.dumps(obj)
        gw = boot(text)
        if gw.config.error is None:
            self.written(obj, text)
        else:
            self.fault(text, names)

    def test_fuzz(self):
        schemas = self.schemas
        self.written(BASE)
        n_keys = 0
        for sec in sorted(schemas):
            sch = schemas[sec]
            for key in sorted(sch):
                if is_secret(key):  # taken from the secrets file only (ignored here)
                    continue
                n_keys += 1
                default, lo, hi = sch[key]
                name = "%s.%s" % (sec, key)
                for v in _valid(default, lo, hi):
                    self.either(_merged(sec, key, v), sec + ".")
                for v in _wrong(default, lo, hi):
                    self.fault(json.dumps(_merged(sec, key, v)), name)
                gc.collect()
            obj = _merged(sec, "zz_unknown", 1)
            if sec in ("safety",):
                self.fault(json.dumps(obj), sec + ".zz_unknown: unknown key")
            else:
                self.written(obj)
            obj = dict(BASE)
            obj[sec] = 5  # not an object
            self.fault(json.dumps(obj), sec + ": expected an object")
        obj = dict(BASE)
        obj["safty"] = {"backup": True}  # a misspelt section would silently run defaults
        self.fault(json.dumps(obj), "unknown section 'safty'")
        for text in ("[1]", "5", "null", '"x"', ""):
            self.fault(text, "config.json")
        # truncation at every offset of a valid file
        text = json.dumps(BASE) + "\n"
        n_trunc = 0
        for k in range(len(text)):
            part = text[:k]
            if part.strip() == text.strip():
                self.written(BASE, part)
            else:
                self.fault(part, "config.json")
            n_trunc += 1
            if k % 50 == 0:
                gc.collect()
        print(json.dumps({"benchmark": "config-fuzz", "runtime": sys.implementation.name,
                          "keys": n_keys, "cases": self.n.as_written + self.n.fault,
                          "as_written": self.n.as_written, "fault": self.n.fault,
                          "truncations": n_trunc}))
        self.assertTrue(n_keys >= 100 and n_trunc >= 200, (n_keys, n_trunc))


def _valid(default, lo, hi):
    if isinstance(lo, tuple):
        return [c for c in lo if c != default][:2]
    if default is True or default is False:
        return [not default]
    if isinstance(default, str):
        return ["ok-1"]
    out = []
    for v in (lo, hi, default + 1):
        if v is not None and v != default and (lo is None or v >= lo) and \
                (hi is None or v <= hi) and v not in out:
            out.append(v)
    return out


def _wrong(default, lo, hi):
    if isinstance(lo, tuple):
        return ["zz", None, [default]] + (["9600"] if type(default) is int else [0])
    if default is True or default is False:
        return [str(default).lower(), 0, 1, None]
    if isinstance(default, str):
        n = MAX_STR if hi is None else hi
        return [5, True, None, "a\nb", "x" * (n + 1)]
    out = [str(default), True, 1.5, None, [default], {}]
    if lo is not None:
        out.append(lo - 1)
    if hi is not None:
        out.append(hi + 1)
    return out


if __name__ == "__main__":
    unittest.main()
