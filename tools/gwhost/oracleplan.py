"""The oracle's plan when the scenario has prices: the cheapest day with perfect knowledge.

Dynamic programming over the car's stored energy (battery side, steps of 0.05 % of the
capacity) on 15-min intervals. In each interval k, from the scenario's series (zero-order
hold) with the same limits as the product (charger power, SoC reserve / maximum, the
fuse, no car energy into the grid: discharge only covers house load of at least min_w):
  S_k  surplus the car could absorb (Wh AC), D_k house deficit it could cover (Wh AC),
  G_k  grid charging room (Wh AC) left by the charger limit and the fuse.
Choosing a change dB of stored energy costs, relative to doing nothing,
  min  pe*a + pi*g - pi*d   s.t.  eta*(a + g) - d/eta = dB,
       0 <= a <= S_k, 0 <= g <= G_k, 0 <= d <= D_k
(a: surplus absorbed, g: grid charging, d: deficit covered; pi / pe the interval's import
and export price). It is convex piecewise linear in d; the vertices are evaluated.
Departures (ev.departure_soc_pct at the end of a plugged window) are hard (a large
penalty per Wh short), plugged windows and arrival SoC as in the plant. Grid charging
beyond a departure target is allowed only with plan.grid_charge (the gateway's rule).
The oracle then executes the plan on the zero-latency plant (baselines.Oracle).
Wear limits (min spread, throughput budget) are not applied: the oracle is a lower bound.
The energy left in the car at the end of the scenario is worth what buying it back would
cost in the day's cheapest interval (TERMINAL: import price / efficiency per stored Wh):
with no value at all the "best" plan would sell the car's solar energy at 5 ct in the
afternoon and buy it back for the next departure at 24 ct, which no household wants.
"""

import math

import numpy as np

SLOT_S = 900
RES = 20  # states per SoC percent
_PENALTY = 100.0  # EUR per kWh short at a departure: hard in practice
_INF = 1e18


