"""The true oracle: the best day with perfect knowledge, as a linear program (HiGHS).

Decisions: the car's and the home battery's AC power and PV curtailment, with perfect
knowledge of the day (PV, load, plugged windows and arrival SoC, outages, prices, fuse,
departure). Same limits and rules as the firmware: charger and battery power, the car's
SoC between its reserve and maximum, the battery's between its minimum and maximum, the
charger's efficiency both ways, the fuse (car charging room on the worst phase), nothing
charges from a dead grid, and stored energy leaves only to cover the house's own deficit
(car energy never leaves through the grid connection; no storage-to-storage transfer).

Why it is an honest bound for any controller that acts every 200 ms and is judged on 1 s
rows (the bench's metrics), although it is solved on slots of SLOT_S (60 s, cut further at
plug-window edges and price changes):
- Per slot and device only the AC energy in and out is a variable; any 1 s trajectory gives
  such totals, within the per-second power limits summed over the slot.
- The grid: in second t of a slot the row is g_t = n_t + w_t (n_t = load - available PV
  at the plant, w_t = car + battery + curtailment, inside [L_t, H_t]). For given slot total
  W = sum w_t, the least sum |g_t| over all 1 s trajectories is exactly
  F0 + |N + W - m| with m = sum clamp(0, n_t + L_t, n_t + H_t), F0 = sum |that clamp|
  (each row as close to 0 as its limits allow; any further change costs 1 W per W). The
  slot's A >= both linear pieces, so grid exchange = sum A is never above a real
  controller's; import and export are (A +- (N + W)) / 2, so with import price >= export
  price the cost is bounded the same way.
- SoC limits are checked at slot ends only (a relaxation); the charger minimum, its response
  time and ramp, the session delays and the safety module's reconnection delay and re-arm
  ramp are left out (each only restricts a real controller); SoC limits get a margin of
  SOC_MARGIN_PCT because the firmware compares whole reported percent.
- The car discharges only in substeps where the house takes at least the charger minimum
  (the firmware's rule: below it min_w would push car energy into the grid); PV is
  curtailable only where the firmware may hold export below it (interlock off, re-arm
  ramp of the export limit: the first reconnect + ramp seconds after the start and after
  each outage); elsewhere no controller here curtails.
- Seconds with any outage (row grid_w is the grid's average over the second) count 0 grid
  exchange; in them storage may take up the island's PV surplus and give the house load.
So `grid_exchange_wh` <= grid_import_wh + grid_export_wh of every controller on the same
window, and effectiveness (against it) > 1 is a bug in the bench (bench_day asserts it).

Two objectives: `bound(scen)` minimises grid exchange (the effectiveness reference);
`CostPlan(scen)` minimises the energy cost of the day (prices), with the departure target
hard (penalty per Wh short) and the energy left at the end valued at the day's cheapest
import price (without it the "best" plan would sell the car's solar energy and buy it back
later); `oracle` executes that plan at zero latency on the plant (baselines.Oracle).
"""

import math
import time

import highspy
import numpy as np

SOLVER = "highs"
SLOT_S = 60
SUB = 5  # plant steps (200 ms) per second
SOC_MARGIN_PCT = 0.5  # car SoC limits: the firmware judges whole reported percent
BATT_MARGIN_PCT = 0.1
_PENALTY = 0.1  # EUR per Wh short at a departure: hard in practice
INTERVAL_S = 900  # the executed plan's budget intervals (baselines.Oracle)

# per-slot variables
CP, CM, BP, BM, CU, A, ZC, ZD, ZBC, ZBD, S, Q, SL = range(13)
NV = 13


