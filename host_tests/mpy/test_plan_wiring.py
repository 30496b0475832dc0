# The plan in the running services: the retained tariff topic (a bad schedule is
# rejected whole and logged, the old one kept; an empty payload clears it), the plan
# object in the state JSON, the departure command through the whitelist, the console's
# plan line.
# mpytest: heap=512k
# (telemetry, commands, plan, tariff and the console together: on the unix port their
# bytecode is compiled into the heap, on the board it is frozen in flash; 110k left 2 KB)
import gc
import json
import unittest

from gateway import commands, tariff, wiring
from gateway.tariff import EPOCH_2000
from test_telemetry import gateway

DAY = EPOCH_2000 + 9000 * 86400
SCHED = json.dumps({"start": DAY, "interval_min": 60, "import": [250] * 24,
                    "export": [90] * 24})


class TariffTopic(unittest.TestCase):
    def test_retained_schedule_loads_and_bad_one_is_rejected_whole(self):
        c = gateway()
        t = c.telemetry
        self.assertIn(("energygw/gwA/tariff", 1), t.client.subs)
        t.on_message("energygw/gwA/tariff", SCHED.encode(), True)
        self.assertEqual(c.tariff.n, 24)
        bad = SCHED.replace('"import": [250', '"import": [0.25')
        t.on_message("energygw/gwA/tariff", bad.encode(), True)
        self.assertEqual(c.tariff.n, 24)
        self.assertEqual(c.tariff.imp[0], 250)
        self.assertIn("tariff.import[0]: expected an integer", c.tariff.error)
        self.assertIn("tariff rejected", next(e[2] for e in c.log.entries(1)))
        t.on_message("energygw/gwA/tariff", b"", True)
        self.assertEqual(c.tariff.n, 0)

    def test_oversized_schedule_is_rejected_and_the_old_one_kept(self):
        """Issue 15 item 7: the client hands a too-large message over as None."""
        c = gateway()
        t = c.telemetry
        t.on_message("energygw/gwA/tariff", SCHED.encode(), True)
        seq = c.tariff.seq
        t.on_message("energygw/gwA/tariff", None, True)
        self.assertEqual((c.tariff.n, c.tariff.seq), (24, seq))
        self.assertIn("tariff: longer than %d bytes" % tariff.MAX_TEXT, c.tariff.error)
        self.assertIn("tariff rejected", next(e[2] for e in c.log.entries(1)))
        big = SCHED[:-1] + " " * (tariff.MAX_TEXT - len(SCHED) + 1) + "}"
        t.on_message("energygw/gwA/tariff", big.encode(), True)
        self.assertEqual(c.tariff.n, 24)
        s = json.loads(t.state_json(0))["plan"]
        self.assertEqual(s["slots"], 24)
        self.assertIn("longer than", s["tariff_err"])

    def test_the_widest_192_slot_schedule_fits(self):
        wide = json.dumps({"start": DAY, "interval_min": 15, "import": [-5000] * 192,
                           "export": [-5000] * 192})
        self.assertTrue(len(wide) <= tariff.MAX_TEXT, len(wide))
        c = gateway()
        t = c.telemetry
        t.on_message("energygw/gwA/tariff", wide.encode(), True)
        self.assertEqual((c.tariff.n, c.tariff.error), (192, None))

    def test_state_has_the_plan(self):
        c = gateway(console=True)
        c.charger.online = c.charger.plugged = True
        c.charger.soc_pct = 60
        c.tariff.load_json(SCHED)
        c.planner.update(DAY - EPOCH_2000 + 60, 60, c.control, c.meter, c.charger, c.inverter)
        t = c.telemetry
        t.tick(c.clock.now_ms())
        s = json.loads(t.client.posted[-1][1])
        p = s["plan"]
        self.assertEqual(p["price"], 250)
        self.assertEqual(p["slots"], 24)
        self.assertTrue(p["backup_min"] > 0)
        for k in ("force_w", "floor_pct", "v2h", "need_wh", "thru_wh", "dep_in_s",
                  "tariff_err"):
            self.assertIn(k, p)
        del t, s, p
        gc.collect()  # consolecmd compiles from source here (frozen on the board)
        lines = c.console.execute("status")  # the console's view of the same gateway
        self.assertIn("backup", lines[-1])
        self.assertIn("price 250 mEUR/kWh", lines[-1])


class DepartureCommand(unittest.TestCase):
    def test_departure_is_validated(self):
        schemas = wiring.schemas()
        got = []
        data = {"plan": {"departure_min": -1, "departure_soc_pct": 0}}
        cmd = commands.Commands(commands.SCHEMA and {"rate_burst": 5, "rate_interval_ms": 100},
                                schemas, data, got.extend)
        ok, reply = cmd.handle(b'{"departure_min": 450, "departure_soc_pct": 80}', 0)
        self.assertTrue(ok, reply)
        self.assertEqual(sorted(got), [("plan", "departure_min", 450),
                                       ("plan", "departure_soc_pct", 80)])
        ok, reply = cmd.handle(b'{"departure_min": 1440}', 1000)
        self.assertFalse(ok)
        self.assertIn("departure_min: 1440 is above the maximum 1439", reply)
        ok, reply = cmd.handle(b'{"grid_charge": "yes"}', 2000)
        self.assertFalse(ok)
        self.assertIn("grid_charge: expected true or false", reply)


if __name__ == "__main__":
    unittest.main()
