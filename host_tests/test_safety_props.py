"""Safety invariants for ANY input sequence (hypothesis), checked against an
independent oracle built from the plant-side truth, then the same sequences
replayed through the firmware module on the MicroPython unix port and compared
tick by tick with CPython.

Invariants (docs/safety.md, "What is proven"):
 1. export permitted  =>  the grid has been present at every tick of the last
    reconnection delay, observed without gaps (present: contact in the grid
    position and no edge, meter valid/fresh/unflagged with a voltage, every
    device online/fresh/reporting grid) and it was release-safe (inside the
    reconnection window, contact stable) for a whole delay before the release.
 2. no path from an unsafe input to permitted export in one step: an unsafe
    tick never shows export, and a contact edge withdraws every permit at once.
 3. discharge while the grid is absent  =>  backup on a confirmed island: the
    contact reads exactly "island", unchanged for contact_stable_ms.
 4. the outputs agree with each other (interlock_on == export, FAULT permits
    nothing, limit within bounds), and a stop left unconfirmed for
    stop_confirm_ms is a FAULT.
"""

import json
import os
import subprocess

from gwhost import paths
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gateway.clock import TICKS_MAX, ticks_diff
from gateway.safety import (
    CONTACT_GRID,
    CONTACT_ISLAND,
    CONTACT_UNKNOWN,
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_TASK,
    STATE_FAULT,
    STATE_ISLAND_BACKUP,
    STATE_NORMAL,
)
from safety_rig import FAST, NO_EDGE, Rig, drive, outputs

HERE = os.path.dirname(os.path.abspath(__file__))
# CI runs a fixed set of examples (derandomize: a fresh draw cannot fail a run
# without a recorded regression; --hypothesis-seed is then ignored). Set
# SAFETY_PROPS_EXPLORE=1 to draw new examples (seeded by --hypothesis-seed),
# and pin what they find with @example.
DERANDOMIZE = os.environ.get("SAFETY_PROPS_EXPLORE") != "1"
CFG = dict(FAST)
D = CFG["reconnect_ms"]
STABLE = CFG["contact_stable_ms"]
GAP = CFG["tick_gap_ms"]
V_LOSS, RC_V, RC_F, ROCOF = 46000, (195500, 253000), (47500, 50100), 1000

# ---- the oracle -------------------------------------------------------------


class Oracle:
    """Judges each tick from what the plant knows, independently of the firmware."""

    def __init__(self, rig):
        self.t = rig.t
        self.present_since = None  # start of the current run of present ticks
        self.safe_since = None  # start of the current run of release-safe ticks
        self.c_level = None
        self.c_since = rig.t
        self.export_prev = False
        # The boot stop's deadline starts at the first tick, not at construction:
        # the firmware is given no time before it, and the app sends the stop only
        # after that tick (docs/safety.md). From construction the oracle demanded a
        # FAULT that the firmware cannot know is due (a first tick later than GAP).
        self.stop_since = None
        self.edge_now = False
        self.n_export = self.n_backup = self.n_release = 0

    def edge(self, rig, pos, row):
        assert not (row[2] or row[3] or row[4] or row[5] or row[7]), "edge left a permit"
        assert row[6] == 0
        self.c_level = pos  # the edge's position, from the edge's time
        self.c_since = rig.t
        self.edge_now = True

    def tick(self, rig, row):
        s = rig.s
        now = rig.t
        dt = ticks_diff(now, self.t)
        self.t = now
        gap = dt > GAP or dt < 0
        contact = rig.contact
        if contact != self.c_level or gap:
            self.c_level = contact
            self.c_since = now
        c_stable = ticks_diff(now, self.c_since) >= STABLE
        m = rig.m
        present = (contact == CONTACT_GRID and not self.edge_now and m.valid
                   and 0 <= ticks_diff(now, m.t_ms) <= CFG["meter_stale_ms"]
                   and not m.flags and m.v_mv >= V_LOSS and m.f_millihz > 0)
        for d in (rig.ch, rig.inv):
            present = present and d.online and d.grid_ok and \
                0 <= ticks_diff(now, d.t_ms) <= CFG["device_stale_ms"]
        safe = (present and c_stable and RC_V[0] <= m.v_mv <= RC_V[1]
                and RC_F[0] <= m.f_millihz <= RC_F[1] and abs(m.rocof_mhz_s) <= ROCOF)
        self.edge_now = False
        if not present or gap:
            self.present_since = now if present else None
        elif self.present_since is None:
            self.present_since = now
        if not safe or gap:
            self.safe_since = now if safe else None
        elif self.safe_since is None:
            self.safe_since = now
        state, _, export, discharge, charge, island, limit, il, stop = row[:9]
        # 4. consistency
        assert il == export
        assert not export or state == STATE_NORMAL
        assert not (island and export)
        assert state != STATE_FAULT or not (export or discharge or charge or island or limit)
        assert 0 <= limit <= CFG.get("limit_max_w", 11000)
        # 2. nothing unsafe shows export; 1. export only after the whole delay
        if export:
            assert present, "export permitted on an unsafe tick"
            assert ticks_diff(now, self.present_since) >= D, "export before the delay"
            self.n_export += 1
            if not self.export_prev:
                self.n_release += 1
                assert self.safe_since is not None and \
                    ticks_diff(now, self.safe_since) >= D, "released before a full safe delay"
        self.export_prev = bool(export)
        # 3. discharge without the grid only on a confirmed island
        if discharge and not export:
            assert state == STATE_ISLAND_BACKUP and island
            assert contact == CONTACT_ISLAND and c_stable, "backup without a confirmed island"
            self.n_backup += 1
        # 4. escalation: a stop pending for stop_confirm_ms is a FAULT
        if not stop:
            self.stop_since = None
        elif self.stop_since is None:
            self.stop_since = now
        elif ticks_diff(now, self.stop_since) >= CFG["stop_confirm_ms"] + GAP:
            assert state == STATE_FAULT, "unconfirmed stop without escalation"
        assert s.permits.export == bool(export)


