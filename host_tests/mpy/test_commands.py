# Commands over MQTT: whitelist, bounds, replies, rate limit, and the rule that no
# safety parameter can ever be written this way (10,000 seeded fuzzed payloads).
import json
import math
import random
import unittest

from gateway import commands
from gateway import schema as config
from gateway.commands import Commands

try:
    from gateway.control import SCHEMA as CONTROL
except ImportError:  # stand-in with the shape the control module declares
    CONTROL = {
        "mode": ("auto", ("auto", "v1g", "off"), None),
        "soc_reserve_pct": (30, 0, 100),
        "soc_max_pct": (90, 10, 100),
    }
try:
    from gateway.safety_cfg import SCHEMA as SAFETY
except ImportError:
    SAFETY = {
        "reconnect_ms": (60000, 1000, 900000),
        "v_nom_mv": (230000, 50000, 480000),
        "limit_max_w": (11000, 100, 100000),
        "backup": (True, None, None),
    }

# Parts of the mqtt and telemetry sections (the whole modules are too big to compile
# beside this test in an ESP32-sized heap; test_telemetry checks the real ones).
MQTT = {"host": ("", None, None), "port": (1883, 1, 65535), "password": ("", None, None)}
TELEMETRY = {"prefix": ("energygw", None, None), "period_s": (5, 1, 3600)}
SCHEMAS = {"control": CONTROL, "safety": SAFETY, "mqtt": MQTT, "telemetry": TELEMETRY,
           "commands": commands.SCHEMA}


def fresh(burst=5, interval_ms=2000, actions=True):
    data = config.defaults(SCHEMAS)
    data["commands"]["rate_burst"] = burst
    data["commands"]["rate_interval_ms"] = interval_ms
    applied = []
    stops = [0]  # a count, not a growing list: the fuzz test fires thousands of stops

    def stop_now():  # like the app's: mode off
        stops[0] += 1
        data["control"]["mode"] = "off"

    def apply(changes):
        applied.append(list(changes))
        for sec, key, v in changes:
            data[sec][key] = v

    acts = {"stop_now": stop_now} if actions else {}
    return Commands(data["commands"], SCHEMAS, data, apply, acts), data, applied, stops


def reply(r):
    obj = json.loads(r[1])
    return r[0], obj


class Accepted(unittest.TestCase):
    def test_reply_says_which_keys_apply_only_at_restart(self):
        c, _, _, _ = fresh()
        c.live = {"control": ("mode",)}  # as if soc_max_pct applied at the next start
        ok, obj = reply(c.handle(b'{"mode": "off", "soc_max_pct": 80}', 0))
        self.assertTrue(ok, obj)
        self.assertEqual(obj["at_restart"], ["soc_max_pct"])
        ok, obj = reply(c.handle(b'{"mode": "auto"}', 0))
        self.assertEqual(obj["at_restart"], [])

    def test_mode_applied_and_id_echoed(self):
        c, data, applied, _ = fresh()
        ok, obj = reply(c.handle(b'{"id": 7, "mode": "v1g"}', 0))
        self.assertTrue(ok)
        self.assertEqual(obj, {"id": 7, "result": "accepted", "applied": {"mode": "v1g"},
                               "at_restart": []})
        self.assertEqual(data["control"]["mode"], "v1g")
        self.assertEqual(applied, [[("control", "mode", "v1g")]])

    def test_several_keys_and_integral_float(self):
        c, data, _, _ = fresh()
        ok, obj = reply(c.handle(b'{"soc_reserve_pct": 40.0, "soc_max_pct": 80}', 0))
        self.assertTrue(ok, obj)
        self.assertEqual(obj["applied"], {"soc_reserve_pct": 40, "soc_max_pct": 80})
        self.assertIs(type(data["control"]["soc_reserve_pct"]), int)

    def test_stop_now_calls_the_action(self):
        c, _, applied, stops = fresh()
        ok, obj = reply(c.handle(b'{"stop_now": true, "id": "a1"}', 0))
        self.assertTrue(ok)
        self.assertEqual(stops, [1])  # called once
        self.assertEqual(applied, [])
        self.assertEqual(obj["id"], "a1")


