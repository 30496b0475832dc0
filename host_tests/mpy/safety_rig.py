# Test rig for gateway.safety, shared by the dual-runtime tests, the CPython
# property tests and the unix-port replay (host_tests/safety_replay.py).
#
# Rig holds the plant-side truth (contact position, voltage, frequency, device
# health) and the shared records; step() moves time, refreshes the records the
# way metering and the bus task would, and runs one safety tick. Allocation-free
# per step, so the heap_lock tests can drive it too.
from gateway.clock import ticks_add
from gateway.model import Charger, Inverter, Meter
from gateway.safety import (
    CONTACT_GRID,
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_TASK,
    STATE_NORMAL,
    Safety,
)

# short delays so whole re-arm cycles fit in a test
FAST = {
    "reconnect_ms": 2000,
    "ramp_w_s": 5500,  # 0 -> 11000 W in 2 s
    "contact_stable_ms": 200,
    "meter_stale_ms": 500,
    "device_stale_ms": 800,
    "stop_confirm_ms": 1000,
    "tick_gap_ms": 1000,
}


class Rig:
    def __init__(self, cfg=None, t0=1000, charger=True, inverter=True):
        self.m = Meter()
        self.ch = Charger() if charger else None
        self.inv = Inverter() if inverter else None
        self.s = Safety(FAST if cfg is None else cfg, self.m, self.ch, self.inv)
        self.p = self.s.permits
        self.t = t0
        self.contact = CONTACT_GRID
        self.valid = True
        self.meter_live = True  # False: metering stopped updating the record
        self.v_mv = self.s.cfg["v_nom_mv"]  # nominal of the profile
        self.f_millihz = 60000 if self.s.cfg["profile"] == "ieee1547" else 50000
        self.rocof = 0
        self.flags = 0
        self.ch_live = True
        self.ch_online = True
        self.ch_grid = True
        self.inv_live = True
        self.inv_online = True
        self.inv_grid = True
        self.confirm = True  # the app confirms every stop right after the tick

    def step(self, ms=20):
        t = ticks_add(self.t, ms)
        self.t = t
        m = self.m
        m.valid = self.valid
        m.v_mv = self.v_mv
        m.f_millihz = self.f_millihz
        m.rocof_mhz_s = self.rocof
        m.flags = self.flags
        if self.meter_live:
            m.t_ms = t
        d = self.ch
        if d is not None:
            d.online = self.ch_online
            d.grid_ok = self.ch_grid
            if self.ch_live:
                d.t_ms = t
        d = self.inv
        if d is not None:
            d.online = self.inv_online
            d.grid_ok = self.inv_grid
            if self.inv_live:
                d.t_ms = t
        st = self.s.tick(t, self.contact)
        if self.confirm and self.s.stop_needed:
            self.s.stop_confirmed(t, self.s.stop_seq)
        return st

    def run(self, ms, step=20):
        for _ in range(ms // step):
            self.step(step)
        return self.s.state

    def until(self, state, max_ms, step=20):
        """ms until the machine is in `state` (checked after each step), or -1."""
        waited = 0
        while waited < max_ms:
            waited += step
            if self.step(step) == state:
                return waited
        return -1

    def to_normal(self):
        assert self.until(STATE_NORMAL, 600000, 100) > 0, "never reached NORMAL"
        self.run(self.s._ramp_full_ms + 100)  # finish the ramp
        return self


# ---- sequence driver: one step = a held input plus optional events ----------
# A step is a list of ints (JSON-friendly, identical on both runtimes):
#  [n, dt_ms, contact, edge, valid, meter_live, v_mv, f_millihz, rocof, flags,
#   charger, inverter, confirm, fault]
#  n ticks of dt_ms with these inputs held. edge: -9 none, else a contact_edge()
#  with that position before the first tick. charger / inverter: 0 ok, 1 offline,
#  2 stale (record stops updating), 3 reports no grid. confirm: 0 none, 1 confirm
#  the current stop_seq after each tick, 2 confirm with an outdated seq.
#  fault: 0 none, 1 enter_fault(exception, now), 2 clear_fault(now),
#  3 enter_fault(task) without a time.
NO_EDGE = -9


def _dev(rig, which, code):
    live = code != 2
    online = code != 1
    grid = code != 3
    if which == 0:
        rig.ch_live, rig.ch_online, rig.ch_grid = live, online, grid
    else:
        rig.inv_live, rig.inv_online, rig.inv_grid = live, online, grid


def outputs(s):
    p = s.permits
    return [s.state, s.reason, int(p.export), int(p.discharge), int(p.charge),
            int(p.island), p.limit_w, int(s.interlock_on), int(s.stop_needed),
            s.stop_seq, s.evidence]


def drive(rig, steps, on_tick=None, on_edge=None, keep=True):
    """Run `steps`; returns one outputs() row per tick (and per edge event).

    on_tick(rig, step, row) / on_edge(rig, position, row) let a checker look at
    each tick's inputs and outputs as they happen. keep=False keeps no rows.
    """
    rows = []
    s = rig.s
    for st in steps:
        n, dt, contact, edge, valid, live, v, f, rocof, flags, ch, inv, conf, fault = st
        rig.contact = contact
        rig.valid = bool(valid)
        rig.meter_live = bool(live)
        rig.v_mv, rig.f_millihz, rig.rocof, rig.flags = v, f, rocof, flags
        _dev(rig, 0, ch)
        _dev(rig, 1, inv)
        rig.confirm = False
        if edge != NO_EDGE:
            s.contact_edge(rig.t, edge)
            row = outputs(s)
            if keep:
                rows.append(row)
            if on_edge is not None:
                on_edge(rig, edge, row)
        if fault == 1:
            s.enter_fault(REASON_FAULT_EXCEPTION, rig.t)
        elif fault == 2:
            s.clear_fault(rig.t)
        elif fault == 3:
            s.enter_fault(REASON_FAULT_TASK)
        for _ in range(n):
            rig.step(dt)
            if conf == 1 and s.stop_needed:
                s.stop_confirmed(rig.t, s.stop_seq)
            elif conf == 2 and s.stop_needed:
                s.stop_confirmed(rig.t, s._stop_seq0 - 1)
            row = outputs(s)
            if keep:
                rows.append(row)
            if on_tick is not None:
                on_tick(rig, st, row)
    return rows