# ---- input strategies ---------------------------------------------------------

ANY_METER = st.tuples(
    st.sampled_from([230000] * 4 + [0, 100000, 180000, 190000, 250000, 256000, 270000]),
    st.sampled_from([50000] * 4 + [46900, 47400, 49000, 50200, 51600, 52100]),
    st.sampled_from([0] * 4 + [500, 1500, -3000]),
    st.sampled_from([0] * 8 + [1]))
DT = st.sampled_from([20, 20, 20, 50, 100, 250, 400, 1500, -5])


@st.composite
def segment(draw):
    """One held input (see safety_rig.drive); half of them all-good, so re-arms happen."""
    if draw(st.booleans()):
        return [draw(st.integers(1, 60)), draw(st.sampled_from([20, 50, 100])), CONTACT_GRID,
                NO_EDGE, 1, 1, 230000, 50000, 0, 0, 0, 0, draw(st.sampled_from([1, 1, 0, 2])), 0]
    v, f, rocof, flags = draw(ANY_METER)
    one = st.sampled_from([1] * 6 + [0])
    dev = st.sampled_from([0] * 6 + [1, 2, 3])
    return [
        draw(st.integers(1, 60)), draw(DT),
        draw(st.sampled_from([CONTACT_GRID] * 3 + [CONTACT_ISLAND] * 3 + [CONTACT_UNKNOWN])),
        draw(st.sampled_from([NO_EDGE] * 6 + [CONTACT_GRID, CONTACT_ISLAND, CONTACT_UNKNOWN])),
        draw(one), draw(one), v, f, rocof, flags, draw(dev), draw(dev),
        draw(st.sampled_from([1] * 4 + [0, 2])),
        draw(st.sampled_from([0] * 12 + [1, 2, 3])),
    ]


SEQ = st.lists(segment(), min_size=1, max_size=30)
T0 = st.sampled_from([1000, TICKS_MAX - 4000, TICKS_MAX - 30000])


def check(t0, steps):
    rig = Rig(CFG, t0)
    o = Oracle(rig)
    rows = drive(rig, steps, lambda r, _s, row: o.tick(r, row), o.edge)
    return rows, o


# found by this test: a first tick 1.5 s after construction, the boot stop never
# confirmed; it is due (FAULT) 1 s after that tick, which the oracle checks here
LATE_BOOT = [[1, 1500, CONTACT_GRID, NO_EDGE, 1, 1, 230000, 50000, 0, 0, 0, 0, 0, 0],
             [25, 100, CONTACT_GRID, NO_EDGE, 1, 1, 230000, 50000, 0, 0, 0, 0, 0, 0]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=DERANDOMIZE)
@given(T0, SEQ)
@example(1000, LATE_BOOT)
def test_invariants_hold_for_any_sequence(t0, steps):
    check(t0, steps)


