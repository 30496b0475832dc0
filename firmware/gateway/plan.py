# The planner: what the car should do in the current price interval (docs/planning.md).
#
# Called on a slow cadence (once a second) with the time passed in: now_s (seconds since
# 2000-01-01 UTC, gateway.tariff) and tod_s (local time of day, s). It never reads a clock.
# It keeps the daily discharge throughput and a slow average of the house load, and
# replans on a new interval, a new schedule or departure, a SoC change or every
# _REPLAN_S. Its result goes into the controller as three plain ints per replan
# (Controller.plan_force_w / plan_floor_pct / plan_v2h), which Controller.step reads.
# Integers only; the arrays are preallocated: update() and replan() allocate nothing.
#
# Decisions, per interval:
# - departure (target SoC by a time): the energy still missing goes to the cheapest
#   intervals before the departure (latest first among equal prices; without prices: as
#   late as possible at the planning power). Surplus charging counts first: every replan
#   starts from the SoC reached. Discharge (V2H) stays above what the plan can still
#   refill before the departure, and goes below the target only when the price now beats
#   the price of refilling (through two conversions) by min_spread_meur.
# - V2H when prices exist: the car's energy above the floor is kept for the most
#   expensive intervals (forecast load = the recent net house load).
# - surplus: stored unless the car's energy above the floor already covers every forecast
#   deficit of the schedule and the export price now beats buying the energy back in
#   the schedule's cheapest interval (after losses): then exported.
# - cheap-hour charging (grid_charge, default off): energy for later V2H is bought in
#   cheap intervals when the spread (after losses) is at least min_spread_meur.
# - wear: once the day's discharge reaches wear_wh_day, no V2H (backup and fuse shaving
#   excepted) and no cheap-hour charging.
import json as _json
from array import array

from gateway.plan_cfg import (  # noqa: F401 - re-exported: the config section of this module
    LIVE,
    SCHEMA,
    make_config,
    wall_s,
)
from micropython import const

_REPLAN_S = const(60)
_RAISE_AFTER_S = const(2)  # a raise of grid charging waits this long into its slot
_HORIZON = const(96)  # intervals planned ahead (24 h of 15-min prices)
_NONE = const(-1)
_BIG = const(1 << 29)