class Rejected(unittest.TestCase):
    def check(self, payload, fragment, retained=False, c=None):
        if c is None:
            c, _, applied, stops = fresh()
        else:
            applied = stops = None
        before = json.dumps(c.data)
        ok, obj = reply(c.handle(payload, 0, retained))
        self.assertFalse(ok, payload)
        self.assertEqual(obj["result"], "rejected")
        self.assertTrue(fragment in obj["reason"], (fragment, obj["reason"]))
        self.assertEqual(json.dumps(c.data), before, "a rejected command changed the config")
        if applied is not None:
            self.assertEqual(applied, [])
            self.assertEqual(stops, [0])
        return obj

    def test_bad_values_name_the_key(self):
        self.check(b'{"soc_reserve_pct": 120}', "soc_reserve_pct: 120 is above the maximum 100")
        self.check(b'{"soc_reserve_pct": -1}', "below the minimum")
        self.check(b'{"soc_reserve_pct": 40.5}', "whole number")
        self.check(b'{"soc_reserve_pct": true}', "expected an integer")
        self.check(b'{"soc_reserve_pct": "40"}', "expected an integer")
        self.check(b'{"mode": "turbo"}', "mode: 'turbo' is not one of")
        self.check(b'{"mode": 1}', "is not one of")
        self.check(b'{"stop_now": 1}', "stop_now: expected true")

    def test_all_or_nothing(self):
        obj = self.check(b'{"id": 3, "mode": "off", "soc_max_pct": 500}', "soc_max_pct")
        self.assertEqual(obj["id"], 3)

    def test_cross_check_reserve_below_max(self):
        self.check(b'{"soc_reserve_pct": 95}', "must not exceed soc_max_pct (90)")
        self.check(b'{"soc_reserve_pct": 60, "soc_max_pct": 50}', "must not exceed")

    def test_safety_and_other_read_only_keys(self):
        for k in list(SAFETY)[:6]:
            obj = self.check(json.dumps({k: 1}).encode(), "safety parameter, read-only")
            self.assertTrue(k in obj["reason"])
        self.check(b'{"safety": {"reconnect_ms": 1000}}', "safety parameter, read-only")
        self.check(b'{"safety.reconnect_ms": 1000}', "safety parameter, read-only")
        self.check(b'{"host": "evil.example"}', "mqtt parameter, read-only")
        self.check(b'{"rate_burst": 50}', "commands parameter, read-only")

    def test_malformed_payloads(self):
        self.check(b"", "not valid JSON")
        self.check(b"{", "not valid JSON")
        self.check(b"\xff\xfe{}", "not UTF-8")
        self.check(b"[1, 2]", "expected a JSON object")
        self.check(b"{}", "no command keys")
        self.check(b'{"id": 5}', "no command keys")
        self.check(b'{"id": [1], "mode": "auto"}', "id: expected")
        self.check(b'{"id": true, "mode": "auto"}', "id: expected")
        self.check(b'{"bogus": 1}', "'bogus': unknown key; known: departure_min, departure_soc_pct, "
                   "grid_charge, mode, period_s")
        self.check(b'{"mode": "auto", "pad": "' + b"x" * 300 + b'"}', "longer than 256 bytes")
        self.check(None, "longer than 256 bytes")  # the client skipped an oversized message
        many = json.dumps({"k%d" % i: 1 for i in range(9)}).encode()
        self.check(many, "more than 8 keys")

    def test_retained_commands_are_ignored(self):
        c, _, _, _ = fresh()
        self.check(b'{"mode": "v1g"}', "retained command ignored", retained=True, c=c)
        self.check(b'{"stop_now": true}', "retained command ignored", retained=True, c=c)
        self.assertEqual(c.retained, 2)

    def test_reserve_floor_is_the_installers(self):
        """MQTT cannot drain the car: the reserve cannot go below control.soc_reserve_min_pct,
        and the floor itself is not writable over MQTT."""
        c, data, _, _ = fresh(burst=50)
        floor = data["control"]["soc_reserve_min_pct"]
        self.assertTrue(floor >= 10, floor)  # a real default, not 0
        self.check(b'{"soc_reserve_pct": 0}', "below the installer's floor %d" % floor, c=c)
        self.check(('{"soc_reserve_pct": %d}' % (floor - 1)).encode(), "installer", c=c)
        self.check(b'{"soc_reserve_min_pct": 0}', "installer setting, console or config file",
                   c=c)
        self.check(b'{"control.soc_reserve_min_pct": 0}', "installer setting", c=c)
        ok, obj = reply(c.handle(('{"soc_reserve_pct": %d}' % floor).encode(), 0))
        self.assertTrue(ok, obj)
        data["control"]["soc_reserve_min_pct"] = 5  # the installer lowers it (console)
        ok, obj = reply(c.handle(b'{"soc_reserve_pct": 5}', 0))
        self.assertTrue(ok, obj)

    def test_action_without_handler(self):
        c, _, _, _ = fresh(actions=False)
        self.check(b'{"stop_now": true}', "not supported", c=c)

    def test_whitelist_cannot_point_into_safety(self):
        data = config.defaults(SCHEMAS)
        with self.assertRaises(ValueError):
            Commands(data["commands"], SCHEMAS, data, None,
                     writable={"delay": "safety.reconnect_ms"})