class Day:
    """The day's per-second data as the plant will see it (200 ms steps averaged)."""

    def __init__(self, scen, start_s=0.0, duration_s=None):
        if duration_s is None:
            duration_s = scen.duration_s - start_s
        self.scen = scen
        self.t0 = int(start_s)
        n = math.ceil(duration_s)
        self.n = n
        tsub = self.t0 + np.arange(n * SUB) * (1.0 / SUB)
        ts = np.asarray(scen.t_s, dtype=float)
        i = np.clip(np.searchsorted(ts, tsub, side="right") - 1, 0, len(ts) - 1)
        load = np.asarray(scen.load_w, dtype=float)[i]
        pv_av = np.asarray(scen.pv_w, dtype=float)[i]
        up = np.ones(n * SUB, dtype=bool)
        isl = np.zeros(n * SUB, dtype=bool)
        pv_ok = np.ones(n * SUB, dtype=bool)
        for a, b, island in scen.events:
            m = (tsub >= a) & (tsub < b)
            up &= ~m
            isl |= m & bool(island)
            if not island:  # the PV inverter trips and waits pv_reconnect_s after return
                back = tsub[(tsub >= b)]
                t_ok = (back[0] if len(back) else b) + 60.0
                pv_ok &= ~((tsub >= a) & (tsub < t_ok))
        pv = np.where(pv_ok, pv_av, 0.0)
        plugged = np.zeros(n * SUB, dtype=bool)
        self.win_of_sub = np.full(n * SUB, -1)
        for w, (a, b, _) in enumerate(scen.plugged):
            m = (tsub >= a) & (tsub < b)
            plugged |= m
            self.win_of_sub[m] = w
        # PV can be curtailed only where the firmware may hold export below it: the
        # interlock off and the re-arm ramp of the export limit, after the start and after
        # every outage (safety config of the scenario, eu profile by default)
        from gwhost import fw

        sc_cfg = fw.load("gateway.safety_cfg").validate(
            dict(scen.gateway_config.get("safety") or {}))
        rearm_s = sc_cfg["reconnect_ms"] / 1000.0 + \
            sc_cfg["limit_max_w"] / max(1, sc_cfg["ramp_w_s"]) + 2.0
        curt_ok = tsub < self.t0 + rearm_s
        for a, b, _ in scen.events:
            curt_ok |= (tsub >= a) & (tsub < b + rearm_s)
        cmax = np.full(n * SUB, float(scen.ev_max_charge_w))
        if scen.fuse_a is not None:
            v = scen.voltage_v
            room = np.min([3 * v * scen.fuse_a - 3 * load * s + pv for s in scen.phase_split],
                          axis=0)
            cmax = np.clip(np.minimum(cmax, room), 0.0, None)
        hb = scen.home_battery
        bc = float(hb["max_charge_w"]) if hb else 0.0
        bd = float(hb["max_discharge_w"]) if hb else 0.0
        dmax = float(scen.ev_max_discharge_w)

        def sec(x):
            return x.reshape(n, SUB).mean(axis=1)

        self.full_up = up.reshape(n, SUB).all(axis=1)
        self.net = sec(load - pv)
        self.pv = sec(np.where(curt_ok, pv, 0.0))  # curtailable PV
        # the car discharges only where the house takes at least the charger minimum
        # (below it, min_w would push car energy into the grid)
        car_dis = plugged & up & (load - pv >= scen.charger_min_w)
        self.c_car = sec(np.where(plugged & up, cmax, 0.0))
        self.d_car = sec(np.where(car_dis, dmax, 0.0))
        self.c_b = sec(np.where(up, bc, 0.0))
        self.d_b = sec(np.where(up, bd, 0.0))
        # deficit the stored energy may cover (all devices together)
        self.deficit = sec(np.minimum(np.clip(load - pv, 0.0, None),
                                      np.where(car_dis, dmax, 0.0) + bd))
        # outage seconds: the island's PV surplus and load (0 on a dead grid)
        self.isl_surplus = sec(np.where(~up & isl, np.clip(pv_av - load, 0.0, None), 0.0))
        self.isl_load = sec(np.where(~up & isl, load, 0.0))
        self.isl_c_car = sec(np.where(~up & isl & plugged, float(scen.ev_max_charge_w), 0.0))
        self.isl_d_car = sec(np.where(~up & isl & plugged, dmax, 0.0))
        self.isl_c_b = sec(np.where(~up & isl, bc, 0.0))
        self.isl_d_b = sec(np.where(~up & isl, bd, 0.0))
        if scen.has_prices:
            self.pi = sec(np.asarray(scen.import_eur_kwh, dtype=float)[i]) / 1000.0
            self.pe = sec(np.asarray(scen.export_eur_kwh, dtype=float)[i]) / 1000.0
        else:
            self.pi = self.pe = np.zeros(n)
        self.win = self.win_of_sub.reshape(n, SUB).max(axis=1)

    def slots(self):
        """Slot edges (s from t0): every SLOT_S, plug-window edges, price changes."""
        n = self.n
        edges = set(range(0, n, SLOT_S))
        edges.add(n)
        for a, b, _ in self.scen.plugged:
            for e in (a, b):
                k = round(e) - self.t0
                if 0 < k < n:
                    edges.add(k)
        ch = np.nonzero((np.diff(self.pi) != 0) | (np.diff(self.pe) != 0))[0] + 1
        edges.update(int(x) for x in ch)
        return sorted(edges)


