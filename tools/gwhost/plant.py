"""The plant: the house, its PV and load, the car behind a bidirectional DC charger, an
optional home battery, the grid with its outages and the transfer switch (CPython).

It is driven in steps of virtual time and is the same object for the lockstep benchmark
(`gwhost.lockstep`, 200 ms steps) and the live simulator (`gwhost.house`, run by
`tools/sim-live` and `make sim`), which serves the charger and inverter over Modbus and the
contact and analog truth over a loopback link, calling `step()` on the wall clock.

API
    p = Plant(scenario, start_s=0)          # scenario: gwhost.scenario.Scenario
                                            # ideal=True: no response time, ramp or session
                                            # start delay (the oracle's zero-latency plant)
    p.set_ev_setpoint(w)                    # + charge / - discharge, AC W; applied after
                                            # the charger's response time, then ramped
    p.set_ev_session(on)                    # open (counted in ev_starts) / close contactors
    p.set_batt_setpoint(w)                  # home battery, + charge (immediate)
    p.set_export_limit(w_or_None)           # inverter export limit (None = unlimited)
    p.set_interlock(energised)              # False = export blocked (hardware, immediate)
    p.inputs()                              # (load_w, pv_w, grid_up, switch_island) that
                                            # the next step will use (the oracle peeks)
    p.step(dt_ms)                           # advance; then read the state below

State after a step (W are averages over that step; + import / + charging):
    t_ms, grid_w, pv_w (available), curtailed_w, load_w, unserved_w, ev_w, batt_w,
    ev_soc_pct, ev_plugged, ev_session_open, batt_soc_pct, grid_up (whole step),
    switch_island, island_former ("charger" / "battery" / None),
    meter_grid_w / meter_valid / meter_seq / meter_t_ms (the last complete metering window
    at the connection point, `meter_window_ms` long: what the firmware sees),
    ev_reported_w (the charger's own power reading), ev_writes, ev_starts,
    phase_a (signed current per phase L1..L3 over the step, + import),
    meter_ph_w (per-phase power of the last metering window), ev_cmd_w (last written
    setpoint), departures ([(t_s, soc_pct)] at the end of each plugged window).
Energy accumulators (Wh, full step resolution): grid_import_wh, grid_export_wh, pv_wh
(produced), load_wh (demand), ev_charge_wh, ev_discharge_wh, ev_to_grid_wh,
island_export_wh, unserved_wh, backup_unserved_wh, curtailed_wh, batt_charge_wh,
batt_discharge_wh. Fuse (per step): max_phase_a (largest |current| on any phase),
fuse_overload_steps (steps with a phase above grid.fuse_a; fuse_charging_steps and
fuse_charging_run_max: those in which the car was charging), fuse_overload_run_max (longest
run of such steps).

Phases: the house load splits over L1..L3 by grid.phase_split_pct; the car (a three-phase
DC charger), PV and the home battery are balanced. I = P / voltage_v per phase.

Physics, in the order applied each step:
- PV and load are zero-order holds of the scenario series.
- Charger: a setpoint takes effect `response_s` after it is written (dead time), then the
  power ramps at `ramp_w_per_s`. Non-zero magnitudes below `min_w` are raised to `min_w`.
  A session takes `session_start_s` to open; no power flows until then. Unplugging closes
  it. The car's BMS stops charge at 100 % and discharge at 0 %; the user limits (reserve,
  max SoC) are the controller's job. Efficiency: the battery gets ev_w * eff when charging
  and gives |ev_w| / eff when discharging.
- Interlock de-energised (export blocked): the charger cannot discharge and the inverter
  cannot export, immediately, unless the house is islanded (then the block is on the grid
  side and backup is allowed).
- Outage with the switch at grid (or a flicker): the PV inverter trips (its own certified
  protection) and reconnects `pv_reconnect_s` after the grid returns; nothing can charge;
  any discharge that passes (interlock energised) feeds the dead grid: island export.
  The house load is unserved.
- Outage with the switch at island: the house is isolated (grid_w = 0). The charger forms
  the island when its session is open and its effective setpoint is negative: it then covers
  load - PV instantly up to |setpoint| (and absorbs PV surplus up to its charge limit).
  Otherwise a home battery forms it. Without a former the house is dark (load unserved,
  PV off). Load beyond the former's limit is unserved; PV beyond it is curtailed.
"""

import collections

_H = 3600000.0  # ms per h: W * ms / _H = Wh


