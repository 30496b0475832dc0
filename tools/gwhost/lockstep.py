"""Lockstep: one controller against the plant in virtual time (no I/O, no wall clock).

Per 200 ms step: the firmware's safety module (gateway/safety.py) judges the readings of
the coming step (the meter's last window and voltage reference, the devices, the contact)
and sets the interlock (the contact IRQ acts in the same cycle), the controller reads the
plant and writes its setpoints, then the plant advances. Rows and metrics are kept at 1 s.
The `gateway` controller runs that Safety inside its core (CPython or the MicroPython unix
port, tools/mpycore/corelink.py: `own_safety`); every other controller gets a
FirmwareSafety here, the same module through the same corelink code, so all of them obey
the same permits (no charging in the reconnection delay, a re-arm ramp of limit_w).
"""

import sys
import time

from gwhost import fw, gwcore
from gwhost import metrics as mx
from gwhost.plant import Plant

STEP_MS = 200
corelink = fw.load_tool("corelink")


class FirmwareSafety:
    """gateway.safety.Safety fed from the plant as the core feeds it (gwcore.inputs)."""

    def __init__(self, scen, start_ms, cfg=None):
        self.scen = scen
        self.start_ms = start_ms
        self.m, self.ch, self.inv, self.permits = corelink.records()
        safety = dict(scen.gateway_config.get("safety") or {})
        safety.update(cfg or {})
        self.s = corelink.make_safety({"safety": safety}, self.m, self.ch, self.inv,
                                      self.permits)

    def tick(self, plant):
        f = gwcore.inputs(plant, gwcore.tick(plant.t_ms, self.start_ms),
                          1 if plant.has_battery else 0, self.scen)
        corelink.load(f, self.m, self.ch, self.inv)
        corelink.safety_tick(self.s, f)
        return self.permits

    @property
    def interlock(self):
        return self.s.interlock_on


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
    own = getattr(ctl, "own_safety", False)
    safety = None if own else FirmwareSafety(scen, plant.t_ms, safety_kw)
    ctl.reset(plant, scen)
    acc = mx.RowAcc()
    t0_ms = plant.t_ms
    end_ms = t0_ms + round(duration_s * 1000)
    starts_per_window = [0] * len(scen.plugged)
    fuse = scen.fuse_a
    cmd_run = cmd_run_max = 0
    prog = Progress(label, end_ms - t0_ms)
    wall = time.perf_counter()
    try:
        while plant.t_ms < end_ms:
            t = plant.t_ms
            permits = None
            if safety is not None:
                permits = safety.tick(plant)
                plant.set_interlock(safety.interlock)
            n0 = plant.ev_starts
            ctl.control(t, plant, permits)
            if fuse is not None:  # the decision: does the new setpoint clear the overload?
                cmd_run = cmd_run + 1 if _cmd_overload(plant, fuse) else 0
                cmd_run_max = max(cmd_run_max, cmd_run)
            win = plant.plugged_window
            if plant.ev_starts != n0 and win >= 0:
                starts_per_window[win] += plant.ev_starts - n0
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
        "max_phase_import_a": round(plant.max_phase_a, 2),
    }
    if fuse is not None:
        counters.update({
            "fuse_a": fuse,
            # plant steps (200 ms) with a phase above the fuse, and the longest run of them
            "fuse_overload_cycles": plant.fuse_overload_steps,
            "fuse_overload_run_max_cycles": plant.fuse_overload_run_max,
            # of those, the cycles in which the car was charging (the rest: the house alone
            # was over, and the car turning to discharge takes the charger's response time)
            "fuse_charging_cycles": plant.fuse_charging_steps,
            "fuse_charging_run_max_cycles": plant.fuse_charging_run_max,
            # control cycles in a row whose decision left a metered overload in place (the
            # metered phase current plus the commanded change of the car still above it)
            "fuse_unyielded_run_max_cycles": cmd_run_max,
        })
    counters.update(mx.departure_metrics(scen, plant.departures))
    counters.update(extra or {})
    m = mx.metrics(acc.rows, counters)
    m["energy_cost_eur"] = mx.energy_cost_eur(acc.rows, scen)
    return acc.rows, m


def _cmd_overload(plant, fuse_a):
    """A phase still above the fuse after this cycle's decision, judged on what the
    controller could see: the metered window plus the car's commanded change (balanced)."""
    if not plant.meter_valid:
        return False
    cmd = plant.ev_cmd_w if plant.ev_session_starting_or_open else 0.0
    d = (cmd - plant.ev_reported_w) / 3.0
    for k in range(3):
        if abs(plant.meter_ph_w[k] + d) / plant.volt > fuse_a + 1e-6:
            return True
    return False
