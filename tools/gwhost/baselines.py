"""Comparison controllers for the whole-day benchmark (CPython, lockstep).

Each has `ideal` (True: run on the zero-latency plant), `reset(plant, scen)` and
`control(t_ms, plant, permits)`, called once per 200 ms step before `plant.step()`. They act
through the plant's command API only and obey the same safety permits as the firmware.

- idle: the car never charges or discharges (effectiveness 0 by definition).
- oracle: zero-latency, perfect knowledge of this step's load and PV; the same power, SoC
  and safety limits and the same rule that the car's energy never leaves through the grid
  connection (it discharges only when the house takes at least the charger minimum); it
  needs no import bias, having no latency. Effectiveness 1 by definition.
  With prices in the scenario it is the cheapest plan with perfect knowledge instead
  (gwhost.oracleplan.CostPlan: a linear program over the car's and the home battery's
  SoC solved with HiGHS, same limits, departures met, no car energy into the grid), its
  car budgets executed per 15 min at zero latency. The effectiveness reference is not
  this executed row but oracleplan.bound() (see there): a true lower bound on grid
  exchange for any controller.
- oracle-grid: the oracle without the price plan (the physical limit of grid exchange);
  on price scenarios `effectiveness` is computed against it.
- oracle-free: the same without the no-export rule: at the minimum it picks whichever of
  0 and +-min_w leaves less |grid|, so it may push car energy into the grid (at night
  loads of 75-150 W). The gap between the two is the price of the no-export guarantee.
- ac-pv: an AC charger's PV mode as common open-source chargers do it: 30 s cycle, whole
  amps at 230 V from 6 A (1.38 kW), enable after 1 min of surplus >= the minimum, disable
  after 3 min below it (charging on at the minimum meanwhile), no discharge. With a
  departure target (ev.departure_soc_pct) it also plan-charges as such chargers do
  without a tariff: at its full power (32 A) from the latest start that still reaches
  the target, plus 10 % and 5 min of margin.
- openevse: an OpenEVSE-like divert: fed every 10 s, surplus smoothed by an exponential
  filter (20 s rising, 600 s falling), start when the smoothed surplus reaches 6.5 A, rate
  follows the raw surplus (>= 6 A), stop below 6 A smoothed after 600 s of charging.
"""

import math

_V = 230.0  # single-phase AC charger, V


class Idle:
    ideal = False

    def reset(self, plant, scen):
        pass

    def control(self, t_ms, plant, permits):
        pass