class Plant:
    def __init__(self, scen, start_s=0.0, session_start_s=10.0, pv_reconnect_s=60.0,
                 meter_window_ms=200, ev_power_gain=1.0, ideal=False):
        self.scen = scen
        self.ideal = ideal
        self.t_ms = round(start_s * 1000)
        self.session_start_ms = int(session_start_s * 1000)
        self.pv_reconnect_ms = int(pv_reconnect_s * 1000)
        self.meter_window_ms = meter_window_ms
        self.ev_power_gain = ev_power_gain  # the charger's own power reading: gain error
        # series
        self._ts, self._pv, self._load = scen.t_s, scen.pv_w, scen.load_w
        self._idx = 0
        # car and charger
        self.ev_capacity_wh = float(scen.ev_capacity_wh)
        self.min_w = float(scen.charger_min_w)
        self.max_charge_w = float(scen.ev_max_charge_w)
        self.max_discharge_w = float(scen.ev_max_discharge_w)
        self.response_ms = round(scen.charger_response_s * 1000)
        self.ramp_w_ms = scen.charger_ramp_w_per_s / 1000.0
        self.eff = scen.charger_efficiency_pct / 100.0
        self._win = -1  # index of the plugged window the car is in, -1: away
        self._left_soc = scen.ev_soc_start_pct
        self.ev_soc_pct = float(scen.ev_soc_start_pct)
        self.ev_plugged = False
        self._sess = 0  # 0 closed, 1 starting, 2 open
        self._t_open_ms = 0
        self._queue = collections.deque()  # (t_effective_ms, w)
        self.ev_setpoint_w = 0.0  # the setpoint in effect (after the response time)
        self._p = 0.0  # charger power at the end of the last step
        self.ev_writes = 0
        self.ev_starts = 0
        # home battery
        hb = scen.home_battery
        self.has_battery = hb is not None
        self.batt_soc_pct = float(hb["soc_start_pct"]) if hb else 0.0
        self._batt_sp = 0.0
        # grid, switch, inverter
        self._events = scen.events
        self.interlock = True
        self.export_limit_w = None
        self._pv_ok_at = self.t_ms  # t_ms from which the PV inverter runs; None: tripped
        # state after the last step
        self.grid_w = self.pv_w = self.curtailed_w = self.load_w = 0.0
        self.unserved_w = self.ev_w = self.batt_w = 0.0
        self.grid_up, self.switch_island = self._grid_at(self.t_ms)
        self.island_former = None
        self.meter_grid_w = 0.0
        self.meter_valid = False
        self.meter_seq = 0
        self.meter_t_ms = self.t_ms
        self.ev_reported_w = 0.0
        self.ev_cmd_w = 0.0
        self.departures = []
        self.split = scen.phase_split
        self.volt = float(scen.voltage_v)
        self.fuse_a = scen.fuse_a
        self.phase_a = [0.0, 0.0, 0.0]
        self.meter_ph_w = [0.0, 0.0, 0.0]
        self._win_ph = [0.0, 0.0, 0.0]
        self.max_phase_a = 0.0
        self.fuse_overload_steps = 0
        self.fuse_overload_run_max = 0
        self._fuse_run = 0
        self.fuse_charging_steps = 0  # of those, steps in which the car was charging
        self.fuse_charging_run_max = 0
        self._fuse_crun = 0
        self._win_e = self._win_t = 0.0
        self._win_down = False
        for k in ("grid_import_wh", "grid_export_wh", "pv_wh", "load_wh", "ev_charge_wh",
                  "ev_discharge_wh", "ev_to_grid_wh", "island_export_wh", "unserved_wh",
                  "backup_unserved_wh", "curtailed_wh", "batt_charge_wh", "batt_discharge_wh"):
            setattr(self, k, 0.0)
        self._plug_update()

    # -- commands -------------------------------------------------------------------------
    def set_ev_setpoint(self, w):
        self.ev_writes += 1
        self.ev_cmd_w = float(w)
        if self.ideal:
            self.ev_setpoint_w = float(w)
        else:
            self._queue.append((self.t_ms + self.response_ms, float(w)))

    def set_ev_session(self, on):
        if on and self._sess == 0 and self.ev_plugged:
            self._sess = 1
            self._t_open_ms = self.t_ms
            self.ev_starts += 1
            if self.ideal:
                self._sess = 2
        elif not on and self._sess:
            self._sess = 0
            self._p = 0.0

    def set_batt_setpoint(self, w):
        self._batt_sp = float(w)

    def set_export_limit(self, w):
        self.export_limit_w = None if w is None else max(0.0, float(w))

    def set_interlock(self, energised):
        self.interlock = bool(energised)

    # -- readings -------------------------------------------------------------------------
    @property
    def ev_session_open(self):
        return self._sess == 2

    @property
    def ev_soc_reported(self):
        """The SoC the car reports: whole percent, rounded down."""
        return int(self.ev_soc_pct)

    @property
    def grid_up_now(self):
        """Grid present at the current time (what the next step will see)."""
        return self._grid_at(self.t_ms)[0]

    @property
    def pv_tripped(self):
        """The PV inverter is off after a grid loss, waiting out its reconnection time."""
        return self._pv_ok_at is None or self.t_ms < self._pv_ok_at

    def inputs(self):
        i = self._series_index(self.t_ms / 1000.0)
        up, isl = self._grid_at(self.t_ms)
        return self._load[i], self._pv[i], up, isl

    def _series_index(self, t_s):
        ts, i = self._ts, self._idx
        while i + 1 < len(ts) and ts[i + 1] <= t_s:
            i += 1
        if ts[i] > t_s:  # start inside the series (or before it)
            i = 0
            while i + 1 < len(ts) and ts[i + 1] <= t_s:
                i += 1
        self._idx = i
        return i

    def _grid_at(self, t_ms):
        t = t_ms / 1000.0
        for a, b, isl in self._events:
            if a <= t < b:
                return False, isl
            if a > t:
                break
        return True, False

    def _plug_update(self):
        t = self.t_ms / 1000.0
        win = -1
        for i, (a, b, _) in enumerate(self.scen.plugged):
            if a <= t < b:
                win = i
                break
        if win == self._win:
            return
        if self._win >= 0:  # departs
            self._left_soc = self.ev_soc_pct
            self.departures.append((t, self.ev_soc_pct))
            self._sess = 0
            self._p = 0.0
        if win >= 0:  # arrives
            self.ev_soc_pct = float(self.scen.arrival_soc(win, self._left_soc))
        self._win = win
        self.ev_plugged = win >= 0

    # -- physics --------------------------------------------------------------------------
    def _charger_target(self):
        if not self.ev_plugged or self._sess != 2:
            return 0.0
        w = self.ev_setpoint_w
        if 0 < w < self.min_w:
            w = self.min_w
        elif -self.min_w < w < 0:
            w = -self.min_w
        w = min(w, self.max_charge_w) if w > 0 else max(w, -self.max_discharge_w)
        if (w > 0 and self.ev_soc_pct >= 100) or (w < 0 and self.ev_soc_pct <= 0):
            w = 0.0
        return w

    def _ramp(self, target, dt):
        """Charger power over the step: (average, end) moving from self._p at the ramp."""
        p0 = self._p
        if self.ideal:
            return target, target
        d = target - p0
        reach = abs(d) / self.ramp_w_ms if self.ramp_w_ms > 0 else float("inf")
        if reach >= dt:
            p1 = p0 + (self.ramp_w_ms * dt if d > 0 else -self.ramp_w_ms * dt)
            return (p0 + p1) / 2, p1
        return ((p0 + target) / 2 * reach + target * (dt - reach)) / dt, target

    def _batt_power(self):
        if not self.has_battery:
            return 0.0
        hb = self.scen.home_battery
        w = self._batt_sp
        if w > 0:
            w = min(w, hb["max_charge_w"]) if self.batt_soc_pct < hb["soc_max_pct"] else 0.0
        elif w < 0:
            w = max(w, -hb["max_discharge_w"]) if self.batt_soc_pct > hb["soc_min_pct"] else 0.0
        return w

    def step(self, dt_ms):
        dt = float(dt_ms)
        t = self.t_ms
        i = self._series_index(t / 1000.0)
        load, pv_av = self._load[i], self._pv[i]
        up, isl = self._grid_at(t)
        if not up and not isl:
            self._pv_ok_at = None  # tripped; the restart time is set when the grid returns
        elif up and self._pv_ok_at is None:
            self._pv_ok_at = t + self.pv_reconnect_ms
        q = self._queue
        while q and q[0][0] <= t:
            self.ev_setpoint_w = q.popleft()[1]
        if self._sess == 1 and t - self._t_open_ms >= self.session_start_ms:
            self._sess = 2
        ev, p_end = self._ramp(self._charger_target(), dt)
        bt = self._batt_power()
        unserved = curtailed = 0.0
        former = None
        if up:
            if not self.interlock:  # hardware export block: no discharge at all
                if ev < 0 or p_end < 0:
                    ev = p_end = 0.0
                bt = max(bt, 0.0)
            pv = pv_av if t >= self._pv_ok_at else 0.0
            grid = load - pv + ev + bt
            limit = 0.0 if not self.interlock else self.export_limit_w
            if limit is not None and grid < -limit:
                cut = min(pv, -limit - grid)
                pv -= cut
                grid += cut
            curtailed = pv_av - pv
        elif not isl:  # dead grid, house still connected: nothing may feed it
            pv = 0.0
            curtailed = pv_av
            ev = p_end = min(ev, 0.0) if self.interlock else 0.0
            bt = min(bt, 0.0) if self.interlock else 0.0
            sources = -ev - bt
            served = min(load, sources)
            unserved = load - served
            grid = served - sources
        else:  # islanded house
            grid = 0.0
            charger_forms = self.ev_plugged and self._sess == 2 and self.ev_setpoint_w < 0 \
                and self.ev_soc_pct > 0
            if charger_forms:
                former = "charger"
                cap = min(-self.ev_setpoint_w, self.max_discharge_w)
                chg = self.max_charge_w if self.ev_soc_pct < 100 else 0.0
                need = load - pv_av + bt
                ev = min(max(-need, -cap), chg)
            elif self.has_battery and self.batt_soc_pct > self.scen.home_battery["soc_min_pct"]:
                former = "battery"
                hb = self.scen.home_battery
                ev = 0.0
                need = load - pv_av
                chg = hb["max_charge_w"] if self.batt_soc_pct < hb["soc_max_pct"] else 0.0
                bt = min(max(-need, -hb["max_discharge_w"]), chg)
            else:
                ev = bt = 0.0
            p_end = ev
            if former is None:
                pv, unserved = 0.0, load
            else:
                pv = pv_av
                bal = load - pv + ev + bt  # > 0: load short; < 0: PV left over
                if bal > 0:
                    unserved = bal
                elif bal < 0:
                    pv += bal
            curtailed = pv_av - pv
            grid = (load - unserved) - pv + ev + bt  # 0 up to rounding
        self._p = p_end
        self.island_former = former
        self._integrate(dt, load, pv_av, pv, curtailed, unserved, ev, bt, grid, up, isl)
        self.t_ms = t + dt_ms
        self._plug_update()

    def _integrate(self, dt, load, pv_av, pv, curtailed, unserved, ev, bt, grid, up, isl):
        self.load_w, self.pv_w, self.curtailed_w, self.unserved_w = load, pv_av, curtailed, \
            unserved
        self.ev_w, self.batt_w, self.grid_w = ev, bt, grid
        self.grid_up, self.switch_island = up, isl
        k = dt / _H
        if ev > 0:
            self.ev_soc_pct += ev * self.eff * k / self.ev_capacity_wh * 100
            self.ev_charge_wh += ev * k
        elif ev < 0:
            self.ev_soc_pct += ev / self.eff * k / self.ev_capacity_wh * 100
            self.ev_discharge_wh -= ev * k
        if bt:
            hb = self.scen.home_battery
            e = hb["efficiency_pct"] / 100.0
            self.batt_soc_pct += (bt * e if bt > 0 else bt / e) * k / hb["capacity_wh"] * 100
            if bt > 0:
                self.batt_charge_wh += bt * k
            else:
                self.batt_discharge_wh -= bt * k
        if grid > 0:
            self.grid_import_wh += grid * k
        elif grid < 0:
            self.grid_export_wh -= grid * k
            if up and ev < 0:
                self.ev_to_grid_wh += min(-ev, -grid) * k
        self.pv_wh += pv * k
        self.load_wh += load * k
        self.unserved_wh += unserved * k
        self.curtailed_wh += curtailed * k
        if not up:
            if isl:
                self.backup_unserved_wh += unserved * k
                self.island_export_wh += max(0.0, -grid) * k
            else:
                self.island_export_wh += (pv + max(0.0, -ev) + max(0.0, -bt)) * k
        self.ev_reported_w = ev * self.ev_power_gain
        # phases: the house load by the split, the rest balanced; the fuse sees |I|
        bal = (ev + bt - pv) / 3.0
        over = False
        wph = self._win_ph
        for k in range(3):
            pk = (load - unserved) * self.split[k] + bal if up else 0.0
            self.phase_a[k] = pk / self.volt
            wph[k] += pk * dt
            a = abs(self.phase_a[k])
            self.max_phase_a = max(self.max_phase_a, a)
            if self.fuse_a is not None and a > self.fuse_a:
                over = True
        if over:
            self.fuse_overload_steps += 1
            self._fuse_run += 1
            self.fuse_overload_run_max = max(self.fuse_overload_run_max, self._fuse_run)
        else:
            self._fuse_run = 0
        if over and ev > 0:  # the car draws power while a phase is over: charging's part
            self.fuse_charging_steps += 1
            self._fuse_crun += 1
            self.fuse_charging_run_max = max(self.fuse_charging_run_max, self._fuse_crun)
        else:
            self._fuse_crun = 0
        # metering window at the connection point
        self._win_e += grid * dt
        self._win_t += dt
        self._win_down = self._win_down or not up
        if self._win_t >= self.meter_window_ms:
            self.meter_grid_w = self._win_e / self._win_t
            for k in range(3):
                self.meter_ph_w[k] = wph[k] / self._win_t
                wph[k] = 0.0
            self.meter_valid = not self._win_down
            self.meter_seq += 1
            self.meter_t_ms = self.t_ms + int(dt)
            self._win_e = self._win_t = 0.0
            self._win_down = False
