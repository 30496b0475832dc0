"""Benchmark traces (1 s rows) and the metrics computed from them (bench-contract.md).

A row holds the averages over one second of the plant's 200 ms steps (so energies summed
from rows equal the plant's), rounded to 1 mW; `grid_up` is 1 only when the grid was
present for the whole second, `switch_island` is 1 when the contact reported the island
position while the grid was absent. The metrics are computed from the rows alone, so
`metrics(read_trace(path))` reproduces the benchmark's numbers from the CSV.

island_export_wh counts, for rows with the grid absent: with the switch at grid, every
watt the car, the home battery or the PV inverter delivered (the house is grid side);
islanded, only power flowing out of the connection point. A second in which the grid was
absent for part of the time counts as absent for all of it (strict).
"""

import csv

HEADER = ("t_s", "pv_w", "load_w", "ev_w", "battery_w", "grid_w", "grid_up", "switch_island",
          "ev_soc_pct", "unserved_w", "curtailed_w")
T, PV, LOAD, EV, BATT, GRID, UP, ISL, SOC, UNSERVED, CURT = range(len(HEADER))


class RowAcc:
    """Averages plant steps into 1 s rows."""

    def __init__(self):
        self.rows = []
        self._reset(None)

    def _reset(self, t_s):
        self.t_s = t_s
        self.n = 0
        self.dt = 0.0
        self.s = [0.0] * 7  # pv, load, ev, batt, grid, unserved, curtailed (W * ms)
        self.up = True
        self.isl = False

    def add(self, t_ms, dt_ms, p):
        t_s = t_ms // 1000
        if self.t_s is None:
            self.t_s = t_s
        elif t_s != self.t_s:
            self.flush(p)
            self._reset(t_s)
        s = self.s
        s[0] += p.pv_w * dt_ms
        s[1] += p.load_w * dt_ms
        s[2] += p.ev_w * dt_ms
        s[3] += p.batt_w * dt_ms
        s[4] += p.grid_w * dt_ms
        s[5] += p.unserved_w * dt_ms
        s[6] += p.curtailed_w * dt_ms
        self.dt += dt_ms
        if not p.grid_up:
            self.up = False
            self.isl = self.isl or p.switch_island
        self.soc = p.ev_soc_pct

    def flush(self, p=None):
        if self.t_s is None or self.dt <= 0:
            return
        a = [round(x / self.dt, 3) for x in self.s]
        self.rows.append((self.t_s, a[0], a[1], a[2], a[3], a[4], 1 if self.up else 0,
                          1 if self.isl else 0, round(self.soc, 3), a[5], a[6]))
        self.t_s = None


def metrics(rows, counters=None):
    """The contract's METRICS from 1 s rows (+ counters: setpoint_writes, charger_starts)."""
    k = 1 / 3600.0
    pv = load = imp = exp = chg = dis = to_grid = isl_exp = bu = uns = curt = 0.0
    bchg = bdis = 0.0
    max_v2h = max_v2h_exp = 0.0
    for r in rows:
        g, ev, bt = r[GRID], r[EV], r[BATT]
        prod = r[PV] - r[CURT]
        pv += prod
        load += r[LOAD]
        uns += r[UNSERVED]
        curt += r[CURT]
        if g > 0:
            imp += g
        else:
            exp -= g
        if ev > 0:
            chg += ev
        else:
            dis -= ev
        if bt > 0:
            bchg += bt
        else:
            bdis -= bt
        if r[UP]:
            if ev < 0:
                if g < 0:
                    to_grid += min(-ev, -g)
                max_v2h = max(max_v2h, abs(g))
                max_v2h_exp = max(max_v2h_exp, -g)
        elif r[ISL]:
            bu += r[UNSERVED]
            isl_exp += max(0.0, -g)
        else:
            isl_exp += prod + max(0.0, -ev) + max(0.0, -bt)
    out = {
        "pv_wh": pv * k, "load_wh": load * k, "grid_import_wh": imp * k,
        "grid_export_wh": exp * k, "ev_charge_wh": chg * k, "ev_discharge_wh": dis * k,
        "ev_to_grid_wh": to_grid * k, "island_export_wh": isl_exp * k,
        "self_consumption_pct": 100.0 * (pv - exp) / pv if pv > 0 else 0.0,
        "effectiveness": None,
        "setpoint_writes": None, "charger_starts": None,
        "max_abs_grid_w_during_v2h": max_v2h, "max_export_w_during_v2h": max_v2h_exp,
        "backup_unserved_wh": bu * k,
        "unserved_wh": uns * k, "curtailed_wh": curt * k,
        "battery_charge_wh": bchg * k, "battery_discharge_wh": bdis * k,
        "ev_soc_end_pct": rows[-1][SOC] if rows else None,
        "seconds": len(rows),
    }
    out.update(counters or {})
    return out


def effectiveness(m, idle, oracle):
    x = m["grid_import_wh"] + m["grid_export_wh"]
    xi = idle["grid_import_wh"] + idle["grid_export_wh"]
    xo = oracle["grid_import_wh"] + oracle["grid_export_wh"]
    return (xi - x) / (xi - xo) if xi - xo > 1e-9 else None


def write_trace(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def read_trace(path):
    with open(path, newline="") as f:
        rd = csv.reader(f)
        head = tuple(next(rd))
        if head != HEADER:
            raise ValueError(f"{path}: header {head} is not {HEADER}")
        return [(int(r[0]), *(float(x) for x in r[1:6]), int(r[6]), int(r[7]),
                 *(float(x) for x in r[8:])) for r in rd]


def price_at(scen, t_s):
    """(import, export) EUR/kWh in force at t_s (zero-order hold of the CSV columns)."""
    import bisect

    i = max(0, bisect.bisect_right(scen.t_s, t_s) - 1)
    return scen.import_eur_kwh[i], scen.export_eur_kwh[i]


def energy_cost_eur(rows, scen):
    """Sum over 1 s rows of import * import price - export * export price (EUR), or None
    when the scenario has no prices. Recomputable from a trace and its scenario."""
    if not scen.has_prices:
        return None
    import bisect

    ts, pi, pe = scen.t_s, scen.import_eur_kwh, scen.export_eur_kwh
    k = 1 / 3600.0 / 1000.0
    cost = 0.0
    for r in rows:
        i = max(0, bisect.bisect_right(ts, r[T]) - 1)
        g = r[GRID]
        cost += (g * pi[i] if g > 0 else g * pe[i]) * k
    return cost


def departure_metrics(scen, departures):
    """departure_soc_pct (per departure), departure_shortfall_pct (worst), and
    departure_soc_met, against ev.departure_soc_pct; {} when the scenario sets none."""
    if scen.departure_soc_pct is None:
        return {}
    tgt = scen.departure_soc_pct
    ends = {end for _, end in scen.departures()}
    socs = [round(s, 2) for t, s in departures if t in ends]
    short = max([max(0.0, tgt - s) for s in socs], default=0.0)
    return {"departure_target_pct": tgt, "departure_soc_pct": socs,
            "departure_shortfall_pct": round(short, 3), "departure_soc_met": short <= 1e-6}