class RateLimit(unittest.TestCase):
    def test_burst_then_one_per_interval_across_the_tick_wrap(self):
        c, _, _, _ = fresh(burst=3, interval_ms=1000)
        t = 0x3FFFFFFF - 500  # 500 ms before the 30-bit tick wraps
        res = [c.handle(b'{"mode": "auto"}', t)[0] for _ in range(5)]
        self.assertEqual(res, [True, True, True, False, False])
        _, obj = reply(c.handle(b'{"mode": "auto"}', t))
        self.assertTrue("rate limited" in obj["reason"])
        t = (t + 1000) & 0x3FFFFFFF  # across the wrap: one more allowed
        self.assertEqual([c.handle(b'{"mode": "auto"}', t)[0] for _ in range(2)], [True, False])
        t = (t + 60000) & 0x3FFFFFFF  # a long pause refills to the burst, not beyond
        self.assertEqual([c.handle(b'{"mode": "auto"}', t)[0] for _ in range(4)],
                         [True, True, True, False])


class StopBudget(unittest.TestCase):
    """ "Stop now" has its own budget: nothing else can use it up."""

    def test_junk_and_other_commands_never_block_a_stop(self):
        c, data, _, stops = fresh(burst=3, interval_ms=2000)
        t = 1000
        junk = (b"junk", b"\xff", b'{"mode": "turbo"}', b'{"mode": "auto"}', b"{}", None,
                b'{"stop_now": 1}', b'{"stop_now": true, "mode": "auto"}', b"x" * 300,
                b'["stop_now"]')
        for i in range(300):
            c.handle(junk[i % len(junk)], t)
        _, obj = reply(c.handle(b'{"mode": "auto"}', t))
        self.assertTrue("rate limited" in obj["reason"], obj)  # the general budget is empty
        n0 = stops[0]
        ok, obj = reply(c.handle(b'{"id": 9, "stop_now": true}', t))
        self.assertTrue(ok, obj)
        self.assertEqual((obj["id"], stops[0]), (9, n0 + 1))
        self.assertEqual(data["control"]["mode"], "off")

    def test_a_flood_of_stops_cannot_block_a_stop_that_matters(self):
        c, data, _, stops = fresh(burst=3, interval_ms=100000)
        t = 5
        res = [c.handle(b'{"stop_now": true}', t)[0] for _ in range(50)]
        self.assertEqual(res[:5], [True] * 5)  # stop_burst 5
        self.assertFalse(any(res[5:]))  # redundant stops: the car is stopped already
        _, obj = reply(c.handle(b'{"stop_now": true}', t))
        self.assertTrue("stop_now already in effect" in obj["reason"], obj)
        self.assertTrue(c.handle(b'{"mode": "auto"}', t)[0])  # someone resumes
        n0 = stops[0]
        self.assertTrue(c.handle(b'{"stop_now": true}', t)[0])  # and the stop is obeyed
        self.assertEqual((stops[0], data["control"]["mode"]), (n0 + 1, "off"))
        self.assertTrue(c.limited >= 45)


