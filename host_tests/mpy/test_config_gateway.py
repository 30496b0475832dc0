# mpytest: heap=512k
# mpytest: esp32like-heap=200k (keeps two whole gateways alive at once; a board holds one gateway)
# (the whole app's bytecode is loaded into the heap on the unix port; a board runs it frozen)
# The configuration in the gateway as main.py builds it (wiring.build):
# - a file that fails validation never yields a silently different safety behaviour:
#   FAULT/config latched (export blocked) with the reason in the log, on the console and
#   in the MQTT state, while the sections that are valid still load (MQTT stays up);
# - the owner's commands are on flash within seconds, in NORMAL too, and in force after
#   a reset (a new gateway built from the same storage);
# - every LIVE key really applies: the running modules end up exactly as a gateway
#   started with the new value (a loop over the schema), and the rest say "at restart".
import gc
import json
import os
import sys
import unittest

import asyncio
from gateway import wiring
from gateway.control_cfg import MODE_OFF
from gateway.ports.sim import SimBoard
from gateway.safety import REASON_FAULT_CONFIG, STATE_FAULT

_DIR = "build/test-cfggw-" + sys.implementation.name


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


def _quiet(line):
    pass


def _board():
    return SimBoard({"name": "t", "port": "sim", "storage": _DIR})


def boot(text=None, client=None):
    """A gateway as main.py builds it, from the config file `text` (None: no file)."""
    if text is not None:
        with open(_DIR + "/config.json", "w") as f:
            f.write(text)
    return wiring.build(_board(), _DIR + "/config.json", out=_quiet, client=client,
                        console=False)


def faulted(gw):
    s = gw.safety
    return s.state == STATE_FAULT and s.fault_reason == REASON_FAULT_CONFIG


class Con:
    def __init__(self, ctx):
        self.ctx = ctx


class StubClient:
    connects = 0

    def __init__(self):
        self.posted = []

    def post(self, topic, msg, retain=False, qos=0):
        self.posted.append((topic, msg))

    def subscribe(self, topic, qos=0):
        pass


def _state_json(gw):
    return json.loads(gw.telemetry.state_json(gw.clock.now_ms()))


class BadFileLatchesFault(unittest.TestCase):
    def setUp(self):
        gc.collect()
        _clean()

    def test_a_string_for_a_bool_latches_fault_on_every_channel_and_mqtt_stays_up(self):
        gw = boot('{"safety": {"backup": "false", "reconnect_ms": 300000},'
                  ' "mqtt": {"host": "10.0.0.2"}, "control": {"mode": "off"}}',
                  client=StubClient())
        self.assertTrue(faulted(gw))
        self.assertFalse(gw.permits.export or gw.permits.discharge or gw.safety.interlock_on)
        self.assertFalse(gw.board.interlock_on())
        gw.safety.tick(gw.clock.now_ms(), 0)
        self.assertFalse(gw.safety.clear_fault(gw.clock.now_ms()))  # latched for good
        # the valid sections load as written: MQTT can report the fault
        self.assertEqual(gw.config.data["mqtt"]["host"], "10.0.0.2")
        self.assertEqual(gw.control.mode, MODE_OFF)
        # log
        errs = [m for _, lv, m in gw.log.entries() if lv == "E"]
        self.assertTrue(any("safety.backup" in m and "FAULT" in m for m in errs), errs)
        # console
        from gateway import consolecmd

        out = "\n".join(consolecmd.run(Con(gw.view), ["safety"]))
        self.assertIn("config fault:", out)
        self.assertIn("safety.backup: expected true or false, got 'false'", out)
        # MQTT state
        s = _state_json(gw)
        self.assertEqual(s["safety"], "fault")
        self.assertEqual(s["safety_reason"], "config")
        self.assertIn("safety.backup", s["cfg_err"])
        self.assertFalse(s["export_ok"])

    def test_a_typo_in_the_safety_section_is_an_error_not_a_warning(self):
        gw = boot('{"safety": {"reconect_ms": 300000}}')
        self.assertTrue(faulted(gw))
        self.assertIn("safety.reconect_ms: unknown key", gw.safety.config_error)

    def test_valid_file_runs_as_written(self):
        gw = boot('{"safety": {"backup": false, "reconnect_ms": 300000, "profile": "ieee1547"}}')
        self.assertFalse(faulted(gw))
        self.assertIsNone(gw.config.fault)
        self.assertEqual((gw.safety._backup, gw.safety._reconnect_ms), (False, 300000))
        self.assertEqual(gw.safety.cfg["v_nom_mv"], 120000)

    def test_documented_tariff_length_is_the_enforced_one(self):
        from gateway.tariff import EPOCH_2000, MAX_TEXT

        sched = json.dumps({"start": EPOCH_2000 + 9000 * 86400, "interval_min": 60,
                            "import": [250] * 24, "export": [90] * 24})
        # docs/planning.md states the limit once: 3072 bytes, MQTT and config file alike
        self.assertTrue(128 < len(sched) <= MAX_TEXT == 3072)
        gw = boot(json.dumps({"tariff": {"schedule": sched}}))
        self.assertFalse(faulted(gw))
        self.assertEqual(gw.tariff.n, 24)
        gc.collect()
        gw = boot(json.dumps({"tariff": {"schedule": " " * (MAX_TEXT + 1)}}))
        self.assertTrue(faulted(gw))
        self.assertIn("tariff.schedule: longer than %d characters" % MAX_TEXT, gw.config.fault)