class Planner:
    def __init__(self, cfg, tariff):
        self.cfg = make_config(cfg)
        self.tariff = tariff
        self._configure(self.cfg)
        self.dep_at_s = _NONE  # absolute departure (seconds since 2000), or _NONE
        self.dep_abs = False  # set by set_departure() rather than the daily config
        self.tgt = 0  # the departure SoC the plan works to (capped at the max SoC)
        # planning arrays: price, capacity (Wh AC), allocation (Wh AC) per interval
        self._p = array("i", [0] * _HORIZON)
        self._capw = array("i", [0] * _HORIZON)
        self._alloc = array("i", [0] * _HORIZON)
        self._dfc = array("i", [0] * _HORIZON)  # forecast deficit (Wh AC) per interval
        self._n = 0
        # outputs
        self.force_w = 0  # charge at least this (grid energy for the plan)
        self.force_out = 0  # what the controller was handed (a raise waits into its slot)
        self.floor_pct = 0  # discharge only above this SoC (the reserve or higher)
        self.v2h = True  # discharge to the house allowed in this interval
        self.absorb = True  # surplus charging allowed in this interval
        self.need_wh = 0  # energy (AC) still missing for the departure
        self.price = 0  # import price now, milli-EUR/kWh (0 without a schedule)
        self.autonomy_min = 0  # backup hours from car + battery at the recent load, minutes
        # state
        self.t_s = _NONE
        self.load_q4 = 0  # recent house load, W << 4
        self.net_q4 = 0  # recent net load (house - PV, >= 0), W << 4
        self.thru_wh = 0  # car discharge today, Wh (wear)
        self._thr_ws = 0
        self._day_tod = 0
        self._slot = -2
        self._seq = -1
        self._soc = -1
        self._dep = _NONE
        self._next_s = 0
        self.replans = 0

    def set_departure(self, at_s, soc_pct):
        """A one-off departure (seconds since 2000, target SoC); at_s < 0 clears it and
        the daily departure (config) applies again."""
        self.dep_abs = at_s >= 0
        self.dep_at_s = at_s if at_s >= 0 else _NONE
        if at_s >= 0:
            self.dep_soc = soc_pct
        self._next_s = 0

    def _configure(self, c):
        """The settings in use, from the complete section `c` (start and live changes)."""
        self.cap_wh = c["ev_capacity_wh"]
        self.eff = c["efficiency_pct"]
        self.plan_w = c["plan_w"]
        self.grid_charge = c["grid_charge"]
        self.spread = c["min_spread_meur"]
        self.wear_wh = c["wear_wh_day"]
        self.bcap_wh = c["batt_capacity_wh"]
        self.tau_s = c["load_tau_s"]
        self.dep_min = c["departure_min"]
        self.dep_soc = c["departure_soc_pct"]

    def apply_setting(self, key, value):
        """A live change of a plan setting (already validated; every key is LIVE)."""
        c = self.cfg
        c[key] = value
        if key == "departure_min" or key == "departure_soc_pct":
            self.set_daily(c["departure_min"], c["departure_soc_pct"])
        else:
            self._configure(c)
            self._next_s = 0  # replan with it at the next update

    def set_daily(self, minute, soc_pct):
        """The daily departure (config / command): local minute of day, -1 = none."""
        self.dep_min = minute
        self.dep_soc = soc_pct
        self._next_s = 0

    # -- once a second --------------------------------------------------------------
    def update(self, now_s, tod_s, ctl, meter, charger, inverter):
        """Integrate, replan when due, and hand the plan to `ctl` (a Controller)."""
        dt = 0 if self.t_s == _NONE else now_s - self.t_s
        dt = 0 if dt < 0 else min(dt, 600)
        self.t_s = now_s
        if tod_s < self._day_tod:  # local midnight passed: a new wear day
            self.thru_wh = 0
            self._thr_ws = 0
        self._day_tod = tod_s
        if dt:
            p = charger.power_w if charger.online else 0
            if p < 0:
                self._thr_ws -= p * dt
                q = self._thr_ws // 3600
                self.thru_wh += q
                self._thr_ws -= q * 3600
            net = meter.grid_w - (charger.power_w if charger.online else 0) - \
                (inverter.batt_w if inverter.has_battery else 0)
            house = net + inverter.pv_w
            a = dt if dt < self.tau_s else self.tau_s
            self.load_q4 += ((max(0, min(house, 100000)) << 4) - self.load_q4) * a // self.tau_s
            self.net_q4 += ((max(0, min(net, 100000)) << 4) - self.net_q4) * a // self.tau_s
        if not self.dep_abs:
            self._daily(now_s, tod_s)
        self._autonomy(ctl, charger, inverter)
        t = self.tariff
        slot = t.index(now_s) if t is not None else -1
        soc = charger.soc_pct
        if slot != self._slot or (t is not None and t.seq != self._seq) or soc != self._soc \
                or self.dep_at_s != self._dep or now_s >= self._next_s:
            self._slot = slot
            self._seq = t.seq if t is not None else -1
            self._soc = soc
            self._dep = self.dep_at_s
            self._next_s = now_s + _REPLAN_S
            # a target above the controller's max SoC could never be reached: cap it
            self.tgt = min(self.dep_soc, ctl.soc_max_pct)
            self.replan(now_s, soc, ctl.reserve_pct, charger.plugged)
        f = self.force_w
        if f > self.force_out and slot >= 0 and \
                now_s - (t.start_s + slot * t.slot_s) < _RAISE_AFTER_S:
            # Loads on timers switch at the tariff's slot boundaries too: a raise of grid
            # charging waits until the meter has seen them, or it would arrive through the
            # charger's dead time on top of them (measured: a 4.5 kW heater at 02:00 and
            # the 02:00 raise put L1 0.4 A over the fuse for two cycles).
            f = self.force_out
        self.force_out = f
        ctl.plan_force_w = f
        ctl.plan_floor_pct = self.floor_pct
        ctl.plan_v2h = self.v2h
        ctl.plan_absorb = self.absorb

    def _daily(self, now_s, tod_s):
        if self.dep_min < 0 or self.dep_soc == 0:
            self.dep_at_s = _NONE
            return
        d = self.dep_min * 60 - tod_s
        if d <= 0:
            d += 86400
        self.dep_at_s = now_s + d

    def _autonomy(self, ctl, charger, inverter):
        e = 0  # usable Wh above the reserves (what the house gets, after conversion)
        if charger.online and charger.plugged and charger.soc_pct > ctl.reserve_pct:
            e += (charger.soc_pct - ctl.reserve_pct) * self.cap_wh // 100 * self.eff // 100
        if inverter.has_battery and self.bcap_wh and inverter.batt_soc_pct > ctl.batt_min_pct:
            e += (inverter.batt_soc_pct - ctl.batt_min_pct) * self.bcap_wh // 100
        w = max(self.load_q4 >> 4, 50)  # a floor: standby is never free
        self.autonomy_min = min(e * 60 // w, 99999)

    # -- the plan ---------------------------------------------------------------------
    def _slots(self, now_s, end_s):
        """Fill price / capacity arrays for the intervals from now to end_s (or the
        schedule's end); returns their count. Beyond the schedule: no intervals."""
        t = self.tariff
        i = t.index(now_s)
        n = 0
        s = now_s
        while i >= 0 and i < t.n and n < _HORIZON and s < end_s:
            e = min(t.slot_end(i), end_s)
            self._p[n] = t.imp[i]
            self._capw[n] = self.plan_w * (e - s) // 3600
            self._alloc[n] = 0
            self._dfc[n] = (self.net_q4 >> 4) * (e - s) // 3600
            n += 1
            s = e
            i += 1
        self._n = n
        return n

    def _cheapest(self, n, lo_idx, max_price):
        """Index of the cheapest interval in [lo_idx, n) with spare capacity and a price
        <= max_price (latest among equals), or -1."""
        best = -1
        bp = _BIG
        for j in range(lo_idx, n):
            if self._alloc[j] < self._capw[j] and self._p[j] <= bp and self._p[j] <= max_price:
                best = j
                bp = self._p[j]
        return best

    def _fill(self, n, wh, upto, max_price):
        """Allocate `wh` (AC) to the cheapest intervals in [0, upto); returns the rest."""
        while wh > 0:
            j = self._cheapest(upto, 0, max_price)
            if j < 0:
                break
            a = min(wh, self._capw[j] - self._alloc[j])
            self._alloc[j] += a
            wh -= a
        return wh

    def replan(self, now_s, soc, reserve_pct, plugged):
        self.replans += 1
        eff = self.eff
        floor = reserve_pct
        force = 0
        v2h = True
        t = self.tariff
        priced = t is not None and t.index(now_s) >= 0
        self.price = t.imp[t.index(now_s)] if priced else 0
        dep = self.dep_at_s
        has_dep = plugged and dep != _NONE and dep > now_s and self.tgt > 0
        need = 0
        if has_dep:
            need = max(0, self.tgt - soc) * self.cap_wh // 100 * 100 // eff
        self.need_wh = need
        worn = self.wear_wh and self.thru_wh >= self.wear_wh
        if not priced:
            if has_dep:
                left = dep - now_s
                t_need = need * 36 // max(1, self.plan_w // 100)  # s; stays < 2**30
                if left <= t_need + t_need // 10 + 60:  # as late as possible (surplus first)
                    force = self.plan_w
                floor = max(floor, self.tgt)  # refilling from the grid is a pure loss
            self._out(force, floor, v2h and not worn)
            return
        n = self._slots(now_s, dep if has_dep else t.end_s())
        if n == 0:
            self._out(0, max(floor, self.tgt) if has_dep else floor, not worn)
            return
        p_now = self._p[0]
        if has_dep:
            left = self._fill(n, need, n, _BIG)
            if left > 0 and n < _HORIZON and self.tariff.end_s() < dep:
                left = 0  # the rest falls after the schedule: planned when prices arrive
            force = self._alloc[0] * 3600 // max(1, min(self.tariff.slot_end(
                self.tariff.index(now_s)), dep) - now_s)
            # refill price of one more kWh, and what could still be refilled at all
            j = self._cheapest(n, 0, _BIG)
            spare = 0
            for k in range(n):
                spare += self._capw[k] - self._alloc[k]
            below = j >= 0 and p_now * eff * eff // 10000 - self._p[j] >= self.spread
            tgt_floor = self.tgt
            if below:  # V2H below the target pays: down to what the spare slots refill
                tgt_floor = self.tgt - (spare * 9 // 10) * eff // 100 * 100 // self.cap_wh
            floor = max(floor, tgt_floor)
        # V2H ranking: the energy above the floor serves the most expensive intervals
        avail = max(0, soc - floor) * self.cap_wh // 100 * eff // 100
        pm = self._marginal(n, avail)
        v2h = p_now >= pm and not worn
        absorb = True
        if pm == -_BIG and not has_dep:  # stored energy is not needed in the schedule
            t = self.tariff
            lo = _BIG
            for j in range(t.n):
                lo = min(lo, t.imp[j])
            absorb = t.exp[t.index(now_s)] <= lo  # 1 Wh stored saves 1 Wh bought back
        if self.grid_charge and not worn and not has_dep:
            self._arbitrage(n, avail)
        force = max(force, self._alloc[0] * 3600 // max(
            1, self.tariff.slot_end(self.tariff.index(now_s)) - now_s))
        if force and v2h and p_now < pm + self.spread:
            v2h = False
        self._out(force, floor, v2h, absorb)

    def _marginal(self, n, avail):
        """The lowest price at which the energy `avail` (Wh AC) is still used: walking the
        intervals from the most expensive, where the forecast deficit exhausts it."""
        used = self._alloc  # reused as a mark: bit 30 set = visited (restored after)
        pm = -_BIG
        mark = 1 << 29
        for _ in range(n):
            best = -1
            bp = -_BIG
            for j in range(n):
                if used[j] < mark and self._p[j] > bp:
                    best = j
                    bp = self._p[j]
            if best < 0:
                break
            used[best] += mark
            pm = bp
            avail -= self._dfc[best]
            if avail <= 0:
                break
        else:
            pm = -_BIG  # enough for every interval: V2H whenever there is load
        for j in range(n):
            if used[j] >= mark:
                used[j] -= mark
        return pm if avail <= 0 else -_BIG

    def _arbitrage(self, n, avail):
        """Cheap-hour charging: deficits the car's energy does not cover, bought earlier
        at a price that beats the later one after two conversions by min_spread."""
        e2 = self.eff * self.eff
        head = (100 - self._soc) * self.cap_wh // 100 * 100 // self.eff
        for h in range(n - 1, 0, -1):
            d = self._dfc[h]
            if avail >= d:
                avail -= d
                continue
            d -= max(0, avail)
            avail = 0
            limit = self._p[h] * e2 // 10000 - self.spread
            wh = d * 100 // self.eff * 100 // self.eff  # AC Wh to buy for d out
            while wh > 0 and head > 0:
                j = self._cheapest(h, 0, limit)
                if j < 0:
                    break
                a = min(wh, head, self._capw[j] - self._alloc[j])
                self._alloc[j] += a
                wh -= a
                head -= a

    def json(self):
        """The plan for the state message: one JSON object (telemetry key "plan")."""
        t = self.tariff
        dep = self.dep_at_s - self.t_s if self.dep_at_s != _NONE and self.t_s != _NONE else -1
        err = t.error if t is not None else None
        return ('{"price":%d,"force_w":%d,"floor_pct":%d,"v2h":%s,"absorb":%s,"need_wh":%d,'
                '"thru_wh":%d,"backup_min":%d,"dep_in_s":%d,"dep_soc_pct":%d,"slots":%d,'
                '"tariff_err":%s}') % (
            self.price, self.force_w, self.floor_pct, "true" if self.v2h else "false",
            "true" if self.absorb else "false", self.need_wh, self.thru_wh,
            self.autonomy_min, dep, self.dep_soc, t.n if t is not None else 0,
            _json.dumps(err[:60]) if err else "null")  # escaped: the text may be crafted

    def _out(self, force, floor, v2h, absorb=True):
        self.force_w = force
        self.floor_pct = floor
        self.v2h = v2h
        self.absorb = absorb
