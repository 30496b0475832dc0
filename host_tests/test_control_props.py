"""Properties of the control core for any inputs (hypothesis, CPython).

For random configurations within SCHEMA bounds and random sequences of records with
extreme values, every decision must hold: the setpoint stays inside every limit, the car
never discharges at or below the reserve, while unplugged, without the discharge permit,
or while the grid is absent unless the island is confirmed; it never charges without the
permit or at the max SoC; and every integer the controller computes (all int locals of
its frames, traced line by line, and its state) stays inside +/-2**30, the ESP32's small
int range, so a step cannot allocate on the board.
"""

import sys

from gateway import control as C
from gateway.clock import TICKS_MAX, ticks_add
from gateway.control_cfg import SCHEMA, make_config
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LIM = 1 << 30
BIG = st.integers(-(LIM - 1), LIM - 1)


def cfg_strategy():
    parts = {}
    for key, (default, lo, hi) in SCHEMA.items():
        if isinstance(lo, tuple):
            parts[key] = st.sampled_from(lo)
        else:
            parts[key] = st.one_of(st.just(lo), st.just(hi), st.just(default),
                                   st.integers(lo, hi))
    return st.fixed_dictionaries(parts).map(_reserve_below_max)


def _reserve_below_max(c):
    """control_cfg.rule: the reserve never exceeds the max SoC (swap them if drawn so)."""
    if c["soc_reserve_pct"] > c["soc_max_pct"]:
        c["soc_reserve_pct"], c["soc_max_pct"] = c["soc_max_pct"], c["soc_reserve_pct"]
    return c


record = st.fixed_dictionaries({
    "dt": st.one_of(st.just(200), st.integers(0, 3000), st.integers(-1000, 1 << 29)),
    "m_valid": st.booleans(), "m_age": st.one_of(st.just(0), st.integers(-5000, 100000)),
    "grid": st.one_of(st.integers(-20000, 20000), BIG),
    "online": st.booleans(), "c_age": st.one_of(st.just(0), st.integers(-5000, 100000)),
    "plugged": st.booleans(), "session": st.booleans(),
    "soc": st.one_of(st.integers(0, 100), st.integers(-10, 300)),
    "power": st.one_of(st.integers(-11000, 11000), BIG),
    "min_w": st.one_of(st.just(150), st.integers(0, 100000)),
    "maxc": st.one_of(st.just(11000), st.integers(0, LIM - 1)),
    "maxd": st.one_of(st.just(10000), st.integers(0, LIM - 1)),
    "c_grid_ok": st.booleans(), "i_grid_ok": st.booleans(),
    "has_batt": st.booleans(), "batt": st.one_of(st.integers(-5000, 5000), BIG),
    "bsoc": st.integers(-10, 300),
    "export": st.booleans(), "discharge": st.booleans(), "charge": st.booleans(),
    "island": st.booleans(),
    "limit": st.one_of(st.just(100000), st.integers(0, 20000), BIG),
    # per-phase meter values and the planner's hooks (gateway/plan.py writes them)
    "ph_w": st.lists(st.one_of(st.integers(-20000, 20000), BIG), min_size=3, max_size=3),
    "ph_ma": st.lists(st.one_of(st.integers(0, 100000), BIG), min_size=3, max_size=3),
    "v_mv": st.one_of(st.just(230000), st.integers(0, 300000), BIG),
    "force": st.one_of(st.just(0), st.integers(0, 100000)),
    "floor": st.one_of(st.just(0), st.integers(0, 100)),
    "v2h": st.booleans(), "absorb": st.booleans(),
})


class IntRangeTracer:
    """Fails on any int local outside +/-2**30 in a frame of gateway/control.py."""

    def __init__(self):
        self.bad = None

    def __call__(self, frame, event, arg):
        if not frame.f_code.co_filename.endswith("control.py"):
            return None
        self._check(frame, arg if event == "return" else None)
        return self

    def _check(self, frame, ret):
        for name, v in list(frame.f_locals.items()) + [("<return>", ret)]:
            if type(v) is int and not -LIM < v < LIM and self.bad is None:
                self.bad = (frame.f_code.co_name, frame.f_lineno, name, v)