async def _service(gw, name, ms):
    """Run the production service `name` (wiring.build) for `ms`."""
    fn = None
    for n, f in gw.extra_services:
        if n == name:
            fn = f
    t = asyncio.create_task(fn())
    await asyncio.sleep_ms(ms)
    t.cancel()
    await asyncio.sleep_ms(0)


class OwnerCommandsPersist(unittest.TestCase):
    def setUp(self):
        gc.collect()
        _clean()

    def _normal(self, gw, car_w):
        p = gw.permits  # NORMAL as the safety module fills it: export and discharge permitted
        p.export = p.discharge = p.charge = True
        p.limit_w = 11000
        gw.charger.power_w = car_w

    def test_stop_now_and_a_raised_reserve_survive_a_reset_in_normal(self):
        gw = boot()
        self._normal(gw, 3000)  # charging from surplus
        gw.stop_now()
        gw.config.set("control.soc_reserve_pct", 55)
        asyncio.run(_service(gw, "config", 1500))
        self.assertTrue(gw.config.saves >= 1)
        gc.collect()
        gw2 = boot()  # the reset: a new gateway from the same storage
        self.assertEqual(gw2.config.data["control"]["mode"], "off")
        self.assertEqual(gw2.control.mode, MODE_OFF)
        self.assertEqual(gw2.control.reserve_pct, 55)

    def test_no_write_while_the_car_discharges_or_islanded_then_at_once(self):
        gw = boot()
        self._normal(gw, -3000)  # V2H: the contact IRQ must not wait behind a flash write
        gw.config.set("control.soc_reserve_pct", 60)
        asyncio.run(_service(gw, "config", 1200))
        self.assertEqual(gw.config.saves, 0)
        self.assertTrue(gw.config.deferred)
        gw.charger.power_w = 0
        gw.permits.island = True
        asyncio.run(_service(gw, "config", 1200))
        self.assertEqual(gw.config.saves, 0)
        gw.permits.island = False  # back to NORMAL, car idle: saved within a poll
        asyncio.run(_service(gw, "config", 1200))
        self.assertEqual(gw.config.saves, 1)
        gc.collect()
        self.assertEqual(boot().control.reserve_pct, 60)


def _other(spec):
    """Valid values other than the default, most likely first."""
    d, lo, hi = spec
    if isinstance(lo, tuple):
        return [c for c in lo if c != d]
    if d is True or d is False:
        return [not d]
    if isinstance(d, str):
        return ["x1"]
    out = []
    for v in (d + 1, d - 1, lo, hi, d + 1000, d - 1000):
        if v != d and (lo is None or v >= lo) and (hi is None or v <= hi) and v not in out:
            out.append(v)
    return out


def _snap(gw):
    """The settings state of the running modules that take settings."""
    out = {}
    for name, obj in (("control", gw.control), ("safety", gw.safety),
                      ("planner", gw.planner)):
        for k, v in obj.__dict__.items():
            if v is None or isinstance(v, (bool, int, str)):
                out[name + "." + k] = v
            elif isinstance(v, dict):
                out[name + "." + k] = sorted(v.items())
    return out


class LiveKeys(unittest.TestCase):
    def setUp(self):
        gc.collect()
        _clean()

    def test_every_live_key_acts_like_a_restart_with_it(self):
        base = boot()
        ref = _snap(base)
        n = 0
        for sec, keys in base.config.live.items():
            for key in keys:
                spec = base.config.schemas[sec][key]
                gw = boot()
                v = None
                for cand in _other(spec):
                    try:
                        gw.config.set(sec + "." + key, cand)
                        v = cand
                        break
                    except ValueError:
                        pass
                self.assertTrue(v is not None, (sec, key))
                live = _snap(gw)
                del gw
                gc.collect()
                fresh = boot(json.dumps({sec: {key: v}}))  # a restart with the new value
                self.assertIsNone(fresh.config.fault, fresh.config.fault)
                want = _snap(fresh)
                if sec in ("control", "safety", "plan"):
                    self.assertTrue(want != ref, "%s.%s changes nothing" % (sec, key))
                else:  # telemetry, commands read their section dict at each use
                    self.assertEqual(fresh.config.data[sec][key], v)
                for k in want:
                    self.assertEqual(live[k], want[k], "%s.%s=%r: %s" % (sec, key, v, k))
                del fresh, live, want
                gc.collect()
                _clean()
                n += 1
        self.assertTrue(n >= 40, n)

    def test_console_and_mqtt_say_live_or_restart(self):
        gw = boot()
        from gateway import consolecmd

        out = consolecmd.run(Con(gw.view), ["config", "set", "safety.backup", "false"])
        self.assertIn("(applied now;", out[0])
        self.assertIs(gw.safety._backup, False)
        out = consolecmd.run(Con(gw.view), ["config", "set", "safety.reconnect_ms", "300000"])
        self.assertIn("(applies at the next restart;", out[0])
        self.assertEqual(gw.safety._reconnect_ms, 60000)
        out = consolecmd.run(Con(gw.view), ["config", "set", "control.period_ms", "500"])
        self.assertIn("at the next restart", out[0])
        self.assertEqual(gw.control.period_ms, 200)
        gw = boot(client=StubClient())
        gw.telemetry.on_message("energygw/t/cmd", b'{"mode": "v1g", "soc_reserve_pct": 35}',
                                False)
        reply = json.loads(gw.telemetry.client.posted[-1][1])
        self.assertEqual(reply["result"], "accepted", reply)
        self.assertEqual(reply["at_restart"], [])
        self.assertEqual((gw.control.mode, gw.control.reserve_pct), (1, 35))


if __name__ == "__main__":
    unittest.main()
