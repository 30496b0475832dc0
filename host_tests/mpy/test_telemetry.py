# Telemetry: the state JSON read from the shared records, the topics, and commands
# routed from the MQTT callback into the live config. A stand-in client records
# what would be queued (the live tests use the real client against mosquitto).
import json
import unittest

from gateway import commands, telemetry
from gateway.clock import ManualClock
from gateway.config import Config
from gateway.log import Log
from gateway.model import Charger, Counters, Inverter, Meter, Permits, Setpoints

CONTROL = {
    "mode": ("pv", ("off", "pv", "pv_v2h", "v2h", "charge"), None),
    "soc_reserve_pct": (30, 0, 100),
    "soc_max_pct": (90, 10, 100),
}
SCHEMAS = {"telemetry": telemetry.SCHEMA, "commands": commands.SCHEMA, "control": CONTROL}


class Client:
    connects = 0

    def __init__(self):
        self.posted = []
        self.subs = []

    def post(self, topic, msg, retain=False, qos=0):
        self.posted.append((topic, msg, retain, qos))

    def subscribe(self, topic, qos=0):
        self.subs.append((topic, qos))


class Ctx:
    pass


def make_ctx(**tcfg):
    c = Ctx()
    c.clock = ManualClock(0x3FFFFFFF - 2000)  # crosses the tick wrap during the test
    c.log = Log(8, c.clock)
    c.config = Config(SCHEMAS, "build/none.json", "build/none-secrets.json", c.log,
                      live={"control": tuple(CONTROL), "telemetry": telemetry.LIVE})
    c.config.data["telemetry"].update(tcfg)
    c.meter, c.charger, c.inverter = Meter(), Charger(), Inverter()
    c.permits, c.setpoints, c.counters = Permits(), Setpoints(), Counters()
    return c


class State(unittest.TestCase):
    def test_state_json_reads_the_records(self):
        c = make_ctx()
        m, ch, inv, p, sp = c.meter, c.charger, c.inverter, c.permits, c.setpoints
        m.valid, m.grid_w, m.v_mv, m.f_mhz, m.t_ms = True, -1234, 231500, 49980, c.clock.t
        ch.plugged, ch.soc_pct, ch.power_w = True, 57, -1500
        inv.pv_w, inv.batt_soc_pct = 4200, 80
        p.state, p.reason, p.island, p.export = 3, 3, True, False
        sp.ev_w, sp.reason = -1500, 7
        c.counters.mqtt_drops = 4
        names = {"safety": ("boot", "normal", "blocked", "island_backup"),
                 "reason": {7: "reserve reached"}}
        t = telemetry.Telemetry(c, "gwA", "1.2", names=names, client=Client())
        c.clock.advance(2500)
        t.tick(c.clock.now_ms())
        topic, item, retain, qos = t.client.posted[-1]
        self.assertEqual((topic, retain, qos), ("energygw/gwA/state", False, 0))
        self.assertEqual(t.client.subs, [("energygw/gwA/cmd", 1), ("homeassistant/status", 0)])
        s = json.loads(item)
        for k, v in (("grid_w", -1234), ("v_mv", 231500), ("ev_w", -1500), ("ev_set_w", -1500),
                     ("ev_soc", 57), ("plugged", True), ("pv_w", 4200), ("batt_soc", 80),
                     ("island", True), ("export_ok", False), ("safety", "island_backup"),
                     ("safety_code", 3), ("reason", "reserve reached"), ("reason_code", 7),
                     ("mode", "pv"), ("soc_reserve_pct", 30), ("mqtt_drops", 4),
                     ("meter_age_ms", 2500), ("up_s", 2), ("cfg_err", None)):
            self.assertEqual(s[k], v, k)
        self.assertEqual(len(s), len(telemetry._KEYS))

    def test_grid_present_prefers_the_safety_verdict(self):
        c = make_ctx()
        t = telemetry.Telemetry(c, "gwA", client=Client())
        s = json.loads(t.state_json(c.clock.now_ms()))
        self.assertIsNone(s["grid_up"])  # no valid meter window: unknown
        c.meter.valid, c.meter.v_mv = True, 230000
        self.assertIs(json.loads(t.state_json(0))["grid_up"], True)
        c.permits.grid_ok = False
        self.assertIs(json.loads(t.state_json(0))["grid_up"], False)

    def test_config_error_is_published(self):
        c = make_ctx()
        c.config.error = 'config.json: control.mode: "x" is not one of off, pv'
        s = json.loads(telemetry.Telemetry(c, "gwA", client=Client()).state_json(0))
        self.assertTrue(s["cfg_err"].startswith("config.json: control.mode"))

    def test_ids_are_checked(self):
        for bad in ("", "a/b", "a b", "a+", "ü"):
            with self.assertRaises(ValueError):
                telemetry.Topics("energygw", bad, "homeassistant")
        tp = telemetry.Topics("home/energy", "gw-1_a", "homeassistant")
        self.assertEqual((tp.state, tp.cmd, tp.reply, tp.status, tp.ha_status),
                         ("home/energy/gw-1_a/state", "home/energy/gw-1_a/cmd",
                          "home/energy/gw-1_a/cmd/reply", "home/energy/gw-1_a/status",
                          "homeassistant/status"))

    def test_commands_arrive_through_the_client_callback(self):
        c = make_ctx()
        t = telemetry.Telemetry(c, "gwA", actions={"stop_now": lambda: None}, client=Client())
        t.on_message("energygw/gwA/cmd", b'{"id": 1, "mode": "v2h"}', False)
        self.assertEqual(c.config.data["control"]["mode"], "v2h")
        self.assertTrue(c.config.dirty)
        topic, item = t.client.posted[-1][:2]
        self.assertEqual(topic, "energygw/gwA/cmd/reply")
        self.assertEqual(json.loads(item), {"id": 1, "result": "accepted",
                                            "applied": {"mode": "v2h"}, "at_restart": []})
        t.on_message("energygw/gwA/cmd", b'{"reconnect_ms": 1}', False)
        self.assertEqual(c.log.last_error, None)
        self.assertTrue("unknown key" in c.log._msg[(c.log._head - 1) % c.log.size])