def interval_data(scen):
    """Per interval: (S, D, G, pi, pe, t0, t1) from the series."""
    n = math.ceil(scen.duration_s / SLOT_S)
    S = np.zeros(n)
    D = np.zeros(n)
    G = np.zeros(n)
    pi = np.zeros(n)
    pe = np.zeros(n)
    ts, pv, load = scen.t_s, scen.pv_w, scen.load_w
    mx_c, mx_d, mn = scen.ev_max_charge_w, scen.ev_max_discharge_w, scen.charger_min_w
    fuse = scen.fuse_a
    v = scen.voltage_v
    split = scen.phase_split
    for i, t in enumerate(ts):
        t1 = ts[i + 1] if i + 1 < len(ts) else scen.duration_s
        while t < t1:
            k = int(t // SLOT_S)
            if k >= n:
                break
            e = min(t1, (k + 1) * SLOT_S)
            h = (e - t) / 3600.0
            net = load[i] - pv[i]
            cap = mx_c
            if fuse is not None:  # charging room on the worst phase (car balanced)
                room = min(3 * v * fuse - 3 * load[i] * s + pv[i] for s in split)
                cap = max(min(cap, room), 0.0)
            if net < 0:
                a = min(-net, cap)
                S[k] += a * h
                G[k] += (cap - a) * h
            else:
                if net >= mn:
                    D[k] += min(net, mx_d) * h
                G[k] += cap * h
            pi[k] = scen.import_eur_kwh[i] / 1000.0  # EUR per Wh
            pe[k] = scen.export_eur_kwh[i] / 1000.0
            t = e
    return S, D, G, pi, pe


def step_cost(dB, S, D, G, pi, pe, eta, grid_ok):
    """Least cost of changing the stored energy by dB (Wh) in one interval, or _INF."""
    if not grid_ok:
        G = 0.0
    d_lo = max(0.0, -dB * eta)
    if d_lo > D + 1e-9:
        return _INF
    best = _INF
    for d in (d_lo, D, (S * eta - dB) * eta, ((S + G) * eta - dB) * eta):
        d = min(max(d, d_lo), D)
        x = (dB + d / eta) / eta  # AC energy from the sources
        if x < -1e-9 or x > S + G + 1e-6:
            continue
        x = max(x, 0.0)
        c = pe * min(x, S) + pi * max(x - S, 0.0) - pi * d
        best = min(best, c)
    return best


class Plan:
    """plan.target(k): the stored energy (Wh) the oracle aims at by the end of interval k,
    and plan.parts(k): (a, g, d) Wh AC for interval k."""

    def __init__(self, scen, plan_cfg):
        eta = scen.charger_efficiency_pct / 100.0
        cap = float(scen.ev_capacity_wh)
        self.step_wh = step = cap / (100.0 * RES)
        nb = 100 * RES + 1
        S, D, G, pi, pe = interval_data(scen)
        n = len(S)
        res = round(scen.ev_soc_reserve_pct * RES)
        top = round(scen.ev_soc_max_pct * RES)
        grid_charge = bool(plan_cfg.get("grid_charge", False))
        dep_idx = {}
        tgt = scen.departure_soc_pct
        for w, end in scen.departures():
            dep_idx[round(end / SLOT_S)] = math.ceil(tgt * RES)
        win_of = [-1] * n
        for w, (a, b, _) in enumerate(scen.plugged):
            for k in range(round(a / SLOT_S), min(n, round(b / SLOT_S))):
                win_of[k] = w
        # which windows end in a departure (grid energy allowed up to the target)
        dep_win = {w: math.ceil(tgt * RES) for w, _ in scen.departures()}
        maxc = math.ceil(scen.ev_max_charge_w * SLOT_S / 3600.0 * eta / step) + 1
        maxd = math.ceil(scen.ev_max_discharge_w * SLOT_S / 3600.0 / eta / step) + 1
        b = np.arange(nb)
        self.end_value_eur_wh = float(np.min(pi)) / eta
        V = -b * step * self.end_value_eur_wh
        choice = np.zeros((n, nb), dtype=np.int32)
        for k in range(n - 1, -1, -1):
            if k + 1 in dep_idx:  # departure at the end of interval k
                short = np.maximum(0, dep_idx[k + 1] - b) * step
                V = V + short * _PENALTY / 1000.0
            w = win_of[k]
            if w < 0:
                choice[k] = b
                continue
            best = np.full(nb, _INF)
            arg = b.copy()
            for delta in range(-maxd, maxc + 1):
                nxt = b + delta
                ok = (nxt >= 0) & (nxt < nb)
                if delta > 0:
                    ok &= nxt <= top
                elif delta < 0:
                    ok &= nxt >= res
                cg = step_cost(delta * step, S[k], D[k], G[k], pi[k], pe[k], eta, True)
                cn = step_cost(delta * step, S[k], D[k], G[k], pi[k], pe[k], eta, False)
                if cg >= _INF and cn >= _INF:
                    continue
                if grid_charge:
                    c = np.full(nb, cg)
                else:  # grid energy only up to a departure target
                    lim = dep_win.get(w, -1)
                    c = np.where(nxt <= lim, cg, cn)
                tot = np.where(ok, c + V[np.clip(nxt, 0, nb - 1)], _INF)
                better = tot < best
                best = np.where(better, tot, best)
                arg = np.where(better, nxt, arg)
            # no action is always possible within the bounds (delta 0)
            V = best
            choice[k] = arg
            a0 = scen.plugged[w][0]
            if round(a0 / SLOT_S) == k and w > 0 and scen.plugged[w][2] is not None:
                V = np.full(nb, V[round(scen.plugged[w][2] * RES)])  # arrival SoC
        self.choice = choice
        self.S, self.D, self.G, self.pi, self.pe, self.eta = S, D, G, pi, pe, eta
        self.grid_charge = grid_charge
        self.cost_rel = None

    def next_state(self, k, soc_pct):
        """Planned stored-energy index at the end of interval k from the SoC now."""
        i = round(min(max(soc_pct, 0.0), 100.0) * RES)
        return int(self.choice[k][i])

    def parts(self, k, dB):
        """(a, g, d) Wh AC that realise dB in interval k at the least cost."""
        S, D, G, pi, pe, eta = (self.S[k], self.D[k], self.G[k], self.pi[k], self.pe[k],
                                self.eta)
        d_lo = max(0.0, -dB * eta)
        best = None
        for d in (d_lo, D, (S * eta - dB) * eta, ((S + G) * eta - dB) * eta):
            d = min(max(d, d_lo), D)
            x = max((dB + d / eta) / eta, 0.0)
            if x > S + G + 1e-6:
                continue
            c = pe * min(x, S) + pi * max(x - S, 0.0) - pi * d
            if best is None or c < best[0] - 1e-12:
                best = (c, min(x, S), max(x - S, 0.0), d)
        if best is None:
            return 0.0, 0.0, 0.0
        return best[1], best[2], best[3]