class Wrap(unittest.TestCase):
    """The budgets refill after any idle time (ESP32 ticks wrap at 2**30 ms, 12.4 days)."""

    def exhaust(self, c, t):
        while c.handle(b'{"mode": "auto"}', t)[0]:
            pass
        while c.handle(b'{"stop_now": true}', t)[0]:
            pass

    def test_refilled_after_a_week_idle(self):
        day = 86400000
        for idle in (7 * day, 10 * day, (1 << 29) + 1, (1 << 30) - 1):  # 6.2..12.4 days
            c, data, _, _ = fresh(burst=3, interval_ms=1000)
            t0 = 0x3FFFFFFF - 500
            self.exhaust(c, t0)
            t = (t0 + idle) & 0x3FFFFFFF
            data["control"]["mode"] = "off"  # the stop below has nothing left to change
            ok, obj = reply(c.handle(b'{"stop_now": true}', t))
            self.assertTrue(ok, (idle, obj))
            self.assertEqual([c.handle(b'{"mode": "auto"}', t)[0] for _ in range(4)],
                             [True, True, True, False], idle)

    def test_refilled_after_two_weeks_with_the_periodic_tick(self):
        c, _, _, _ = fresh(burst=3, interval_ms=1000)
        t = 0x3FFFFFFF - 500
        self.exhaust(c, t)
        for _ in range(14 * 24):  # telemetry calls tick() every period; here hourly
            t = (t + 3600000) & 0x3FFFFFFF
            c.tick(t)
        self.assertEqual([c.handle(b'{"mode": "auto"}', t)[0] for _ in range(4)],
                         [True, True, True, False])


# ---- fuzzing: payloads from a seeded generator, judged by an independent oracle ----
_KEYS = (["mode", "soc_reserve_pct", "soc_max_pct", "period_s", "stop_now", "id", "id",
          "safety", "safety.reconnect_ms", "host", "rate_burst", "bogus", "", "MODE", "mode "]
         + list(SAFETY))
_VALUES = (0, 1, 5, 10, 30, 50, 80, 90, 100, 101, -1, 3600, 3601, 10**12, -(10**12), 40.0,
           40.5, 1e300, -0.0, True, False, None, "pv", "v1g", "off", "charge", "turbo", "",
           "x" * 40, [], [1], {}, {"reconnect_ms": 1}, "40")


def _oracle(obj, data):
    """Independent verdict: is this parsed payload a valid command right now?"""
    if not isinstance(obj, dict):
        return False
    cid = obj.get("id")
    if cid is not None and not ((type(cid) is int and abs(cid) < 2**30)
                                or (type(cid) is str and len(cid) <= 32)):
        return False
    keys = [k for k in obj if k != "id"]
    if not keys or len(keys) > 8:
        return False
    res, mx = data["control"]["soc_reserve_pct"], data["control"]["soc_max_pct"]
    floor = data["control"].get("soc_reserve_min_pct", 0)
    for k in keys:
        v = obj[k]
        if k == "stop_now":
            if v is not True:
                return False
            continue
        target = commands.WRITABLE.get(k)
        if target is None:
            return False
        sec, key = target.split(".")
        _, lo, hi = SCHEMAS[sec][key]
        if type(lo) is tuple:
            if type(v) is not str or v not in lo:
                return False
            continue
        if type(v) is float:
            if math.isnan(v) or math.isinf(v) or v != int(v):
                return False
            v = int(v)
        if type(v) is not int or v < lo or v > hi:
            return False
        if k == "soc_reserve_pct":
            if v < floor:
                return False
            res = v
        elif k == "soc_max_pct":
            mx = v
    return res <= mx


