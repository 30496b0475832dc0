# Sessions (contactor cycles): start/stop delays, min on/off times, the DC session kept
# through 0 W between charging and discharging, the 2**30 tick wrap; and the proof that a
# control step allocates nothing (heap_lock on the unix port).
import unittest

from ctl_rig import Rig
from gateway import control as C
from gateway.clock import TICKS_MAX

CFG = {"start_delay_ms": 10000, "stop_delay_ms": 60000, "min_on_ms": 120000,
       "min_off_ms": 30000}


class Sessions(unittest.TestCase):
    def test_start_waits_for_the_delay(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(49)  # 9.8 s of surplus
        self.assertFalse(r.out.ev_session)
        self.assertEqual(r.out.reason, C.REASON_WAIT_START)
        self.assertEqual(r.out.ev_w, 0)
        r.step(2)
        self.assertTrue(r.out.ev_session)
        self.assertEqual(r.c.starts, 1)

    def test_short_surplus_does_not_start(self):
        r = Rig(CFG)
        for _ in range(10):
            r.net = -2000
            r.step(30)  # 6 s on
            r.net = 50
            r.step(30)  # 6 s nothing to do
        self.assertEqual(r.c.starts, 0)

    def test_kept_through_zero_between_charge_and_discharge(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(100)
        self.assertTrue(r.ev > 1900)
        for net in (2000, -1500, 0, 800, -300, 10, 2500, -2500):
            r.net = net
            r.step(100)
            if net >= 200 or net <= -200:
                self.assertTrue(r.ev != 0, (net, r.ev))
        self.assertEqual(r.c.starts, 1, "charge <-> discharge never restarts the session")
        self.assertTrue(r.out.ev_session)

    def test_stop_after_idle_delay_and_min_on(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(60)  # opens at 10 s
        r.net = 50  # nothing to do from ~12 s on
        r.step(5 * 100)  # 112 s: stop delay passed, min on (120 s) not yet
        self.assertTrue(r.out.ev_session)
        r.step(5 * 20)
        self.assertFalse(r.out.ev_session)
        self.assertEqual(r.out.reason, C.REASON_NO_SURPLUS)

    def test_min_off_before_restart(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(60)
        r.ch.plugged = False  # unplugged: closes at once
        r.step(1)
        self.assertFalse(r.out.ev_session)
        r.ch.plugged = True
        r.step(5 * 25)  # 25 s: start delay passed, min off (30 s) not yet
        self.assertFalse(r.out.ev_session)
        self.assertEqual(r.out.reason, C.REASON_WAIT_START)
        r.step(5 * 6)
        self.assertTrue(r.out.ev_session)
        self.assertEqual(r.c.starts, 2)

    def test_session_ended_by_the_car_is_restarted(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(60)
        r.c.step(r.t, r.m, r.ch, r.inv, r.pm, r.out)
        r.ch.session = False  # the car ends it
        r.ev = 0
        r.c.step(r.t + 200, r.m, r.ch, r.inv, r.pm, r.out)
        self.assertFalse(r.c.session)
        r.t += 400
        r.step(5 * 45)
        self.assertTrue(r.out.ev_session)
        self.assertEqual(r.c.starts, 2)

    def test_across_the_tick_wrap(self):
        r = Rig(CFG, t0=TICKS_MAX - 5000)  # wraps 5 s in
        r.net = -2000
        r.step(49)
        self.assertFalse(r.out.ev_session)
        r.step(2)
        self.assertTrue(r.out.ev_session)
        self.assertTrue(r.t < 100000, "the tick wrapped")
        r.net = 50
        r.step(5 * 140)
        self.assertFalse(r.out.ev_session)

    def test_writes_counted_only_on_change(self):
        r = Rig(CFG)
        r.net = -2000
        r.step(100)
        w = r.c.writes
        r.step(100)
        self.assertEqual(r.c.writes, w)


class NoAllocation(unittest.TestCase):
    def _run(self, r, nets, n):
        import micropython

        micropython.heap_lock()
        try:
            for net in nets:
                r.net = net
                r.step(n)
        finally:
            micropython.heap_unlock()

    def test_step_allocates_nothing(self):
        # every branch: waiting, charging, ramps, floor, V2H, deadband, limits, permits,
        # stale data, island backup, unplugged, home battery share
        r = Rig(CFG, t0=TICKS_MAX - 20000)
        r.inv.has_battery = True
        r.inv.batt_soc_pct = 50
        nets = (-3000, -3010, -100, 160, 2000, 40, -11000, 9000, 0)
        self._run(r, nets, 60)
        r.m.valid = False
        self._run(r, (100,), 5)
        r.m.valid = True
        r.pm.island = True
        r.pm.export = False
        self._run(r, (500,), 5)
        r.pm.island = False
        r.pm.export = True
        r.ch.plugged = False
        self._run(r, (-500, 500), 5)
        r.ch.plugged = True
        r.c.set_mode("off")
        self._run(r, (-500,), 5)
        self.assertTrue(r.c.writes > 10)
        self.assertTrue(abs(r.c.i_q) < (1 << 30))

    def test_step_allocates_nothing_after_live_settings(self):
        # every LIVE key changed through apply_setting (the console / MQTT path), then
        # the same branches: the step reads small ints and bools only
        from gateway.control_cfg import LIVE, SCHEMA

        r = Rig(CFG, t0=TICKS_MAX - 20000)
        r.inv.has_battery = True
        r.inv.batt_soc_pct = 50
        for k in LIVE:
            d, lo, hi = SCHEMA[k]
            if isinstance(lo, tuple):
                v = lo[-1] if k != "mode" else "auto"
            elif d is True or d is False:
                v = not d
            else:
                v = d + 1 if d + 1 <= hi else d - 1
            if k == "soc_reserve_pct":
                v = 20
            if k == "fuse_a":
                v = 25
            r.c.apply_setting(k, v)
        self.assertEqual(r.c.fuse_ma, 25000 - SCHEMA["fuse_margin_ma"][0] - 1)
        self._run(r, (-3000, 160, 2000, -11000, 9000, 0), 40)
        self.assertTrue(r.c.writes > 5)

