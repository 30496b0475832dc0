# Every JSON text the gateway sends is valid JSON, whatever text reached it: hostile
# strings (quotes, backslashes, control characters, non-ASCII, very long) in a crafted
# tariff, the config error, the state names, the device name and command ids are
# parsed back by the runtime's JSON parser and compared with what went in. On CPython
# the parser is strict; on MicroPython `strict()` also refuses raw control characters,
# which its lenient parser would take.
# mpytest: heap=512k
# mpytest: esp32like-heap=200k (2000-character hostile strings and their JSON copies beside a whole gateway)
# (telemetry, commands, plan, tariff and discovery together; see test_plan_wiring.py)
import json
import unittest

from gateway import discovery, telemetry
from gateway.tariff import EPOCH_2000
from gateway.util import Topics
from test_telemetry import gateway

HOSTILE = (
    'quote " and \\" escaped',
    "back\\slash\\",
    "new\nline\r\ttab\x00nul\x1fus\x7fdel",
    "unicode é ü 漢字 \u2028 \U0001f600",
    '"}, "export_ok": true, "x": {"',
    "\\u0041 not an escape",
    "x" * 2000,
)


def strict(test, text):
    """Parse JSON text; fail on raw control characters (invalid in JSON strings)."""
    for ch in text:
        test.assertTrue(ord(ch) >= 0x20, "raw control character %r in %r" % (ch, text[:80]))
    return json.loads(text)


def sched(extra):
    d = {"start": EPOCH_2000 + 9000 * 86400, "interval_min": 60, "import": [250] * 24,
         "export": [90] * 24}
    d.update(extra)
    return json.dumps(d)


class StateJson(unittest.TestCase):
    def setUp(self):
        c = self.c = gateway()  # built as main.py builds it, the MQTT client a stand-in
        self.t = c.telemetry

    def test_a_crafted_tariff_key_leaves_the_state_valid(self):
        """Issue 15 item 6: a retained tariff with a key holding \\ or a newline."""
        t, c = self.t, self.c
        for s in HOSTILE:
            t.on_message("energygw/gwA/tariff", sched({s: 1}).encode(), True)
            err = c.tariff.error
            self.assertTrue(err and "unknown key" in err, err)
            state = strict(self, t.state_json(0))
            self.assertEqual(state["plan"]["tariff_err"], err[:60])
            self.assertEqual(state["plan"]["slots"], 0)

    def test_clear_resets_the_tariff_error(self):
        t, c = self.t, self.c
        t.on_message("energygw/gwA/tariff", sched({"bad\\key": 1}).encode(), True)
        self.assertTrue(c.tariff.error)
        t.on_message("energygw/gwA/tariff", b"", True)
        self.assertIsNone(c.tariff.error)
        self.assertIsNone(strict(self, t.state_json(0))["plan"]["tariff_err"])

    def test_hostile_text_in_every_string_field(self):
        t, c = self.t, self.c
        for s in HOSTILE:
            c.config.error = s
            c.config.data["control"]["mode"] = s
            v = t.ctx  # the View telemetry reads
            v.state_names, v.safety_reasons, v.control_reasons = {0: s}, {0: s}, {0: s}
            v.permits.state = v.permits.reason = v.setpoints.reason = 0
            v.bus_error = s
            c.tariff.error = s
            state = strict(self, t.state_json(0))
            self.assertEqual((state["cfg_err"], state["bus_err"]), (s[:80], s))
            self.assertEqual((state["mode"], state["safety"], state["safety_reason"],
                              state["reason"]), (s, s, s, s))
            self.assertEqual(state["plan"]["tariff_err"], s[:60])
            self.assertEqual(len(state), len(telemetry._KEYS))


class OtherJson(unittest.TestCase):
    def test_discovery_with_a_hostile_device_name(self):
        tp = Topics("energygw", "gwA", "homeassistant")
        for s in HOSTILE:
            ids = discovery.Ids(tp, "gwA", s, s)
            n = 0
            for _topic, payload in discovery.messages(ids, telemetry_control(), 5):
                d = strict(self, payload)
                self.assertEqual(d["device"]["name"], s)
                n += 1
            self.assertTrue(n > 30)

    def test_command_replies_echo_hostile_ids_and_keys_as_valid_json(self):
        c = gateway()
        c.config.data["commands"]["rate_burst"] = 50
        t = c.telemetry
        for s in HOSTILE:
            for obj in ({"id": s[:32], "mode": "off"}, {s[:100]: 1}, {"id": 1, "mode": s}):
                t.on_message("energygw/gwA/cmd", json.dumps(obj).encode(), False)
                r = strict(self, t.client.posted[-1][1])
                self.assertTrue(r["result"] in ("accepted", "rejected"), r)
                if "id" in obj and r.get("id") is not None:
                    self.assertEqual(r["id"], obj["id"])


def telemetry_control():
    from gateway.control_cfg import SCHEMA

    return SCHEMA
