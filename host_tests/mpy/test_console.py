# Console commands as an installer types them (the pty test drives the real terminal).
import sys
import unittest

from gateway.clock import ManualClock
from gateway.config import Config
from gateway.console import Console
from gateway.log import Log
from gateway.model import Charger, Counters, Inverter, Meter, Permits, Setpoints

SCHEMAS = {
    "control": {"mode": ("pv", ("off", "pv", "v2h"), None), "soc_reserve_pct": (30, 0, 100)},
    "mqtt": {"host": ("", None, None), "password": ("", None, None)},
    "telemetry": {"period_s": (5, 1, 3600)},
    "commands": {"rate_burst": (5, 1, 50)},
}
_DIR = "build/test-console-" + sys.implementation.name


class Ctx:
    pass


def console(busy=False):
    import os

    for p in ("build", _DIR):
        try:
            os.mkdir(p)
        except OSError:
            pass
    c = Ctx()
    c.clock = ManualClock(1000)
    c.log = Log(8, c.clock)
    c.config = Config(SCHEMAS, _DIR + "/config.json", _DIR + "/secrets.json", c.log,
                      busy=lambda: busy, live={"control": ("mode",)})
    c.config.data["mqtt"]["password"] = "s3cret"
    c.meter, c.charger, c.inverter = Meter(), Charger(), Inverter()
    c.permits, c.setpoints, c.counters = Permits(), Setpoints(), Counters()
    c.meter.valid, c.meter.grid_w, c.meter.v_mv, c.meter.f_mhz = True, -850, 230412, 50012
    c.meter.t_ms = 900
    c.charger.plugged, c.charger.soc_pct, c.charger.power_w = True, 64, 1500
    c.permits.state = 3
    c.names = {"safety": ("boot", "normal", "blocked", "island_backup")}
    return Console(c)


def text(lines):
    return "\n".join(lines)


class Commands(unittest.TestCase):
    def test_help_and_status(self):
        con = console()
        out = text(con.execute("help"))
        for cmd in ("status", "meters", "bus", "safety", "config get", "config set",
                    "config save", "log"):
            self.assertTrue(cmd in out, cmd)
        out = text(con.execute("  STATUS  "))
        self.assertTrue("grid      -850 W" in out, out)
        self.assertTrue("soc  64 %   plugged yes" in out, out)
        self.assertTrue("safety  island_backup (3)" in out, out)
        self.assertTrue("mqtt    off" in out, out)
        if sys.implementation.name != "micropython":  # reloading from source fragments
            con.unload()  # the 110 KB test heap; on the board it loads .mpy
            self.assertTrue("gateway.consolecmd" not in sys.modules, "unload() kept it")

    def test_meters_bus_safety(self):
        con = console()
        self.assertTrue("voltage 230.412 V   frequency 50.012 Hz" in text(con.execute("meters")))
        self.assertTrue("updated 100 ms ago" in text(con.execute("meters")))
        self.assertTrue("charger  online no" in text(con.execute("bus")))
        self.assertTrue("state island_backup (3)" in text(con.execute("safety")))
        self.assertEqual(con.errors, 0)

    def test_config_get_set_save(self):
        con = console()
        self.assertEqual(con.execute("config get control.mode"), ("control.mode = 'pv'",))
        self.assertEqual(con.execute("config get mqtt.password"), ("mqtt.password = ***",))
        self.assertTrue("mqtt.password = ***" in text(con.execute("config get")))
        self.assertTrue("s3cret" not in text(con.execute("config get mqtt")))
        out = text(con.execute("config set control.mode off"))
        self.assertEqual(out, "control.mode = 'off' (applied now; saved to flash within seconds)")
        out = text(con.execute("config set control.soc_reserve_pct 45"))  # not LIVE here
        self.assertEqual(out, "control.soc_reserve_pct = 45 (applies at the next restart;"
                         " saved to flash within seconds)")
        self.assertEqual(con.ctx.config.data["control"]["soc_reserve_pct"], 45)
        self.assertEqual(text(con.execute("config save")), "saved to %s/config.json" % _DIR)
        self.assertEqual(con.errors, 0)

    def test_save_deferred_while_exporting(self):
        con = console(busy=True)
        con.execute("config set control.mode off")
        self.assertTrue(text(con.execute("config save")).startswith("deferred: island"))

    def test_bad_input_gets_a_clear_message(self):
        con = console()
        cases = (
            ("bogus", "error: unknown command 'bogus'; type 'help' for the list"),
            ("config set control.soc_reserve_pct 500",
             "error: control.soc_reserve_pct: 500 is above the maximum 100"),
            ("config set control.soc_reserve_pct lots",
             "error: control.soc_reserve_pct: expected an integer, got 'lots'"),
            ("config set control.mode turbo", "error: control.mode: 'turbo' is not one of"),
            ("config set nope.x 1", "error: nope.x: no such setting"),
            ("config set mqtt.password x", "error: mqtt.password: secret"),
            ("config get nosuch", "error: nosuch: no such section; sections: commands"),
            ("config frobnicate", "usage: config get"),
            ("log many", "error: log: expected a number of lines"),
            ("log 0", "error: log: number of lines must be 1..200"),
        )
        for line, msg in cases:
            out = text(con.execute(line))
            self.assertTrue(out.startswith(msg), (line, out))
        self.assertEqual(con.ctx.config.data["control"]["soc_reserve_pct"], 30)
        self.assertEqual(con.execute(""), ())

    def test_log_lines(self):
        con = console()
        con.ctx.log.add(3, "modbus: charger timeout")
        con.ctx.clock.advance(250)
        out = con.execute("log 5")
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].endswith("250 ms ago  E  modbus: charger timeout"), out[0])
