"""The firmware control core as a benchmark controller (`gateway`), on either runtime.

Each 200 ms step the plant's readings become the firmware's records (gateway/model.py) as
integers: the meter (last complete 200 ms window at the connection point, its voltage
reference lost with the grid), the charger and the inverter as if just polled, and the
transfer-switch contact. The firmware's own safety module (gateway/safety.py, config
section "safety" of the scenario's gateway_config) ticks on them and fills the Permits
record; `Controller.step` (firmware/gateway/control.py) decides; the interlock follows
Safety.interlock_on and the Setpoints go to the plant only when the core wrote them. Time
reaches the core as a 30-bit tick that wraps `WRAP_AFTER_MS` into the run.

With a plan (the scenario has prices, a departure or a "plan" section in gateway_config)
the firmware's Planner (gateway/plan.py) runs beside the core: once per simulated second
it gets the plan clock (seconds since 2000 = the scenario's t_s: t_s 0 is local midnight
of 2000-01-01), the local time of day and the next departure, and hands its decision to
the controller. The scenario's price columns become the firmware's tariff table (15-min
intervals, milli-EUR/kWh), exactly as the retained MQTT schedule would.

Runtimes: `cpython` imports the module here; `micropython` runs the same module on the
MicroPython unix port (tools/mpycore/driver.py) over a pipe, one line of integers per step
each way (FIELDS_IN / FIELDS_OUT). The step time is measured around `Controller.step`
alone, on the runtime that runs it. Both runtimes share tools/mpycore/corelink.py (records,
safety tick, stop read-back, planner tick, answers).
"""

import json
import os
import statistics
import subprocess
import tempfile
import time

from gwhost import fw, paths

_clock = fw.load("gateway.clock")
_model = fw.load("gateway.model")
Controller = fw.load("gateway.control").Controller
corelink = fw.load_tool("corelink")  # the step protocol, shared with mpycore/driver.py
make_planner, checksum = corelink.make_planner, corelink.checksum
EPOCH_2000 = fw.load("gateway.tariff").EPOCH_2000
SLOT_S = 900
Setpoints = _model.Setpoints
TICKS_MAX, TICKS_PERIOD = _clock.TICKS_MAX, _clock.TICKS_PERIOD

WRAP_AFTER_MS = 1800000  # the firmware tick wraps 30 min into every run
FIELDS_IN = ("now", "m_valid", "m_t", "m_grid", "c_online", "c_t", "c_plugged", "c_session",
             "c_soc", "c_power", "c_min", "c_maxc", "c_maxd", "c_gridok", "i_online", "i_t",
             "i_pv", "i_batt", "i_bsoc", "i_hasb", "i_gridok", "contact", "f_millihz", "now_s",
             "tod_s", "dep_at_s", "dep_soc", "ph_w1", "ph_w2", "ph_w3", "ph_ma1", "ph_ma2",
             "ph_ma3", "v_mv")
FIELDS_OUT = ("ev_w", "ev_session", "batt_w", "export_limit_w", "reason", "writes", "starts",
              "interlock", "safety_state")
CONTACT_GRID, CONTACT_ISLAND = 0, 1  # gateway.safety.CONTACT_*
F_NOM_MILLIHZ = 50000
DRIVER = os.path.join(paths.ROOT, "tools", "mpycore", "driver.py")


def tick(t_ms, start_ms):
    return (t_ms - start_ms + TICKS_PERIOD - WRAP_AFTER_MS) & TICKS_MAX


def core_config(scen, overrides=None):
    """The core's config: {"control", "safety"} plus "plan" / "tariff" when it plans."""
    cfg = {"control": gateway_config(scen, overrides),
           "safety": dict(scen.gateway_config.get("safety") or {})}
    ps = plan_setup(scen)
    if ps:
        cfg.update(ps)
    return cfg


def gateway_config(scen, overrides=None):
    """The control section for a scenario: its car limits and grid target, else defaults."""
    cfg = {
        "min_w": int(scen.charger_min_w),
        "max_charge_w": int(scen.ev_max_charge_w),
        "max_discharge_w": int(scen.ev_max_discharge_w),
        "soc_reserve_pct": int(scen.ev_soc_reserve_pct),
        "soc_max_pct": int(scen.ev_soc_max_pct),
        "charge_target_w": int(scen.grid_target_w),
        "ramp_up_w_s": int(scen.charger_ramp_w_per_s),  # matched to the charger
    }
    if scen.fuse_a is not None:
        cfg["fuse_a"] = int(scen.fuse_a)
    cfg.update((scen.gateway_config.get("control") or {}))
    cfg.update(overrides or {})
    return cfg


