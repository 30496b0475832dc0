# The safety state machine over time: boot blocked, release only after the
# whole reconnection delay, excursions restart it, ramp, backup only on a
# confirmed island, stop escalation, latched faults, and the 2**30 tick wrap.
import unittest

from gateway.clock import TICKS_MAX, ticks_add
from gateway.safety import (
    CONTACT_GRID,
    CONTACT_ISLAND,
    CONTACT_UNKNOWN,
    REASON_CONTACT,
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_STOP,
    REASON_FAULT_TASK,
    REASON_ISLAND,
    REASON_OK,
    REASON_RAMP,
    REASON_STOP_PENDING,
    REASON_TICK_GAP,
    REASON_WAIT,
    STATE_BOOT,
    STATE_FAULT,
    STATE_GRID_LOST_BLOCKED,
    STATE_ISLAND_BACKUP,
    STATE_NORMAL,
    STATE_RECONNECT_WAIT,
)
from safety_rig import FAST, Rig

D = FAST["reconnect_ms"]


def nothing_permitted(r):
    p = r.p
    return not (p.export or p.discharge or p.charge or p.island or r.s.interlock_on
                or p.limit_w)


class Release(unittest.TestCase):
    def test_boot_is_blocked_until_the_full_delay(self):
        r = Rig()
        self.assertEqual(r.s.state, STATE_BOOT)
        self.assertTrue(nothing_permitted(r))
        self.assertTrue(r.s.stop_needed)  # devices may still run as before a reset
        r.step()
        t_safe = r.t + FAST["contact_stable_ms"]  # the contact must be seen stable first
        while r.s.state != STATE_NORMAL:
            self.assertTrue(nothing_permitted(r))
            self.assertIn(r.s.state, (STATE_BOOT,))
            r.step()
        self.assertEqual(r.t - t_safe, D)
        self.assertTrue(r.p.export and r.p.discharge and r.p.charge and r.s.interlock_on)

    def test_default_delay_is_60_s(self):
        cfg = dict(FAST)
        del cfg["reconnect_ms"]
        r = Rig(cfg)
        r.run(60000 + FAST["contact_stable_ms"] - 100, 100)
        self.assertEqual(r.s.state, STATE_BOOT)
        self.assertEqual(r.p.reason, REASON_WAIT)
        r.run(200, 100)
        self.assertEqual(r.s.state, STATE_NORMAL)

    def test_excursion_restarts_the_delay(self):
        r = Rig().to_normal()
        r.valid = False
        r.step()
        r.valid = True
        r.run(D // 2)
        self.assertEqual(r.s.state, STATE_RECONNECT_WAIT)
        r.v_mv = 190000  # one tick outside the reconnection window, not a trip
        r.step()
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        r.v_mv = 230000
        r.step()
        t_ok = r.t
        waited = r.until(STATE_NORMAL, 3 * D)
        self.assertEqual(r.t - t_ok, D, waited)

    def test_each_source_restarts_the_delay(self):
        for attr, bad, good in (("contact", CONTACT_UNKNOWN, CONTACT_GRID),
                                ("ch_grid", False, True), ("inv_online", False, True),
                                ("f_millihz", 50200, 50000), ("rocof", 2000, 0),
                                ("flags", 1, 0)):
            r = Rig()
            r.run(D)  # well into the first delay
            setattr(r, attr, bad)
            r.step()
            setattr(r, attr, good)
            stable = FAST["contact_stable_ms"] if attr == "contact" else 0
            self.assertEqual(r.until(STATE_NORMAL, 3 * D), D + stable + 20, attr)

    def test_tick_gap_restarts_the_delay(self):
        r = Rig()
        r.run(D - 200)
        gaps = r.s.n_gaps
        r.step(FAST["tick_gap_ms"] + 1)  # nobody watched for over a second
        self.assertEqual(r.s.n_gaps, gaps + 1)
        self.assertEqual(r.p.reason, REASON_TICK_GAP)
        # unobserved time counts as unsafe: contact window, then the whole delay again
        self.assertEqual(r.until(STATE_NORMAL, 3 * D), FAST["contact_stable_ms"] + D)

    def test_tick_gap_blocks_a_permitting_state(self):
        r = Rig().to_normal()
        r.step(FAST["tick_gap_ms"] + 1)
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        self.assertTrue(nothing_permitted(r))
        r = Rig().to_normal()
        r.contact = CONTACT_ISLAND
        r.until(STATE_ISLAND_BACKUP, 2000)
        r.step(-5)  # time ran backwards: a clock fault
        self.assertEqual(r.p.reason, REASON_TICK_GAP)
        self.assertFalse(r.p.discharge)
        self.assertEqual(r.until(STATE_ISLAND_BACKUP, 2000), FAST["contact_stable_ms"])

    def test_release_waits_for_the_stop_confirmation(self):
        r = Rig()
        r.confirm = False
        r.run(900)
        self.assertTrue(r.s.stop_needed)
        r.s.stop_confirmed(r.t, r.s.stop_seq)
        r.run(D)
        self.assertEqual(r.s.state, STATE_NORMAL)

    def test_ramp(self):
        r = Rig()
        r.until(STATE_NORMAL, 3 * D)
        self.assertEqual(r.p.limit_w, 0)
        self.assertEqual(r.p.reason, REASON_RAMP)
        r.run(1000)
        self.assertEqual(r.p.limit_w, FAST["ramp_w_s"])
        r.run(1000)
        self.assertEqual(r.p.limit_w, 11000)  # limit_max_w, reached after 2 s
        self.assertEqual(r.p.reason, REASON_OK)
        self.assertFalse(r.s.ramping)
        r.valid = False  # a block mid-ramp starts the next ramp from zero
        r.step()
        self.assertEqual(r.p.limit_w, 0)


class Backup(unittest.TestCase):
    def island(self, r):
        r.contact = CONTACT_ISLAND
        r.step()
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        self.assertTrue(nothing_permitted(r))
        return r.until(STATE_ISLAND_BACKUP, 2000)

    def test_backup_on_a_confirmed_island(self):
        r = Rig().to_normal()
        r.valid = False  # the grid is gone too
        waited = self.island(r)
        self.assertEqual(waited, FAST["contact_stable_ms"])
        p = r.p
        self.assertTrue(p.discharge and p.island)
        self.assertFalse(p.export or p.charge or r.s.interlock_on)  # grid side stays blocked
        self.assertEqual(p.limit_w, 11000)
        self.assertEqual(p.reason, REASON_ISLAND)
        r.run(60000, 100)
        self.assertEqual(r.s.state, STATE_ISLAND_BACKUP)

    def test_leaves_backup_within_one_tick(self):
        for lost in (CONTACT_GRID, CONTACT_UNKNOWN):
            r = Rig().to_normal()
            self.island(r)
            r.contact = lost
            r.step()
            self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
            self.assertEqual(r.p.reason, REASON_CONTACT)
            self.assertTrue(nothing_permitted(r))
            self.assertTrue(r.s.stop_needed or r.confirm)

    def test_leaves_backup_on_the_edge_itself(self):
        for pos in (CONTACT_GRID, CONTACT_UNKNOWN, CONTACT_ISLAND):  # a bounce too
            r = Rig().to_normal()
            self.island(r)
            r.s.contact_edge(r.t, pos)
            self.assertTrue(nothing_permitted(r))
            self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        # the bounce settles in the island position: backup again once stable
        self.assertEqual(r.until(STATE_ISLAND_BACKUP, 2000), FAST["contact_stable_ms"])

    def test_no_backup_without_island_confirmation(self):
        r = Rig().to_normal()
        r.valid = False  # outage, but the switch stays in the grid position
        r.v_mv = 0
        for _ in range(90000 // 100):
            r.step(100)
            self.assertFalse(r.p.discharge)
        r.contact = CONTACT_UNKNOWN
        r.run(10000)
        self.assertFalse(r.p.discharge)

    def test_no_backup_before_the_stop_is_confirmed(self):
        r = Rig().to_normal()
        r.confirm = False
        r.contact = CONTACT_ISLAND
        r.run(600)
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        r.s.stop_confirmed(r.t, r.s.stop_seq)
        r.step()
        self.assertEqual(r.s.state, STATE_ISLAND_BACKUP)

    def test_backup_can_be_disabled(self):
        cfg = dict(FAST)
        cfg["backup"] = False
        r = Rig(cfg).to_normal()
        r.contact = CONTACT_ISLAND
        r.run(5000)
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        self.assertFalse(r.p.discharge)

    def test_boot_during_an_island(self):
        r = Rig()
        r.contact = CONTACT_ISLAND
        r.valid = False
        self.assertEqual(r.until(STATE_ISLAND_BACKUP, 2000), FAST["contact_stable_ms"] + 20)
        r.contact = CONTACT_GRID  # grid back and switched back: the full delay again
        r.valid = True
        r.step()
        self.assertTrue(nothing_permitted(r))
        waited = r.until(STATE_NORMAL, 3 * D)
        self.assertEqual(waited, FAST["contact_stable_ms"] + D)


class Escalation(unittest.TestCase):
    def test_stop_not_confirmed_in_1_s_is_a_fault(self):
        r = Rig().to_normal()
        r.confirm = False
        r.valid = False
        r.step()
        seq = r.s.stop_seq
        r.run(980)
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        r.step()
        self.assertEqual(r.s.state, STATE_FAULT)
        self.assertEqual(r.p.reason, REASON_FAULT_STOP)
        self.assertTrue(r.s.escalated)
        self.assertEqual(r.s.n_stop_timeouts, 1)
        self.assertEqual(r.s.stop_seq, seq + 1)  # the app repeats the stop
        r.run(1000)
        self.assertEqual(r.s.stop_seq, seq + 2)
        self.assertEqual(r.s.n_stop_timeouts, 1)
        self.assertFalse(r.s.stop_confirmed(r.t, seq - 1))  # read back before the block
        self.assertTrue(r.s.stop_confirmed(r.t, seq))
        self.assertEqual(r.s.stop_latency_ms, 2000)
        self.assertFalse(r.s.escalated)
        r.valid = True
        r.step()
        self.assertEqual(r.s.state, STATE_RECONNECT_WAIT)
        self.assertEqual(r.until(STATE_NORMAL, 3 * D), D)

    def test_boot_stop_is_due_1_s_after_the_first_tick(self):
        # Safety gets no time before its first tick, and the app sends the boot stop
        # only after that tick: stop_confirm_ms runs from there, however late it is
        r = Rig()
        r.confirm = False
        r.step(1500)  # a slow boot: the first tick 1.5 s after construction
        first = r.t
        r.run(980)
        self.assertEqual(r.s.state, STATE_BOOT)
        self.assertFalse(r.s.escalated)
        r.step()
        self.assertEqual(r.t - first, FAST["stop_confirm_ms"])
        self.assertEqual(r.s.state, STATE_FAULT)
        self.assertEqual(r.p.reason, REASON_FAULT_STOP)
        self.assertTrue(r.s.escalated)

    def test_confirmation_without_a_pending_stop_is_ignored(self):
        r = Rig().to_normal()
        self.assertFalse(r.s.stop_confirmed(r.t, r.s.stop_seq))

    def test_delay_done_but_stop_pending(self):
        cfg = dict(FAST)
        cfg["stop_confirm_ms"] = 5000
        r = Rig(cfg)
        r.confirm = False
        r.run(D + 400)
        self.assertEqual(r.s.state, STATE_BOOT)
        self.assertEqual(r.p.reason, REASON_STOP_PENDING)
        r.s.stop_confirmed(r.t, r.s.stop_seq)
        r.step()
        self.assertEqual(r.s.state, STATE_NORMAL)


class Faults(unittest.TestCase):
    def test_enter_fault_blocks_at_once_and_latches(self):
        r = Rig().to_normal()
        r.s.enter_fault(REASON_FAULT_EXCEPTION, r.t)
        self.assertTrue(nothing_permitted(r))
        self.assertTrue(r.s.stop_needed)
        r.run(10000)
        self.assertEqual(r.s.state, STATE_FAULT)
        self.assertEqual(r.p.reason, REASON_FAULT_EXCEPTION)
        self.assertTrue(r.s.clear_fault(r.t))
        self.assertEqual(r.s.state, STATE_GRID_LOST_BLOCKED)
        self.assertTrue(nothing_permitted(r))
        self.assertEqual(r.until(STATE_NORMAL, 3 * D), D + 20)
        self.assertEqual(r.s.n_faults, 1)

    def test_clear_fault_refusals(self):
        r = Rig()
        self.assertFalse(r.s.clear_fault(r.t))  # not in FAULT
        r.confirm = False
        r.run(1100)
        self.assertEqual(r.p.reason, REASON_FAULT_STOP)
        self.assertFalse(r.s.clear_fault(r.t))  # clears only by the devices confirming

    def test_clearing_a_fault_with_an_overdue_stop(self):
        r = Rig().to_normal()
        r.confirm = False
        r.s.enter_fault(REASON_FAULT_EXCEPTION, r.t)
        r.run(1000)
        self.assertTrue(r.s.escalated)
        self.assertTrue(r.s.clear_fault(r.t))  # the exception is cleared ...
        self.assertEqual(r.s.state, STATE_FAULT)  # ... but the devices never stopped
        self.assertEqual(r.p.reason, REASON_FAULT_STOP)
        r.step()
        self.assertEqual(r.s.state, STATE_FAULT)
        r.s.stop_confirmed(r.t, r.s.stop_seq)
        r.step()
        self.assertEqual(r.s.state, STATE_RECONNECT_WAIT)  # out, through the full delay

    def test_exception_during_a_stop_timeout_is_latched_too(self):
        r = Rig().to_normal()
        r.confirm = False
        r.valid = False
        r.run(1100)
        self.assertEqual(r.p.reason, REASON_FAULT_STOP)
        r.s.enter_fault(REASON_FAULT_EXCEPTION, r.t)
        self.assertEqual(r.p.reason, REASON_FAULT_EXCEPTION)
        r.s.stop_confirmed(r.t, r.s.stop_seq)
        r.valid = True
        r.run(3 * D)
        self.assertEqual(r.s.state, STATE_FAULT)  # the devices stopped, the exception stays
        self.assertEqual(r.p.reason, REASON_FAULT_EXCEPTION)
        self.assertTrue(r.s.clear_fault(r.t))
        self.assertEqual(r.until(STATE_NORMAL, 3 * D), D + 20)

    def test_enter_fault_without_a_time(self):
        r = Rig().to_normal()
        r.confirm = False
        r.s.enter_fault(REASON_FAULT_TASK)
        self.assertTrue(nothing_permitted(r))
        r.run(1000)  # the 1 s deadline starts at the next tick
        self.assertFalse(r.s.escalated)
        r.step()
        self.assertTrue(r.s.escalated)
        self.assertEqual(r.p.reason, REASON_FAULT_TASK)  # the first cause stays


class Wrap(unittest.TestCase):
    def test_release_and_ramp_across_the_wrap(self):
        t0 = ticks_add(TICKS_MAX, -(D // 2))  # the wrap falls inside the delay
        r = Rig(t0=t0)
        waited = r.until(STATE_NORMAL, 3 * D)
        self.assertEqual(waited, FAST["contact_stable_ms"] + D + 20)
        self.assertTrue(r.t < t0, "did not cross the wrap")
        r.run(1000)
        self.assertEqual(r.p.limit_w, FAST["ramp_w_s"])

    def test_longer_than_half_the_tick_range(self):
        # > 2**29 ms (6.2 days) in 10 s ticks: a stale record stays stale, a
        # tripped stage stays tripped, and NORMAL stays NORMAL, across two wraps.
        cfg = dict(FAST)
        cfg["tick_gap_ms"] = 10000
        cfg["meter_stale_ms"] = 10000
        n = (1 << 29) // 10000 + 2000
        r = Rig(cfg).to_normal()
        r.inv_live = False  # the inverter record stops updating, but says online
        blocked_all_along = True
        for _ in range(n):
            r.step(10000)
            blocked_all_along = blocked_all_along and not r.p.export
        self.assertTrue(blocked_all_along)
        r = Rig(cfg).to_normal()
        r.v_mv = 180000  # UV1: below 184 V
        r.step(10000)
        tripped = True
        for _ in range(n):
            r.step(10000)
            tripped = tripped and r.s.state == STATE_GRID_LOST_BLOCKED
        self.assertTrue(tripped)
        r = Rig(cfg).to_normal()
        normal = True
        for _ in range(n):
            r.step(10000)
            normal = normal and r.s.state == STATE_NORMAL and r.p.limit_w == 11000
        self.assertTrue(normal)