_GOOD = {"mode": ("off", "pv", "v1g", "turbo"), "soc_reserve_pct": (0, 20, 45.0, 95, 101),
         "soc_max_pct": (10, 60, 85, 100, 9), "period_s": (1, 5, 60, 0), "stop_now": (True, 1),
         "id": (1, "x", [2])}


def _payload(rng):
    kind = rng.randint(0, 9)
    if kind >= 6:  # mostly well-formed commands, so that many are accepted
        obj = {}
        for _ in range(rng.randint(1, 3)):
            k = rng.choice(list(_GOOD))
            obj[k] = rng.choice(_GOOD[k])
        return json.dumps(obj).encode()
    if kind == 0:  # random bytes
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if kind == 1:
        return rng.choice((b"[1,2]", b"42", b'"mode"', b"null", b"true", b"{}", b"{,}",
                           b'{"mode":"pv",}', b"{'mode': 'pv'}", b'{"mode": NaN}'))
    obj = {}
    for _ in range(rng.randint(0, 4)):
        obj[rng.choice(_KEYS)] = rng.choice(_VALUES)
    b = json.dumps(obj).encode()
    if kind == 2 and b:  # truncated
        return b[:rng.randint(0, len(b) - 1)]
    if kind == 3 and b:  # one byte changed
        i = rng.randint(0, len(b) - 1)
        return b[:i] + bytes((rng.getrandbits(8),)) + b[i + 1:]
    return b


class Fuzz(unittest.TestCase):
    def test_10000_seeded_payloads(self):
        rng = random.Random(20240607) if hasattr(random, "Random") else random
        if rng is random:
            random.seed(20240607)
        c, data, _, _ = fresh(burst=5, interval_ms=100)
        sections = set()

        def apply(changes):  # applies like the config store; remembers only the sections
            for sec, key, v in changes:
                sections.add(sec)
                data[sec][key] = v

        c.apply = apply
        safety0 = json.dumps(data["safety"])
        frozen0 = json.dumps((data["mqtt"], data["commands"], data["telemetry"]["prefix"]))
        n_ok = n_bad = 0
        t = 0
        for i in range(10000):
            p = _payload(rng)
            try:
                expect = _oracle(json.loads(p.decode()), data) and len(p) <= 256
            except Exception:  # noqa: BLE001 - not UTF-8 or not JSON: must be rejected
                expect = False
            t = (t + 1000) & 0x3FFFFFFF
            ok, text = c.handle(p, t)
            r = json.loads(text)
            self.assertEqual(ok, r["result"] == "accepted", text)
            if ok != expect:
                self.fail("payload %d %r: handler %s, oracle %s: %s" % (i, p, ok, expect, text))
            if ok:
                n_ok += 1
            else:
                n_bad += 1
                self.assertTrue(isinstance(r.get("reason"), str) and len(r["reason"]) > 5, text)
            ctl = data["control"]
            self.assertTrue(ctl["soc_reserve_pct"] <= ctl["soc_max_pct"])
        self.assertEqual(json.dumps(data["safety"]), safety0, "a safety parameter changed")
        self.assertEqual(json.dumps((data["mqtt"], data["commands"],
                                     data["telemetry"]["prefix"])), frozen0)
        self.assertTrue(sections <= {"control", "telemetry"}, sections)
        print("fuzz: %d accepted, %d rejected" % (n_ok, n_bad))
        self.assertTrue(n_ok > 1000 and n_bad > 5000, (n_ok, n_bad))
        self.assertEqual(c.accepted, n_ok)
        self.assertEqual(c.rejected, n_bad)
