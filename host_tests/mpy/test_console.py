# Console commands as an installer types them (the pty test drives the real terminal).
# mpytest: heap=512k
# (the whole gateway is built here, as main.py builds it; on the unix port its bytecode
# sits in the heap, on the board it is frozen in flash)
import sys
import unittest

from gateway.clock import ManualClock
from gateway.ports.sim import SimBoard
from gateway.wiring import build

_DIR = "build/test-console-" + sys.implementation.name


def gateway(busy=False):
    """The gateway as main.py builds it, on a sim board with a manual clock."""
    import os

    for p in ("build", _DIR):
        try:
            os.mkdir(p)
        except OSError:
            pass
    for f in ("config.json", "config.json.bak", "config.json.tmp", "secrets.json"):
        try:
            os.remove(_DIR + "/" + f)
        except OSError:
            pass
    b = SimBoard({"name": "test", "port": "sim", "storage": _DIR})
    b.clock = ManualClock(1000)
    gw = build(b, _DIR + "/config.json", out=lambda s: None, console=True)
    gw.config.busy = lambda: busy
    gw.config.data["mqtt"]["password"] = "s3cret"
    m, ch = gw.meter, gw.charger
    m.valid, m.grid_w, m.v_mv, m.f_millihz = True, -850, 230412, 50012
    m.t_ms = 900
    ch.plugged, ch.soc_pct, ch.power_w = True, 64, 1500
    gw.permits.state = 3
    gw.setpoints.reason = 7
    return gw


def console(busy=False):
    return gateway(busy).console


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
        self.assertTrue("safety  island_backup (3)   grid unknown" in out, out)
        self.assertTrue("reason safety_blocked (7)" in out, out)
        self.assertTrue("mqtt    off" in out, out)
        con.ctx.lag.add(12)
        self.assertTrue("loop lag max 12 ms" in text(con.execute("status")))

    def test_no_bus_is_a_clear_error(self):
        con = console()  # this sim board has no RS-485 UART
        for cmd in ("status", "bus"):
            out = text(con.execute(cmd))
            self.assertTrue("bus     ERROR no RS-485 UART (board file has no uart 'rs485')"
                            in out, out)

    def test_meters_bus_safety(self):
        con = console()
        self.assertTrue("voltage 230.412 V   frequency 50.012 Hz" in text(con.execute("meters")))
        self.assertTrue("updated 100 ms ago" in text(con.execute("meters")))
        self.assertTrue("charger  online no" in text(con.execute("bus")))
        self.assertTrue("state island_backup (3)" in text(con.execute("safety")))
        self.assertEqual(con.errors, 0)

    def test_config_get_set_save(self):
        con = console()
        self.assertEqual(con.execute("config get control.mode"), ("control.mode = 'auto'",))
        self.assertEqual(con.execute("config get mqtt.password"), ("mqtt.password = ***",))
        self.assertTrue("mqtt.password = ***" in text(con.execute("config get")))
        self.assertTrue("s3cret" not in text(con.execute("config get mqtt")))
        out = text(con.execute("config set control.mode off"))
        self.assertEqual(out, "control.mode = 'off' (applied now; saved to flash within seconds)")
        out = text(con.execute("config set control.soc_reserve_pct 45"))
        self.assertEqual(out, "control.soc_reserve_pct = 45 (applied now; saved to flash"
                         " within seconds)")
        self.assertEqual(con.ctx.config.data["control"]["soc_reserve_pct"], 45)
        out = text(con.execute("config set control.period_ms 500"))
        self.assertEqual(out, "control.period_ms = 500 (applies at the next restart; saved to"
                         " flash within seconds)")
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
            ("config get nosuch", "error: nosuch: no such section; sections: app, bus, charger"),
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
        out = con.execute("log 1")
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].endswith("250 ms ago  E  modbus: charger timeout"), out[0])