def plan_setup(scen):
    """({"plan": section, "tariff": schedule or None}) for a scenario, or None: no plan."""
    plan = dict(scen.gateway_config.get("plan") or {})
    if not (scen.has_prices or scen.departure_soc_pct is not None or plan):
        return None
    plan.setdefault("ev_capacity_wh", int(scen.ev_capacity_wh))
    plan.setdefault("efficiency_pct", int(scen.charger_efficiency_pct))
    plan.setdefault("plan_w", int(min(scen.ev_max_charge_w, 100000) * 0.8))
    if scen.home_battery:
        plan.setdefault("batt_capacity_wh", int(scen.home_battery["capacity_wh"]))
    return {"plan": plan, "tariff": tariff_json(scen)}


def tariff_json(scen):
    """The scenario's price columns as the firmware's schedule object (or None)."""
    if not scen.has_prices:
        return None
    from gwhost import metrics as mx

    n = min(192, int(-(-scen.duration_s // SLOT_S)))
    imp, exp = [], []
    for k in range(n):
        pi, pe = mx.price_at(scen, k * SLOT_S)
        imp.append(round(pi * 1000))
        exp.append(round(pe * 1000))
    return {"start": EPOCH_2000, "interval_min": SLOT_S // 60, "import": imp, "export": exp}


def departure_at(scen, t_s):
    """(absolute s, target %) of the next departure after t_s, or (-1, 0)."""
    for _, end in scen.departures():
        if end > t_s:
            return int(end), int(scen.departure_soc_pct)
    return -1, 0


def inputs(plant, now, hb_present, scen=None):
    """The step record (FIELDS_IN order) from the plant, all ints. The meter's voltage
    reference (and frequency) is there while its last window saw the grid throughout."""
    up, isl = plant.grid_now
    up = 1 if up else 0
    t_s = plant.t_ms // 1000
    dep, dsoc = departure_at(scen, t_s) if scen is not None else (-1, 0)
    ph = plant.meter_ph_w
    valid = plant.meter_valid
    v = plant.volt if valid else 0.0
    vd = plant.volt
    return (now, 1 if valid else 0, now, round(plant.meter_grid_w),
            1, now, 1 if plant.ev_plugged else 0, 1 if plant.ev_session_open else 0,
            plant.ev_soc_reported, round(plant.ev_reported_w), round(plant.min_w),
            round(plant.max_charge_w), round(plant.max_discharge_w), up,
            1, now, round(plant.pv_w - plant.curtailed_w), round(plant.batt_w),
            int(plant.batt_soc_pct), hb_present, up,
            CONTACT_ISLAND if isl else CONTACT_GRID, F_NOM_MILLIHZ if valid else 0,
            t_s, t_s % 86400, dep, dsoc,
            round(ph[0]), round(ph[1]), round(ph[2]), round(abs(ph[0]) / vd * 1000),
            round(abs(ph[1]) / vd * 1000), round(abs(ph[2]) / vd * 1000), round(v * 1000))


class CpyCore:
    """Controller.step on CPython, fed the same integer record as the MicroPython one.

    Every step record is also kept (one text line each, in a temporary file) with a
    checksum of the decisions, so the run can be replayed on the unix port afterwards.
    """

    runtime = "cpython"

    def __init__(self, cfg, record=True):
        self.cfg = cfg
        self.c = Controller(cfg["control"])
        self.pl = make_planner(cfg)
        self.t_s = None
        self.m, self.ch, self.inv, self.pm = corelink.records()
        self.out = Setpoints()
        self.s = corelink.make_safety(cfg, self.m, self.ch, self.inv, self.pm)
        self.times_ns = []
        self.crc = 0
        self.rec = tempfile.TemporaryFile("w+") if record else None  # noqa: SIM115 - closed by replay

    def step(self, f):
        m, ch, inv, pm, out = self.m, self.ch, self.inv, self.pm, self.out
        corelink.load(f, m, ch, inv)
        corelink.safety_tick(self.s, f)
        if self.pl is not None and f[corelink.NOW_S] != self.t_s:
            self.t_s = f[corelink.NOW_S]
            corelink.plan_tick(self.pl, f, self.c, m, ch, inv)
        t0 = time.perf_counter_ns()
        self.c.step(f[0], m, ch, inv, pm, out)
        self.times_ns.append(time.perf_counter_ns() - t0)
        r = corelink.answers(self.c, self.s, out)
        if self.rec:
            self.rec.write(" ".join(map(str, f)) + "\n")
            self.crc = checksum(self.crc, r)
        return r

    def close(self):
        t = self.times_ns
        return {"step_us_median": round(statistics.median(t) / 1000.0, 2) if t else None,
                "steps": len(t)}


def replay_on_micropython(gateway):
    """Replay a CPython gateway run's step records on the unix port, open loop.

    Returns the unix port's median Controller.step time and whether every decision was
    identical (same inputs, same module: it must be)."""
    core = gateway.core
    if not isinstance(core, CpyCore) or core.rec is None:
        return {}
    core.rec.seek(0)
    cmd = [paths.MICROPYTHON, "-X", "heapsize=" + paths.CORE_HEAP, DRIVER, "replay"]
    p = subprocess.run(cmd, input=json.dumps(core.cfg) + "\n" + core.rec.read(),
                       capture_output=True, text=True, env=paths.micropython_env(),
                       cwd=paths.ROOT, check=False)
    core.rec.close()
    core.rec = None
    last = p.stdout.strip().splitlines()[-1:] or [""]
    f = last[0].split()
    if p.returncode != 0 or len(f) != 4 or f[0] != "S":
        raise RuntimeError("micropython replay failed: " + p.stdout[-500:] + p.stderr[-2000:])
    return {"step_us_median_micropython": int(f[1]) / 100.0, "micropython_replay_steps":
            int(f[2]), "micropython_replay_equal": int(f[3]) == core.crc}


class MpyCore:
    """Controller.step on the MicroPython unix port, one pipe round trip per step."""

    runtime = "micropython"

    def __init__(self, cfg):
        self.p = subprocess.Popen(
            [paths.MICROPYTHON, "-X", "heapsize=" + paths.CORE_HEAP, DRIVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=paths.micropython_env(),
            cwd=paths.ROOT)
        self._send(json.dumps(cfg))
        ready = self.p.stdout.readline()
        if not ready.startswith(b"READY"):
            raise RuntimeError("micropython core did not start: " + ready.decode(errors="replace")
                               + self.p.stdout.read().decode(errors="replace"))

    def _send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def step(self, f):
        self.p.stdin.write((" ".join(map(str, f)) + "\n").encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        try:
            return tuple(int(x) for x in line.split())
        except ValueError:
            raise RuntimeError("micropython core failed: " + (line + self.p.stdout.read())
                               .decode(errors="replace")) from None

    def close(self):
        self._send("Q")
        line = self.p.stdout.readline().split()
        self.p.wait(timeout=10)
        # S <median step us x100> <steps> <checksum>
        return {"step_us_median": int(line[1]) / 100.0, "steps": int(line[2])}


class Gateway:
    """The benchmark's `gateway` controller: the firmware core + its Setpoints applied."""

    ideal = False
    own_safety = True  # the firmware Safety runs inside the core: lockstep runs none

    def __init__(self, runtime="cpython", overrides=None, record=False):
        self.runtime = runtime
        self.record = record  # keep step records for replay_on_micropython()
        self.overrides = overrides
        self.core = None

    def reset(self, plant, scen):
        cfg = core_config(scen, self.overrides)
        self.scen = scen
        self.core = MpyCore(cfg) if self.runtime == "micropython" else \
            CpyCore(cfg, record=self.record)
        self.start_ms = plant.t_ms
        self.hb = 1 if plant.has_battery else 0
        self.writes = 0
        self.session = False
        self.batt = 0
        self.export_limit = None
        self.last = None

    def control(self, t_ms, plant, permits=None):
        """One step: the core's safety tick and decision; the interlock first (hardware,
        the same cycle), then the setpoints. `permits` is unused (the core has its own)."""
        r = self.core.step(inputs(plant, tick(t_ms, self.start_ms), self.hb, self.scen))
        self.last = r
        ev_w, sess, batt_w, exp_lim, _reason, writes, _starts, interlock, _st = r
        plant.set_interlock(interlock == 1)
        if sess and not self.session:
            plant.set_ev_session(True)
        if writes != self.writes:
            self.writes = writes
            plant.set_ev_setpoint(ev_w)
        if not sess and self.session:
            plant.set_ev_session(False)
        self.session = bool(sess)
        if batt_w != self.batt:
            self.batt = batt_w
            plant.set_batt_setpoint(batt_w)
        if exp_lim != self.export_limit:
            self.export_limit = exp_lim
            plant.set_export_limit(exp_lim)

    def close(self):
        return self.core.close() if self.core else {}