def feed(r, m, ch, inv, pm, now):
    m.valid, m.t_ms, m.grid_w = r["m_valid"], ticks_add(now, -r["m_age"]), r["grid"]
    ch.online, ch.t_ms, ch.plugged, ch.session = r["online"], ticks_add(now, -r["c_age"]), \
        r["plugged"], r["session"]
    ch.soc_pct, ch.power_w, ch.min_w = r["soc"], r["power"], r["min_w"]
    ch.max_charge_w, ch.max_discharge_w, ch.grid_ok = r["maxc"], r["maxd"], r["c_grid_ok"]
    inv.online, inv.t_ms, inv.grid_ok = True, now, r["i_grid_ok"]
    inv.has_battery, inv.batt_w, inv.batt_soc_pct = r["has_batt"], r["batt"], r["bsoc"]
    pm.export, pm.discharge, pm.charge = r["export"], r["discharge"], r["charge"]
    pm.island, pm.limit_w = r["island"], r["limit"]
    m.ph_w[:] = r.get("ph_w", (0, 0, 0))
    m.ph_ma[:] = r.get("ph_ma", (0, 0, 0))
    m.v_mv = r.get("v_mv", 230000)


def plan(c, r):
    c.plan_force_w, c.plan_floor_pct = r["force"], r["floor"]
    c.plan_v2h, c.plan_absorb = r["v2h"], r["absorb"]


def check(cfg, c, r, out):
    ev = out.ev_w
    lim = max(0, min(r["limit"], LIM))
    fresh = r["online"] and r["c_age"] <= cfg["device_max_age_ms"]
    if ev > 0:
        assert r["charge"] and r["plugged"] and fresh, "charged without permit / car"
        assert r["soc"] < cfg["soc_max_pct"], "charged at max SoC"
        assert ev <= min(cfg["max_charge_w"], r["maxc"], lim)
        assert ev >= max(cfg["min_w"], r["min_w"]), "below the charger minimum"
        assert not r["island"], "charging while islanded"
    if ev < 0:
        assert r["discharge"] and r["plugged"] and fresh, "discharged without permit / car"
        assert r["soc"] > cfg["soc_reserve_pct"], "discharged at or below the reserve"
        if not r["island"]:
            assert r["soc"] > r.get("floor", 0), "discharged below the plan's floor"
        assert cfg["mode"] == "auto"
        assert r["island"] or (r["export"] and r["c_grid_ok"] and r["i_grid_ok"]), \
            "discharged with the grid absent and no island confirmed"
        assert -ev <= min(cfg["max_discharge_w"], r["maxd"], lim)
        assert -ev >= max(cfg["min_w"], r["min_w"]), "below the charger minimum"
    if not r["plugged"]:
        assert ev == 0
    if cfg["mode"] == "off":
        assert ev == 0 and not out.ev_session
    assert abs(out.batt_w) <= cfg["batt_max_w"]
    if out.batt_w < 0:
        assert r["discharge"] and r["export"]
    assert out.export_limit_w == (cfg["export_max_w"] if r["export"] else 0)
    for k, v in vars(c).items():
        if type(v) is int:
            assert -LIM < v < LIM, (k, v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=cfg_strategy(), seq=st.lists(record, min_size=1, max_size=25),
       t0=st.one_of(st.just(TICKS_MAX - 1000), st.integers(0, TICKS_MAX)))
def test_decisions_stay_inside_every_limit(cfg, seq, t0):
    cfg = make_config(cfg)
    c = C.Controller(cfg)
    m, ch, inv, pm, out = Meter(), Charger(), Inverter(), Permits(), Setpoints()
    now = t0
    tracer = IntRangeTracer()
    for r in seq:
        now = ticks_add(now, r["dt"])
        feed(r, m, ch, inv, pm, now)
        plan(c, r)
        sys.settrace(tracer)
        try:
            c.step(now, m, ch, inv, pm, out)
        finally:
            sys.settrace(None)
        assert tracer.bad is None, f"int outside +/-2**30: {tracer.bad}"
        check(cfg, c, r, out)


@settings(max_examples=100, deadline=None)
@given(grid=BIG, power=BIG, batt=BIG, soc=st.integers(31, 89))
def test_extreme_measurements_regulate_within_limits(grid, power, batt, soc):
    """Absurd meter / device readings (a broken CT, a bad register) still give a bounded
    setpoint, never a discharge beyond the limits."""
    c = C.Controller()
    m, ch, inv, pm, out = Meter(), Charger(), Inverter(), Permits(), Setpoints()
    r = {"m_valid": True, "m_age": 0, "grid": grid, "online": True, "c_age": 0,
         "plugged": True, "session": True, "soc": soc, "power": power, "min_w": 150,
         "maxc": 11000, "maxd": 10000, "c_grid_ok": True, "i_grid_ok": True,
         "has_batt": True, "batt": batt, "bsoc": 50, "export": True, "discharge": True,
         "charge": True, "island": False, "limit": 100000}
    now = 0
    for _ in range(80):
        now = ticks_add(now, 200)
        feed(r, m, ch, inv, pm, now)
        c.step(now, m, ch, inv, pm, out)
        check(make_config(None), c, r, out)
    assert -10000 <= out.ev_w <= 11000