class _Model:
    """The LP over the slots of a Day; objective "grid" or "cost"."""

    def __init__(self, day, objective):
        sc = day.scen
        e = day.slots()
        K = len(e) - 1
        self.day, self.edges, self.K = day, e, K
        eta = sc.charger_efficiency_pct / 100.0
        hb = sc.home_battery
        eta_b = hb["efficiency_pct"] / 100.0 if hb else 1.0
        cap = float(sc.ev_capacity_wh)
        bcap = float(hb["capacity_wh"]) if hb else 0.0
        h = 1.0 / 3600.0
        nv = K * NV
        lb = np.zeros(nv)
        ub = np.zeros(nv)
        cost = np.zeros(nv)
        rows = []  # (lo, hi, {col: val})
        full = day.full_up
        N_const = np.zeros(K)
        self.N = N_const
        price = np.zeros((K, 2))
        car = sc.ev_soc_start_pct / 100.0 * cap
        win_prev = -2
        self.dep_rows = []
        for k in range(K):
            a, b = e[k], e[k + 1]
            sl = slice(a, b)
            f = full[sl]
            net = day.net[sl][f]
            lo_t = net - (day.d_car[sl][f] + day.d_b[sl][f])
            hi_t = net + (day.c_car[sl][f] + day.c_b[sl][f] + day.pv[sl][f])
            cl = np.clip(0.0, lo_t, hi_t)
            m, F0 = cl.sum() * h, np.abs(cl).sum() * h
            N = net.sum() * h
            N_const[k] = N
            base = k * NV
            ub[base + CP] = day.c_car[sl][f].sum() * h
            ub[base + CM] = day.d_car[sl][f].sum() * h
            ub[base + BP] = day.c_b[sl][f].sum() * h
            ub[base + BM] = day.d_b[sl][f].sum() * h
            ub[base + CU] = day.pv[sl][f].sum() * h
            ub[base + A] = np.maximum(np.abs(lo_t), np.abs(hi_t)).sum() * h + 1e-9
            ub[base + ZC] = day.isl_c_car[sl].sum() * h
            ub[base + ZD] = day.isl_d_car[sl].sum() * h
            ub[base + ZBC] = day.isl_c_b[sl].sum() * h
            ub[base + ZBD] = day.isl_d_b[sl].sum() * h
            W = {base + CP: 1.0, base + CM: -1.0, base + BP: 1.0, base + BM: -1.0, base + CU: 1.0}
            r1 = {c: -v for c, v in W.items()}
            r1[base + A] = 1.0
            rows.append((F0 + N - m, np.inf, r1))
            r2 = dict(W)
            r2[base + A] = 1.0
            rows.append((F0 - N + m, np.inf, r2))
            rows.append((-np.inf, day.deficit[sl][f].sum() * h, {base + CM: 1.0, base + BM: 1.0}))
            rows.append((-np.inf, day.isl_surplus[sl].sum() * h, {base + ZC: 1.0, base + ZBC: 1.0}))
            rows.append((-np.inf, day.isl_load[sl].sum() * h, {base + ZD: 1.0, base + ZBD: 1.0}))
            # the car's stored energy: arrival SoC at a window's start, else carried on
            w = int(day.win[a:b].max()) if b > a else -1
            fixed = None
            if w >= 0 and w != win_prev and (sc.plugged[w][2] is not None or w == 0):
                fixed = sc.arrival_soc(w, None) / 100.0 * cap
            if w >= 0:
                win_prev = w
            r = {base + S: 1.0, base + CP: -eta, base + ZC: -eta, base + CM: 1.0 / eta,
                 base + ZD: 1.0 / eta}
            if k == 0 or fixed is not None:
                v0 = fixed if fixed is not None else car
                rows.append((v0, v0, r))
            else:
                r[(k - 1) * NV + S] = -1.0
                rows.append((0.0, 0.0, r))
            if w >= 0:
                arr = sc.arrival_soc(w, sc.ev_soc_start_pct) if fixed is not None else None
                lo_p = sc.ev_soc_reserve_pct if arr is None else min(sc.ev_soc_reserve_pct, arr)
                hi_p = sc.ev_soc_max_pct if arr is None else max(sc.ev_soc_max_pct, arr)
                lb[base + S] = max(0.0, (lo_p - SOC_MARGIN_PCT) / 100.0 * cap)
                ub[base + S] = min(cap, (hi_p + SOC_MARGIN_PCT) / 100.0 * cap)
                if fixed is None and k > 0:  # carried on: never tighter than where it is
                    lb[base + S] = min(lb[base + S], lb[(k - 1) * NV + S])
                    ub[base + S] = max(ub[base + S], ub[(k - 1) * NV + S])
            else:
                ub[base + S] = cap
            if hb:
                rb = {base + Q: 1.0, base + BP: -eta_b, base + ZBC: -eta_b,
                      base + BM: 1.0 / eta_b, base + ZBD: 1.0 / eta_b}
                if k == 0:
                    v0 = hb["soc_start_pct"] / 100.0 * bcap
                    rows.append((v0, v0, rb))
                else:
                    rb[(k - 1) * NV + Q] = -1.0
                    rows.append((0.0, 0.0, rb))
                lo_b = min(hb["soc_min_pct"], hb["soc_start_pct"]) - BATT_MARGIN_PCT
                hi_b = max(hb["soc_max_pct"], hb["soc_start_pct"]) + BATT_MARGIN_PCT
                lb[base + Q] = max(0.0, lo_b / 100.0 * bcap)
                ub[base + Q] = min(bcap, hi_b / 100.0 * bcap)
            pi = float(day.pi[a]) if b > a else 0.0
            pe = float(day.pe[a]) if b > a else 0.0
            price[k] = pi, pe
            if objective == "grid":
                cost[base + A] = 1.0
            else:
                cost[base + A] = (pi - pe) / 2.0
                for c, v in W.items():
                    cost[c] += v * (pi + pe) / 2.0
        self.price = price
        if objective == "cost":
            pmin = float(np.min(day.pi))
            last = (K - 1) * NV
            cost[last + S] -= pmin / eta
            if hb:
                cost[last + Q] -= pmin / eta_b
            tgt = sc.departure_soc_pct
            for _, end in sc.departures():
                k_end = e.index(round(end) - day.t0) - 1 if \
                    (round(end) - day.t0) in e else -1
                if k_end < 0:
                    continue
                base = k_end * NV
                ub[base + SL] = cap
                cost[base + SL] = _PENALTY
                rows.append((tgt / 100.0 * cap, np.inf, {base + S: 1.0, base + SL: 1.0}))
        self.lb, self.ub, self.cost, self.rows = lb, ub, cost, rows
        self.eta, self.cap = eta, cap

    def solve(self):
        lp = highspy.HighsLp()
        nv = len(self.cost)
        lp.num_col_ = nv
        lp.num_row_ = len(self.rows)
        lp.col_cost_ = self.cost
        lp.col_lower_ = self.lb
        lp.col_upper_ = np.maximum(self.ub, self.lb)
        lp.row_lower_ = np.array([r[0] for r in self.rows])
        lp.row_upper_ = np.array([r[1] for r in self.rows])
        start, idx, val = [0], [], []
        for _, _, d in self.rows:
            for c, v in d.items():
                idx.append(c)
                val.append(v)
            start.append(len(idx))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = nv
        lp.a_matrix_.num_row_ = len(self.rows)
        lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(idx, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(val)
        hs = highspy.Highs()
        hs.setOptionValue("output_flag", False)
        hs.setOptionValue("threads", 1)
        t = time.perf_counter()
        hs.passModel(lp)
        hs.run()
        self.solve_s = time.perf_counter() - t
        st = hs.getModelStatus()
        if st != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError("oracle LP: " + hs.modelStatusToString(st))
        self.x = np.array(hs.getSolution().col_value).reshape(self.K, NV)
        return self

    def grid_exchange_wh(self):
        return float(self.x[:, A].sum())

    def cost_eur(self):
        x = self.x
        W = x[:, CP] - x[:, CM] + x[:, BP] - x[:, BM] + x[:, CU]
        Y = self.N + W
        pi, pe = self.price[:, 0], self.price[:, 1]
        return float(np.sum(pi * (x[:, A] + Y) / 2.0 - pe * (x[:, A] - Y) / 2.0))


def bound(scen, start_s=0.0, duration_s=None):
    """The least grid exchange (Wh) any controller can reach on the window, and how."""
    t = time.perf_counter()
    day = Day(scen, start_s, duration_s)
    m = _Model(day, "grid").solve()
    out = {"solver": SOLVER, "grid_exchange_wh": round(m.grid_exchange_wh(), 3),
           "slots": m.K, "solve_s": round(m.solve_s, 2),
           "total_s": round(time.perf_counter() - t, 2)}
    if scen.has_prices:
        out["energy_cost_eur_at_least_exchange"] = round(m.cost_eur(), 4)
    return out


class CostPlan:
    """The cheapest day (prices) as budgets per INTERVAL_S for the executed oracle:
    parts(k) = (a, g, d) Wh AC: surplus absorbed, grid charging, deficit covered."""

    def __init__(self, scen, plan_cfg=None):
        day = Day(scen)
        m = _Model(day, "cost").solve()
        self.solve_s = m.solve_s
        self.cost_eur = m.cost_eur()
        n = math.ceil(scen.duration_s / INTERVAL_S)
        self.a, self.g, self.d = np.zeros(n), np.zeros(n), np.zeros(n)
        self.S, self.D = np.zeros(n), np.zeros(n)
        h = 1.0 / 3600.0
        surplus = np.where(day.full_up, np.minimum(np.clip(-day.net, 0, None), day.c_car), 0.0)
        deficit = np.where(day.full_up, np.minimum(np.clip(day.net, 0, None), day.d_car), 0.0)
        for k in range(m.K):
            a, b = m.edges[k], m.edges[k + 1]
            i = a // INTERVAL_S
            s_k = surplus[a:b].sum() * h
            cp = m.x[k, CP]
            self.a[i] += min(cp, s_k)
            self.g[i] += max(cp - s_k, 0.0)
            self.d[i] += m.x[k, CM]
            self.S[i] += s_k
            self.D[i] += deficit[a:b].sum() * h
        self.eta = m.eta

    def parts(self, k):
        return self.a[k], self.g[k], self.d[k]