class Oracle:
    ideal = True
    car_export = False  # True: oracle-free
    grid_only = False  # True: oracle-grid (the physical limit even when prices exist)

    def reset(self, plant, scen):
        self.scen = scen
        self.sp = 0.0
        self.bsp = 0.0
        self.plan = None
        if scen.has_prices and not self.car_export and not self.grid_only:
            from gwhost import oracleplan

            self.plan = oracleplan.CostPlan(scen, scen.gateway_config.get("plan") or {})
            self.k = -1

    def control(self, t_ms, plant, permits):
        s = self.scen
        if self.plan is not None and plant.ev_plugged and plant.grid_up_now:
            return self._planned(t_ms, plant, permits)
        if not plant.ev_plugged:
            self.sp = 0.0
            return
        load, pv, up, isl = plant.inputs()
        if not plant.ev_session_open:
            plant.set_ev_session(True)
        soc = plant.ev_soc_reported
        cap_d = min(s.ev_max_discharge_w, permits.limit_w)
        if not up:
            # backup: form the island (the plant balances up to the cap)
            w = -cap_d if (isl and permits.island and permits.discharge
                           and soc > s.ev_soc_reserve_pct) else 0.0
        else:
            if plant.pv_tripped:
                pv = 0.0  # the PV inverter is still waiting to reconnect
            want = s.grid_target_w - (load - pv + plant.batt_w)
            hi = min(s.ev_max_charge_w, permits.limit_w) \
                if permits.charge and soc < s.ev_soc_max_pct else 0.0
            lo = -cap_d if permits.discharge and permits.export and \
                soc > s.ev_soc_reserve_pct else 0.0
            w = min(max(want, lo), hi)
            mn = s.charger_min_w
            if 0 < w < mn or (self.car_export and -mn < w < 0):
                # the minimum: whichever of 0 and +-min leaves less |grid|
                w = math.copysign(mn, w) if abs(w) >= mn / 2 else 0.0
            elif -mn < w < 0:
                w = 0.0  # discharging min_w would push car energy into the grid
                if w < lo or w > hi:
                    w = 0.0
        if w != self.sp:
            self.sp = w
            plant.set_ev_setpoint(w)


    def _planned(self, t_ms, plant, permits):
        """Execute interval k's (a, g, d) budgets: absorb surplus, buy g spread over the
        interval, cover deficit, all at zero latency."""
        from gwhost import oracleplan

        s, pl = self.scen, self.plan
        k = int(t_ms // (oracleplan.INTERVAL_S * 1000))
        end_ms = (k + 1) * oracleplan.INTERVAL_S * 1000
        soc = plant.ev_soc_pct
        if k != self.k:
            self.k = k
            self.a, self.g, self.d = pl.parts(k)
            # a budget within 5 Wh of the whole surplus / deficit means all of it
            if self.d > 0 and pl.D[k] - self.d <= 5.0:
                self.d = float("inf")
            if self.a > 0 and pl.S[k] - self.a <= 5.0:
                self.a = float("inf")
        if not plant.ev_session_open:
            plant.set_ev_session(True)
        load, pv, _, _ = plant.inputs()
        if plant.pv_tripped:
            pv = 0.0
        net = load - pv + plant.batt_w
        h = 0.2 / 3600.0  # one 200 ms step, h
        hi = min(s.ev_max_charge_w, permits.limit_w) \
            if permits.charge and soc < s.ev_soc_max_pct else 0.0
        if s.fuse_a is not None:
            room = min(3 * s.voltage_v * s.fuse_a - 3 * load * x + pv for x in s.phase_split)
            hi = max(0.0, min(hi, room))
        lo = -min(s.ev_max_discharge_w, permits.limit_w) if permits.discharge and \
            permits.export and soc > s.ev_soc_reserve_pct else 0.0
        absorb = min(max(-net, 0.0), self.a / h, hi)
        cover = min(max(net, 0.0), self.d / h, -lo)
        if cover < s.charger_min_w:
            cover = 0.0
        left_h = max((end_ms - t_ms) / 3600000.0, h)
        grid = min(self.g / left_h, hi - absorb)
        w = absorb + grid - cover
        if 0 < w < s.charger_min_w:
            w = s.charger_min_w if w >= s.charger_min_w / 2 and hi >= s.charger_min_w else 0.0
        self.a -= absorb * h
        self.g -= max(grid, 0.0) * h
        self.d -= cover * h
        if w != self.sp:
            self.sp = w
            plant.set_ev_setpoint(w)


class AcPv:
    """evcc-like PV mode of an AC wallbox."""

    ideal = False
    cycle_ms = 30000
    enable_ms = 60000
    disable_ms = 180000
    min_a = 6
    max_a = 32

    def reset(self, plant, scen):
        self.scen = scen
        self.enabled = False
        self.t_above = None  # since when the surplus has been above the minimum
        self.t_below = None
        self.sp = 0.0
        self.next_ms = plant.t_ms
        self.planning = False

    def _plan_w(self, t_ms, plant):
        """Full power while the departure plan needs it, else 0."""
        s = self.scen
        t = t_ms / 1000.0
        for _, end in s.departures():
            if end > t:
                if plant.plugged_window < 0 or s.plugged[plant.plugged_window][1] != end:
                    return 0.0
                mx = min(self.max_a * _V, s.ev_max_charge_w)
                need = (s.departure_soc_pct - plant.ev_soc_pct) / 100.0 * s.ev_capacity_wh \
                    / (s.charger_efficiency_pct / 100.0)
                if need <= 0:
                    return 0.0
                t_need = need / mx * 3600.0
                # once started it runs to the target (no start/stop on the margin)
                return mx if self.planning or end - t <= t_need * 1.1 + 300 else 0.0
        return 0.0

    def control(self, t_ms, plant, permits):
        s = self.scen
        ok = plant.ev_plugged and permits.charge and plant.ev_soc_reported < s.ev_soc_max_pct
        if not ok:
            self._set(plant, False, 0.0)
            self.t_above = self.t_below = None
            return
        if s.departure_soc_pct is not None and t_ms >= self.next_ms:
            pw = self._plan_w(t_ms, plant)
            if pw > 0 or self.planning:
                self.planning = pw > 0
                if pw > 0:
                    self.next_ms = t_ms + self.cycle_ms
                    self._set(plant, True, pw)
                    return
        if t_ms < self.next_ms:
            return
        self.next_ms = t_ms + self.cycle_ms
        surplus = -plant.meter_grid_w + plant.ev_reported_w
        mn = self.min_a * _V
        mx = min(self.max_a * _V, s.ev_max_charge_w)
        if surplus >= mn:
            self.t_below = None
            if self.t_above is None:
                self.t_above = t_ms
        else:
            self.t_above = None
            if self.t_below is None:
                self.t_below = t_ms
        if not self.enabled:
            if self.t_above is not None and t_ms - self.t_above >= self.enable_ms:
                self._set(plant, True, min(max(math.floor(surplus / _V) * _V, mn), mx))
            return
        if self.t_below is not None and t_ms - self.t_below >= self.disable_ms:
            self._set(plant, False, 0.0)
            return
        self._set(plant, True, min(max(math.floor(surplus / _V) * _V, mn), mx))

    def _set(self, plant, on, w):
        if on and not plant.ev_session_open:
            plant.set_ev_session(True)
        if w != self.sp:
            self.sp = w
            plant.set_ev_setpoint(w)
        if not on and plant.ev_session_open:
            plant.set_ev_session(False)
        self.enabled = on


class OpenEvseLike(AcPv):
    cycle_ms = 10000
    min_charge_ms = 600000

    def reset(self, plant, scen):
        super().reset(plant, scen)
        self.smooth = 0.0
        self.t_on = None

    def control(self, t_ms, plant, permits):
        s = self.scen
        ok = plant.ev_plugged and permits.charge and plant.ev_soc_reported < s.ev_soc_max_pct
        if not ok:
            self._set(plant, False, 0.0)
            return
        if t_ms < self.next_ms:
            return
        dt = self.cycle_ms / 1000.0
        self.next_ms = t_ms + self.cycle_ms
        surplus = -plant.meter_grid_w + plant.ev_reported_w
        tau = 20.0 if surplus > self.smooth else 600.0
        self.smooth += (surplus - self.smooth) * (1 - math.exp(-dt / tau))
        mn = self.min_a * _V
        mx = min(self.max_a * _V, s.ev_max_charge_w)
        if not self.enabled:
            if self.smooth >= mn + 0.5 * _V:
                self.t_on = t_ms
                self._set(plant, True, min(max(math.floor(surplus / _V) * _V, mn), mx))
            return
        if self.smooth < mn and t_ms - self.t_on >= self.min_charge_ms:
            self._set(plant, False, 0.0)
            return
        self._set(plant, True, min(max(math.floor(surplus / _V) * _V, mn), mx))


class OracleFree(Oracle):
    car_export = True


class OracleGrid(Oracle):
    """The zero-latency oracle without the price plan: on price scenarios the reference
    of `effectiveness` (least grid exchange), while `oracle` is the cheapest plan."""

    grid_only = True


BASELINES = {"idle": Idle, "oracle": Oracle, "oracle-free": OracleFree,
             "oracle-grid": OracleGrid, "ac-pv": AcPv, "openevse": OpenEvseLike}
