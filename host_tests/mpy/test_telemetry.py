# Telemetry: the state JSON read from the shared records, the topics, and commands
# routed from the MQTT callback into the live config. A stand-in client records
# what would be queued (the live tests use the real client against mosquitto).
# mpytest: heap=512k
# (the whole gateway is built here, as main.py builds it)
import json
import unittest

from gateway import telemetry
from gateway.clock import ManualClock
from gateway.ports.sim import SimBoard
from gateway.wiring import build


class Client:
    connects = 0
    connected = False
    cfg = {"host": "127.0.0.1", "port": 1883}

    def __init__(self):
        self.posted = []
        self.subs = []

    def post(self, topic, msg, retain=False, qos=0):
        self.posted.append((topic, msg, retain, qos))

    def subscribe(self, topic, qos=0):
        self.subs.append((topic, qos))


def gateway(console=False, **tcfg):
    """The gateway as main.py builds it (defaults, node "gwA"), its MQTT client a stand-in."""
    b = SimBoard({"name": "gwA", "port": "sim"})
    b.clock = ManualClock(0x3FFFFFFF - 2000)  # crosses the tick wrap during the test
    from gateway import wiring

    cfg = wiring.build_config(b, None, path=None)
    cfg.data["telemetry"].update(tcfg)
    return build(b, cfg, out=lambda s: None, client=Client(), console=console)


class State(unittest.TestCase):
    def test_state_json_reads_the_records(self):
        gw = gateway()
        t = gw.telemetry
        clock = gw.clock
        m, ch, inv, p, sp = gw.meter, gw.charger, gw.inverter, gw.permits, gw.setpoints
        m.valid, m.grid_w, m.v_mv, m.f_millihz, m.t_ms = True, -1234, 231500, 49980, clock.t
        ch.plugged, ch.soc_pct, ch.power_w = True, 57, -1500
        inv.pv_w, inv.batt_soc_pct = 4200, 80
        p.state, p.reason, p.island, p.export = 3, 3, True, False
        sp.ev_w, sp.reason = -1500, 10
        gw.counters.mqtt_drops = 4
        clock.advance(2500)
        t.tick(clock.now_ms())
        topic, item, retain, qos = t.client.posted[-1]
        self.assertEqual((topic, retain, qos), ("energygw/gwA/state", False, 0))
        self.assertEqual(t.client.subs, [("energygw/gwA/cmd", 1), ("energygw/gwA/tariff", 1),
                                         ("homeassistant/status", 0)])
        s = json.loads(item)
        for k, v in (("grid_w", -1234), ("v_mv", 231500), ("ev_w", -1500), ("ev_set_w", -1500),
                     ("ev_soc", 57), ("plugged", True), ("pv_w", 4200), ("batt_soc", 80),
                     ("island", True), ("export_ok", False), ("safety", "island_backup"),
                     ("safety_code", 3), ("safety_reason", "island"), ("reason", "backup"),
                     ("reason_code", 10), ("mode", "auto"), ("soc_reserve_pct", 30),
                     ("mqtt_drops", 4), ("meter_age_ms", 2500), ("up_s", 2), ("cfg_err", None)):
            self.assertEqual(s[k], v, k)
        self.assertEqual(len(s), len(telemetry._KEYS))

    def test_grid_up_is_the_safety_judgement(self):
        gw = gateway()
        t = gw.telemetry
        clock = gw.clock

        def grid_up(contact, v_mv=230000, valid=True):
            m, ch, inv = gw.meter, gw.charger, gw.inverter
            clock.advance(20)
            now = clock.now_ms()
            m.valid, m.v_mv, m.f_millihz, m.t_ms = valid, v_mv, 50000, now
            ch.online = inv.online = True
            ch.t_ms = inv.t_ms = now
            gw.safety.tick(now, contact)
            return json.loads(t.state_json(now))["grid_up"]

        self.assertIsNone(json.loads(t.state_json(clock.now_ms()))["grid_up"])  # no tick yet
        self.assertIs(grid_up(0), True)  # contact at GRID, voltage and frequency in window
        self.assertIs(grid_up(1), False)  # the transfer switch went to ISLAND
        self.assertIs(grid_up(0, v_mv=20000), False)  # voltage lost
        self.assertIsNone(grid_up(0, valid=False))  # no usable meter window: unknown
        gw.inverter.grid_ok = False
        self.assertIs(grid_up(0), False)  # the inverter reports no grid

    def test_lag_and_bus_come_from_the_gateway(self):
        gw = gateway()
        gw.lag.add(7)
        s = json.loads(gw.telemetry.state_json(gw.clock.now_ms()))
        self.assertEqual((s["lag_ms"], s["lag_max_ms"]), (7, 7))
        gw.lag.add(3)
        s = json.loads(gw.telemetry.state_json(gw.clock.now_ms()))
        self.assertEqual((s["lag_ms"], s["lag_max_ms"]), (3, 7))  # this period, since boot
        self.assertIsNone(s["bus"])  # this sim board has no RS-485 UART: no bus, and why
        self.assertTrue(s["bus_err"].startswith("no RS-485 UART"), s["bus_err"])

    def test_config_error_is_published(self):
        gw = gateway()
        gw.config.error = 'config.json: control.mode: "x" is not one of auto, v1g, off'
        s = json.loads(gw.telemetry.state_json(0))
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
        gw = gateway()
        t = gw.telemetry
        t.on_message("energygw/gwA/cmd", b'{"id": 1, "mode": "v1g"}', False)
        self.assertEqual(gw.config.data["control"]["mode"], "v1g")
        self.assertEqual(gw.control.mode, 1)  # MODE_V1G: applied live
        self.assertTrue(gw.config.dirty)
        topic, item = t.client.posted[-1][:2]
        self.assertEqual(topic, "energygw/gwA/cmd/reply")
        self.assertEqual(json.loads(item), {"id": 1, "result": "accepted",
                                            "applied": {"mode": "v1g"}, "at_restart": []})
        before = gw.config.data["safety"]["reconnect_ms"]
        t.on_message("energygw/gwA/cmd", b'{"reconnect_ms": 1}', False)
        self.assertEqual(gw.config.data["safety"]["reconnect_ms"], before)
        reply = json.loads(t.client.posted[-1][1])
        self.assertEqual(reply["result"], "rejected")

    def test_stop_now_turns_control_off(self):
        gw = gateway()
        gw.telemetry.on_message("energygw/gwA/cmd", b'{"stop_now": true}', False)
        self.assertEqual(gw.config.data["control"]["mode"], "off")
