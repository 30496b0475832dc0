"""Lockstep: one controller against the plant in virtual time (no I/O, no wall clock).

Per 200 ms step: the safety stand-in judges the grid and contact of the coming step and
sets the interlock (the contact IRQ acts in the same cycle), the controller reads the plant
and writes its setpoints, then the plant advances. Rows and metrics are kept at 1 s.
"""

import sys
import time

from gwhost import metrics as mx
from gwhost.plant import Plant
from gwhost.safety_standin import SafetyStandIn

STEP_MS = 200


class Progress:
    """A one-line progress bar on stderr, only when it is a terminal."""

    def __init__(self, label, total_ms, stream=sys.stderr):
        self.on = stream.isatty()
        self.stream, self.label, self.total = stream, label, max(1, total_ms)
        self.last = -1

    def update(self, done_ms):
        if not self.on:
            return
        pct = int(100 * done_ms / self.total)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.stream.write(f"\r{self.label:<28} [{bar}] {pct:3d}%")
            self.stream.flush()

    def done(self):
        if self.on:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def run(scen, ctl, start_s=0.0, duration_s=None, label="", plant_kw=None, safety_kw=None):
    """Run `ctl` over [start_s, start_s + duration_s); returns (rows, metrics dict)."""
    if duration_s is None:
        duration_s = scen.duration_s - start_s
    plant = Plant(scen, start_s=start_s, ideal=ctl.ideal, **(plant_kw or {}))
    safety = SafetyStandIn(**(safety_kw or {}))
    ctl.reset(plant, scen)
    acc = mx.RowAcc()
    t0_ms = plant.t_ms
    end_ms = t0_ms + round(duration_s * 1000)
    starts_per_window = [0] * len(scen.plugged)
    prog = Progress(label, end_ms - t0_ms)
    wall = time.perf_counter()
    try:
        while plant.t_ms < end_ms:
            t = plant.t_ms
            up, isl = plant._grid_at(t)
            permits = safety.tick(t, up, isl)
            plant.set_interlock(safety.interlock)
            n0 = plant.ev_starts
            ctl.control(t, plant, permits)
            if plant.ev_starts != n0 and plant._win >= 0:
                starts_per_window[plant._win] += plant.ev_starts - n0
            plant.step(STEP_MS)
            acc.add(t, STEP_MS, plant)
            if t % 60000 == 0:
                prog.update(t - t0_ms)
        acc.flush()
    finally:
        prog.done()
        extra = ctl.close() if hasattr(ctl, "close") else {}
    counters = {
        "setpoint_writes": plant.ev_writes,
        "charger_starts": plant.ev_starts,
        "charger_starts_per_window": starts_per_window,
        "wall_s": round(time.perf_counter() - wall, 2),
    }
    counters.update(extra or {})
    return acc.rows, mx.metrics(acc.rows, counters)
