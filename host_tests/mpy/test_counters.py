# The energy counters and the log ring: integer-exact, and allocation-free per step.
import unittest

import micropython
from gateway.clock import ManualClock
from gateway.log import Log
from gateway.model import Counters


class Counting(unittest.TestCase):
    def test_energy_integration_in_whole_wh(self):
        n = Counters()
        for _ in range(3600):  # one hour at 1 s steps
            n.add_energy(1000, -2000, 3000, 1000)
        self.assertEqual((n.import_wh, n.export_wh, n.ev_in_wh, n.ev_out_wh, n.pv_wh),
                         (1000, 0, 0, 2000, 3000))
        for _ in range(36):  # -100 W for 36 s = 1 Wh of export
            n.add_energy(-100, 0, 0, 1000)
        self.assertEqual(n.export_wh, 1)
        n.add_energy(10**9, 0, 0, 10**9)  # clamped: 100 kW for 10 s
        self.assertEqual(n.import_wh, 1000 + 277)
        n.new_day(5)
        self.assertEqual((n.day, n.import_wh, n.export_wh), (5, 0, 0))

    def test_no_allocation_per_step(self):
        n = Counters()
        log = Log(4, ManualClock(5))
        msg = "bus timeout"
        micropython.heap_lock()
        try:
            for i in range(500):
                n.add_energy(1234 - i * 7, -900 + i, 2500, 200)
                log.add(2, msg)
        finally:
            micropython.heap_unlock()
        self.assertTrue(n.import_wh + n.export_wh > 0)
        self.assertEqual((log.count, log.total), (4, 500))


class Ring(unittest.TestCase):
    def test_log_keeps_the_newest(self):
        clk = ManualClock(100)
        log = Log(3, clk)
        for i in range(5):
            clk.advance(10)
            log.add(3 if i == 3 else 1, "m%d" % i)
        self.assertEqual(list(log.entries()), [(130, "I", "m2"), (140, "E", "m3"),
                                               (150, "I", "m4")])
        self.assertEqual(list(log.entries(1)), [(150, "I", "m4")])
        self.assertEqual((log.errors, log.last_error), (1, "m3"))
