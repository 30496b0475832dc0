# Zero allocation per safety tick, contact edge and stop confirmation, proven
# with micropython.heap_lock() on the unix port (any allocation raises
# MemoryError there; on CPython the stand-in does nothing and the same paths run).
import sys
import unittest

import micropython
from gateway.clock import TICKS_MAX, ticks_add
from gateway.safety import (
    CONTACT_GRID,
    CONTACT_ISLAND,
    CONTACT_UNKNOWN,
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_TASK,
    REASON_OV,
    STATE_FAULT,
    STATE_ISLAND_BACKUP,
    STATE_NORMAL,
)
from safety_rig import FAST, Rig

MPY = sys.implementation.name == "micropython"


def every_path(r):
    """Boot -> normal -> each kind of block -> island -> faults, ~5000 ticks."""
    r.until(STATE_NORMAL, 10000)
    r.run(3000)  # ramp to the maximum
    r.valid = False  # meter invalid
    r.step()
    r.valid = True
    r.v_mv = 100000  # UV2 trip
    r.run(400)
    r.v_mv = 190000  # hold: outside the reconnection window
    r.run(200)
    r.v_mv = 230000
    r.f_millihz = 52500  # OF2
    r.run(100)
    r.f_millihz = 50000
    r.rocof = 3000
    r.run(600)
    r.rocof = 0
    r.ch_grid = False
    r.step()
    r.ch_grid = True
    r.inv_live = False  # stale inverter
    r.run(1000)
    r.inv_live = True
    r.until(STATE_NORMAL, 10000)
    r.s.contact_edge(r.t, CONTACT_ISLAND)  # the IRQ path
    r.contact = CONTACT_ISLAND
    r.until(STATE_ISLAND_BACKUP, 2000)
    r.run(1000)
    r.confirm = False  # from here the stop is not confirmed: FAULT, repeats
    r.contact = CONTACT_UNKNOWN  # lose the confirmation
    r.step()
    r.contact = CONTACT_GRID
    r.run(2500)
    r.s.stop_confirmed(r.t, r.s.stop_seq)
    r.confirm = True
    r.until(STATE_NORMAL, 10000)
    r.s.enter_fault(REASON_FAULT_EXCEPTION, r.t)
    r.run(200)
    r.s.clear_fault(r.t)
    r.s.enter_fault(REASON_FAULT_TASK)
    r.step()
    r.s.clear_fault(r.t)
    r.step(5000)  # a tick gap
    r.until(STATE_NORMAL, 10000)
    r.v_mv = 262000  # over 253 V: the 10-min mean buckets roll over, then OV1 trips
    r.run(120000, 100)
    return r.s.state


class ZeroAllocation(unittest.TestCase):
    def locked(self, fn, arg):
        micropython.heap_lock()
        try:
            out = fn(arg)
            err = None
        except MemoryError as e:
            out = None
            err = e
        finally:
            micropython.heap_unlock()
        self.assertIsNone(err, "allocated under heap_lock")
        return out

    def test_heap_lock_is_real(self):
        if not MPY:
            return  # the CPython stand-in cannot lock the heap
        micropython.heap_lock()
        try:
            _ = [0] * 8
            raised = False
        except MemoryError:
            raised = True
        finally:
            micropython.heap_unlock()
        self.assertTrue(raised)

    def test_every_path_eu(self):
        r = Rig()
        r.step()  # first tick outside the lock is not needed, but mirrors the app
        self.locked(every_path, r)
        s = r.s
        # normal->blocked (meter), edge, island lost, OV1 mean; 2 faults + 1 stop timeout
        self.assertEqual((s.n_blocks, s.n_edges, s.n_faults), (4, 1, 3))
        self.assertEqual((s.n_stop_timeouts, s.n_stop_repeats, s.n_gaps), (1, 2, 1))
        self.assertEqual(s.reason, REASON_OV)

    def test_every_path_ieee_across_the_wrap(self):
        cfg = dict(FAST)
        cfg["profile"] = "ieee1547"
        r = Rig(cfg, t0=ticks_add(TICKS_MAX, -3000))
        r.v_mv = 230000  # 1.92 pu on a 120 V reference: OV2 trips
        self.locked(every_path, r)
        self.assertTrue(r.t < 1 << 29, "did not cross the wrap")

    def test_fault_path_from_boot(self):
        r = Rig({"reconnect_ms": "bad"})
        self.assertEqual(r.s.state, STATE_FAULT)
        self.locked(every_path, r)
        self.assertEqual(r.s.state, STATE_FAULT)