def test_the_properties_are_not_vacuous():
    # a long good stretch, an islanded outage, and back: releases, backup, export all seen
    good = [60, 100, CONTACT_GRID, NO_EDGE, 1, 1, 230000, 50000, 0, 0, 0, 0, 1, 0]
    island = [60, 100, CONTACT_ISLAND, CONTACT_ISLAND, 0, 1, 0, 0, 0, 0, 3, 3, 1, 0]
    _, o = check(1000, [good, island, good])
    assert o.n_release == 2 and o.n_backup > 40 and o.n_export > 50


# ---- the same invariants as a state machine of app-level actions ---------------


class SafetyMachine(RuleBasedStateMachine):
    @initialize(t0=T0)
    def boot(self, t0):
        self.rig = Rig(CFG, t0)
        self.rig.confirm = False
        self.o = Oracle(self.rig)

    def ticks(self, n, dt):
        for _ in range(n):
            self.rig.step(dt)
            self.o.tick(self.rig, outputs(self.rig.s))

    @rule(n=st.integers(1, 80), dt=st.sampled_from([20, 100]))
    def all_good(self, n, dt):
        r = self.rig
        r.contact, r.valid, r.meter_live = CONTACT_GRID, True, True
        r.v_mv, r.f_millihz, r.rocof, r.flags = 230000, 50000, 0, 0
        r.ch_online = r.ch_grid = r.ch_live = r.inv_online = r.inv_grid = r.inv_live = True
        self.ticks(n, dt)

    @rule(n=st.integers(1, 40), dt=DT, meter=ANY_METER, valid=st.booleans(),
          contact=st.sampled_from([CONTACT_GRID, CONTACT_ISLAND, CONTACT_UNKNOWN]),
          dev=st.sampled_from(["ch_online", "ch_grid", "ch_live", "inv_online", "inv_grid",
                               "inv_live", None]))
    def disturb(self, n, dt, meter, valid, contact, dev):
        r = self.rig
        r.v_mv, r.f_millihz, r.rocof, r.flags = meter
        r.valid, r.contact = valid, contact
        if dev:
            setattr(r, dev, False)
        self.ticks(n, dt)

    @rule(pos=st.sampled_from([CONTACT_GRID, CONTACT_ISLAND, CONTACT_UNKNOWN]))
    def edge(self, pos):
        self.rig.s.contact_edge(self.rig.t, pos)
        self.o.edge(self.rig, pos, outputs(self.rig.s))

    @rule()
    def confirm(self):
        s = self.rig.s
        if s.stop_confirmed(self.rig.t, s.stop_seq):
            self.o.stop_since = None  # a later request starts a new deadline

    @rule()
    def confirm_outdated(self):
        s = self.rig.s
        assert not s.stop_confirmed(self.rig.t, s._stop_seq0 - 1)

    @rule(op=st.sampled_from([1, 2, 3]))
    def fault(self, op):
        s, t = self.rig.s, self.rig.t
        if op == 1:
            s.enter_fault(REASON_FAULT_EXCEPTION, t)
        elif op == 2:
            s.clear_fault(t)
        else:
            s.enter_fault(REASON_FAULT_TASK)

    @invariant()
    def permits_are_consistent(self):
        if hasattr(self, "rig"):
            s = self.rig.s
            assert s.interlock_on == s.permits.export


SafetyMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                           deadline=None, derandomize=DERANDOMIZE)
TestSafetyMachine = SafetyMachine.TestCase


# ---- replay on the MicroPython unix port ----------------------------------------


def run_on_unix_port(runs):
    job = json.dumps({"cfg": CFG, "runs": runs})
    env = paths.micropython_env(extra_path=[os.path.join(HERE, "mpy")])
    p = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.HEAP,
                        os.path.join(HERE, "safety_replay.py")],
                       input=job, capture_output=True, text=True, env=env, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    runs_rows = [[]]
    for line in p.stdout.splitlines():
        if line == "end":
            runs_rows.append([])
        else:
            runs_rows[-1].append([int(v) for v in line.split(",")])
    return runs_rows[:-1]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=DERANDOMIZE)
@given(st.lists(st.tuples(T0, SEQ), min_size=1, max_size=12))
@example([(1000, LATE_BOOT), (TICKS_MAX - 4000, LATE_BOOT)])
def test_unix_port_matches_cpython_tick_by_tick(runs):
    got = run_on_unix_port([[t0, steps] for t0, steps in runs])
    assert len(got) == len(runs)
    for (t0, steps), mpy_rows in zip(runs, got):
        rows, _ = check(t0, steps)  # the invariants hold on these runs too
        assert len(mpy_rows) == len(rows)
        for i, (a, b) in enumerate(zip(rows, mpy_rows)):
            assert a == b, "tick %d differs: cpython %r, unix port %r" % (i, a, b)
