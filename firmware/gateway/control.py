# The control core: one signed car setpoint (+ charge, - discharge) and the home-battery
# setpoint per cycle, from the grid power at the connection point.
#
# Law (integers only, W unless named): the house's own net load is estimated from the
# measurements, net = grid - ev - batt (load minus PV), so the flexible power that reaches
# the target is want = target - net. This disturbance feed-forward uses the charger's
# MEASURED power, not the commanded one, so setpoints already in flight (the charger's
# ~1 s response) are never stacked: no overshoot from the dead time. A slow integral on the
# grid error removes measurement bias (charger power vs. CT), integrated only while the
# charger has settled on its setpoint (conditional integration = anti-windup) and clamped.
# Then: limits (mode, permits, SoC reserve/max, charger and config maxima), the charger
# minimum (0 or >= min_w: charge from half the minimum, discharge only when the whole
# minimum is covered by house load, so car energy never leaves), a deadband, asymmetric
# ramps (magnitude cuts fast, raises at the charger's ramp), and a write only on change.
# Targets: charging regulates the grid to charge_target_w (0); V2H keeps a small import
# bias grid_target_w so the car's energy never leaves through the connection.
# Sessions (contactors): opened after start_delay_ms of useful work and min_off_ms off,
# closed after stop_delay_ms with nothing to do and min_on_ms on; 0 W keeps the session,
# so charge <-> discharge never restarts it. `writes` and `starts` count device wear.
from micropython import const

from gateway.clock import ticks_add, ticks_diff
from gateway.control_cfg import (
    MODE_AUTO,
    MODE_OFF,
    MODE_V1G,
    PRIO_BATTERY_FIRST,
    PRIO_CAR_FIRST,
    LIVE,  # noqa: F401 - re-exported with SCHEMA: the config section of this module
    SCHEMA,  # noqa: F401
    make_config,
    mode_code,
    prio_code,
)

# Why the car is (not) charging / discharging: Setpoints.reason, for telemetry.
REASON_CHARGING = const(1)
REASON_DISCHARGING = const(2)
REASON_UNPLUGGED = const(3)
REASON_SOC_MAX = const(4)
REASON_RESERVE = const(5)
REASON_NO_SURPLUS = const(6)  # nothing to do: no surplus, no load to cover, or below min_w
REASON_SAFETY_BLOCKED = const(7)
REASON_MODE_OFF = const(8)
REASON_STALE_DATA = const(9)
REASON_BACKUP = const(10)  # islanded: the car backs up the house (grid-forming cap)
REASON_WAIT_START = const(11)  # useful work, session start pending (delay / min off time)
REASON_V1G_ONLY = const(12)  # load to cover, but the mode forbids discharge
REASON_PLAN_HOLD = const(13)  # the plan keeps the energy (price, wear budget, departure)
REASON_FUSE = const(14)  # the main fuse leaves no room to charge
REASON_NAMES = ("none", "charging", "discharging", "unplugged", "soc_max", "reserve",
                "no_surplus", "safety_blocked", "mode_off", "stale_data", "backup",
                "wait_start", "v1g_only", "plan_hold", "fuse_limit")

_CLAMP_W = const(1 << 20)  # any input power is clamped to +/-1 MW: sums stay << 2**30
_Q = const(16)  # integral in W * 2**16
_DT_MAX_MS = const(2000)  # a late step ramps at most this much time's worth
_AGE_PIN_MS = const(1 << 28)
_SETTLE_MAX_MS = const(3000)  # a setpoint the car never reaches (its own limits) stops
# holding the feed-forward after this long
_PH_MAX_MA = const(200000)  # phase currents clamped to +/-200 A: products stay < 2**30
_V_NOM_MV = const(230000)


def _clamp(x, lo, hi):
    return lo if x < lo else min(x, hi)


class Controller:
    def __init__(self, cfg=None):
        c = make_config(cfg)
        self.cfg = c
        self.period_ms = c["period_ms"]  # at start only: the control cycle and its gain
        self._configure(c)
        # the plan (gateway.plan.Planner writes these on its slow cadence): charge at least
        # plan_force_w, discharge only above plan_floor_pct, V2H only with plan_v2h
        self.plan_force_w = 0
        self.plan_floor_pct = 0
        self.plan_v2h = True
        self.plan_absorb = True  # False: surplus is worth more exported than stored
        self._init_state()

    def _configure(self, c):
        """The settings in use, from the complete section `c`: at start and on every live
        change (apply_setting), so a live value acts exactly as if it had been there at
        start. Small ints and bools only: step() reads them without allocating."""
        self.mode = mode_code(c["mode"])
        self.prio = prio_code(c["priority"])
        self.min_w = c["min_w"]
        self.max_charge_w = c["max_charge_w"]
        self.max_discharge_w = c["max_discharge_w"]
        self.charge_target_w = c["charge_target_w"]
        self.v2h_target_w = c["grid_target_w"]
        self.deadband_w = c["deadband_w"]
        self.floor_margin_w = c["floor_margin_w"]
        self.ramp_up_w_s = c["ramp_up_w_s"]
        self.ramp_down_w_s = c["ramp_down_w_s"]
        # integral gain per step in Q16: ki (1/1000 per s) * period, computed once here
        self.ki_q = c["ki_milli_s"] * self.period_ms * (1 << _Q) // 1000000
        self.i_max_q = c["i_max_w"] << _Q
        self.settle_w = c["settle_w"]
        self.start_delay_ms = c["start_delay_ms"]
        self.stop_delay_ms = c["stop_delay_ms"]
        self.min_on_ms = c["min_on_ms"]
        self.min_off_ms = c["min_off_ms"]
        self.reserve_pct = c["soc_reserve_pct"]
        self.soc_max_pct = c["soc_max_pct"]
        self.meter_age_ms = c["meter_max_age_ms"]
        self.dev_age_ms = c["device_max_age_ms"]
        self.export_max_w = c["export_max_w"]
        self.batt_min_pct = c["batt_soc_min_pct"]
        self.batt_max_pct = c["batt_soc_max_pct"]
        self.batt_max_w = c["batt_max_w"]
        self.fuse_ma = c["fuse_a"] * 1000 - c["fuse_margin_ma"] if c["fuse_a"] else 0

    def _init_state(self):
        # state: small ints and bools, updated in place
        self.sp_w = 0  # last written car setpoint
        self.batt_sp_w = 0  # last written battery setpoint
        self.i_q = 0  # integral term, W << 16
        self.session = False  # session commanded open
        self.confirmed = False  # the charger has reported it open
        self.t_switch_ms = 0  # tick of the last session open/close
        self.busy = False  # there is useful work for the car
        self.t_busy_ms = 0  # tick since which `busy` holds its value
        self.t_last_ms = 0
        self.first = True
        self.backup = False
        self.ramping = False
        # feed-forward trust: the charger's reading and the meter window must describe the
        # same car power (see step, 3.)
        self.pending = False  # a new setpoint has not shown in the charger's reading yet
        self.t_move_ms = 0  # tick after which the car's power is known to be steady
        self.ev_ref_w = 0  # the charger reading the car is steady at
        self.goal_w = 0  # the last target computed from trusted readings
        self.writes = 0  # car setpoint writes (device wear)
        self.batt_writes = 0
        self.starts = 0  # charger session starts (contactor cycles)

    def apply_setting(self, key, value):
        """A live change of a control setting (console / MQTT / config, already validated).
        Every key in LIVE applies from the next step; period_ms is ignored here (restart)."""
        if key in LIVE:
            c = self.cfg
            c[key] = value
            self._configure(c)

    def set_mode(self, name):
        """Runtime mode command (console / MQTT): 'auto', 'v1g' or 'off'."""
        mode_code(name)  # raises ConfigError for anything else
        self.apply_setting("mode", name)

    # -- one control cycle -------------------------------------------------------------
    def step(self, now_ms, meter, charger, inverter, permits, out):
        """Decide `out` (Setpoints) from this cycle's records; returns out.ev_w."""
        dt = self._tick(now_ms)
        out.t_ms = now_ms
        out.export_limit_w = self.export_max_w if permits.export else 0
        self.backup = False
        fresh = charger.online and ticks_diff(now_ms, charger.t_ms) <= self.dev_age_ms
        has_batt = inverter.has_battery and inverter.online and \
            ticks_diff(now_ms, inverter.t_ms) <= self.dev_age_ms
        # 1. conditions that take the car out of regulation (the battery may still regulate)
        car = 0
        if self.mode == MODE_OFF:
            car = REASON_MODE_OFF
            self._close(now_ms)
        elif not fresh:
            return self._hold_zero(now_ms, out, REASON_STALE_DATA)
        elif not charger.plugged:
            car = REASON_UNPLUGGED
            self._close(now_ms)
            self.confirmed = False
        elif self.session and charger.session:
            self.confirmed = True
        elif self.session and self.confirmed:
            self._close(now_ms)  # the car or the charger ended the session
            self.confirmed = False
        soc = charger.soc_pct
        lim = _clamp(permits.limit_w, 0, _CLAMP_W)
        # 2. islanded: the charger forms the house grid, capped by the setpoint magnitude
        if permits.island:
            if car == 0 and permits.discharge and soc > self.reserve_pct and \
                    self.mode == MODE_AUTO:
                cap = self._dis_cap(charger, lim)
                if cap >= self._mn(charger):
                    if not self.session:
                        self._open(now_ms)  # the house is dark: no start delay
                    self.backup = True
                    self.i_q = 0
                    self._busy(now_ms, True)
                    return self._finish(out, -cap, 0, REASON_BACKUP)
            return self._hold_zero(now_ms, out, car or REASON_SAFETY_BLOCKED)
        if not meter.valid or ticks_diff(now_ms, meter.t_ms) > self.meter_age_ms:
            return self._hold_zero(now_ms, out, car or REASON_STALE_DATA)
        # 3. regulation: feed-forward of the measured net load + conditional integral.
        # The net load is grid - car, from two instruments read at different moments (the
        # meter's window, the charger's last Modbus poll). While the car's power moves,
        # their difference is wrong by the move (measured live: a 300 W skew made V2H
        # swing +-300 W and export car energy), so the feed-forward is trusted only once
        # the charger reads steady and two control periods of meter windows lie after that
        # (a window's content is up to one period older than its tick); until then
        # the setpoint holds, and only a cut of export while discharging goes through.
        grid = _clamp(meter.grid_w, -_CLAMP_W, _CLAMP_W)
        ev = _clamp(charger.power_w, -_CLAMP_W, _CLAMP_W)
        bt = _clamp(inverter.batt_w, -_CLAMP_W, _CLAMP_W) if has_batt else 0
        sp = self.sp_w
        stl = self.settle_w
        if self.pending:
            if -stl <= sp - ev <= stl or ticks_diff(now_ms, self.t_move_ms) >= _SETTLE_MAX_MS:
                self.pending = False
                self.t_move_ms = charger.t_ms
                self.ev_ref_w = ev
        elif ev - self.ev_ref_w > stl or self.ev_ref_w - ev > stl:
            self.ev_ref_w = ev  # the car moved by itself (its BMS, the charger's limits)
            self.t_move_ms = charger.t_ms
        steady = not self.pending and \
            ticks_diff(meter.t_ms, self.t_move_ms) >= 2 * self.period_ms
        if steady:
            want = self.charge_target_w - (grid - ev - bt)  # target - (house load - PV)
            if want < 0:  # covering load: keep the import bias, never export
                want += self.v2h_target_w
                want = min(want, 0)
        else:
            want = self.goal_w  # the last trusted target (a ramp toward it goes on)
            if sp < 0 and grid < 0 and ev >= sp - stl:
                # exporting while discharging, and not from a cut already under way
                want = min(want, sp + self.v2h_target_w - grid, 0)
                self.goal_w = want
        mn = self._mn(charger)
        if (sp > mn or sp < -mn) and self.session and not self.ramping and steady and \
                -stl <= sp - ev <= stl:
            tgt = self.v2h_target_w if sp < 0 else self.charge_target_w
            # a large error is a disturbance the feed-forward is already correcting: only
            # +-settle_w of it is integrated (a bias still is, more slowly)
            err = _clamp(tgt - grid, -self.settle_w, self.settle_w)
            self.i_q = _clamp(self.i_q + err * self.ki_q, -self.i_max_q, self.i_max_q)
        if steady:  # (a held goal already contains the integral)
            want += self.i_q >> _Q
            self.goal_w = want
        # 4. battery-first share
        bsp = 0
        if has_batt and (self.prio == PRIO_BATTERY_FIRST or
                         (want < 0 and self.prio != PRIO_CAR_FIRST)):
            bsp = self._batt(want, inverter, permits)
            want -= bsp
        # 5. car limits; the reason for 0 W is decided here
        floor = max(self.reserve_pct, self.plan_floor_pct)
        dis_ok = car == 0 and permits.discharge and permits.export and charger.grid_ok and \
            inverter.grid_ok and self.mode == MODE_AUTO and soc > floor
        chg_ok = car == 0 and permits.charge and soc < self.soc_max_pct
        held = False  # the setpoint comes from the plan or the fuse, not the grid error
        if chg_ok and self.plan_force_w > 0 and self.plan_force_w > want:
            want = min(self.plan_force_w, self.max_charge_w)  # grid energy for the plan
            held = True
        hi = min(self.max_charge_w, charger.max_charge_w, lim) if chg_ok else 0
        if not (self.plan_absorb or held):
            hi = 0
        lo = -self._dis_cap(charger, lim) if dis_ok else 0
        fw = self._fuse(meter, ev) if self.fuse_ma else _CLAMP_W
        if fw < 0 and dis_ok:  # the house alone overloads a phase: V2H shaves it
            want = min(want, fw)
            hi = max(fw, lo)
            held = True
        else:
            if not self.plan_v2h and lo < 0:
                lo = 0  # the plan keeps the car's energy in this interval
            if fw < hi:
                hi = max(fw, 0)
                held = held or want > hi
        why = car or REASON_NO_SURPLUS
        if car:
            pass
        elif want > 0 and not chg_ok:
            why = REASON_SOC_MAX if soc >= self.soc_max_pct else REASON_SAFETY_BLOCKED
        elif want > 0 and fw <= 0:
            why = REASON_FUSE
        elif want > 0 and hi == 0 and not self.plan_absorb:
            why = REASON_PLAN_HOLD
        elif want < 0 and not dis_ok:
            if self.mode == MODE_V1G:
                why = REASON_V1G_ONLY
            elif soc <= self.reserve_pct:
                why = REASON_RESERVE
            elif soc <= floor:
                why = REASON_PLAN_HOLD  # above the reserve, but the departure needs it
            else:
                why = REASON_SAFETY_BLOCKED
        elif want < 0 and lo == 0 and not self.plan_v2h:
            why = REASON_PLAN_HOLD
        cw = _clamp(want, lo, hi)
        # 6. charger minimum, deadband, ramps; limits are hard (applied at once)
        cw = self._minimum(cw, mn, sp)
        if cw < lo or cw > hi:
            cw = 0  # the minimum does not fit the limits
        self._busy(now_ms, cw != 0)
        if -self.deadband_w < cw - sp < self.deadband_w and not (cw == 0 and sp != 0):
            cw = sp
        new = _clamp(self._ramp(sp, cw, dt), lo, hi)
        self.ramping = new != cw or held  # on the way / not regulating: no integration
        if 0 < new < mn:
            new = mn if mn <= hi else 0
        elif -mn < new < 0:
            new = -mn if -mn >= lo else 0
        # 7. session: opened and closed with delays; 0 W keeps it
        if car == 0 and not self.session:
            if self.busy and ticks_diff(now_ms, self.t_busy_ms) >= self.start_delay_ms and \
                    ticks_diff(now_ms, self.t_switch_ms) >= self.min_off_ms:
                self._open(now_ms)
            else:
                if self.busy:
                    why = REASON_WAIT_START
                new = 0
        elif self.session and not self.busy and \
                ticks_diff(now_ms, self.t_busy_ms) >= self.stop_delay_ms and \
                ticks_diff(now_ms, self.t_switch_ms) >= self.min_on_ms:
            self._close(now_ms)
            new = 0
        if new == 0 and not self.session:
            self.i_q = 0  # nothing regulated: forget the integral
        # 8. car-first share: the battery takes what the car does not
        if has_batt and bsp == 0 and self.prio != PRIO_BATTERY_FIRST:
            bsp = self._batt(want - new, inverter, permits)
        r = REASON_CHARGING if new > 0 else (REASON_DISCHARGING if new < 0 else why)
        return self._finish(out, new, bsp, r)

    # -- pieces -----------------------------------------------------------------------
    def _tick(self, now_ms):
        if self.first:
            self.first = False
            self.t_switch_ms = ticks_add(now_ms, -self.min_off_ms)  # boot: may start at once
            self.t_busy_ms = now_ms
            self.t_last_ms = now_ms
            self.t_move_ms = ticks_add(now_ms, -_AGE_PIN_MS)  # boot: nothing moving
            return self.period_ms
        dt = _clamp(ticks_diff(now_ms, self.t_last_ms), 0, _DT_MAX_MS)
        self.t_last_ms = now_ms
        # ages are only compared up to 2**28 ms: pin old ticks so the 2**30 wrap never
        # turns a long-past event into a future one
        if ticks_diff(now_ms, self.t_switch_ms) > _AGE_PIN_MS:
            self.t_switch_ms = ticks_add(now_ms, -_AGE_PIN_MS)
        if ticks_diff(now_ms, self.t_busy_ms) > _AGE_PIN_MS:
            self.t_busy_ms = ticks_add(now_ms, -_AGE_PIN_MS)
        if ticks_diff(now_ms, self.t_move_ms) > _AGE_PIN_MS:
            self.t_move_ms = ticks_add(now_ms, -_AGE_PIN_MS)
        return dt

    def _fuse(self, meter, ev):
        """Highest car power (W, + charge) that keeps every phase below the fuse limit:
        the car is balanced over three phases, so 1 mA of headroom on the worst phase is
        3 x V mW of car power. Signed phase current: + import (the sign of ph_w)."""
        if not meter.valid:
            return _CLAMP_W
        lim = self.fuse_ma
        ph, pw = meter.ph_ma, meter.ph_w
        i = _clamp(ph[0], 0, _PH_MAX_MA)
        h = lim - (i if pw[0] >= 0 else -i)
        i = _clamp(ph[1], 0, _PH_MAX_MA)
        h = min(h, lim - (i if pw[1] >= 0 else -i))
        i = _clamp(ph[2], 0, _PH_MAX_MA)
        h = _clamp(min(h, lim - (i if pw[2] >= 0 else -i)), -_PH_MAX_MA, _PH_MAX_MA)
        v = meter.v_mv if meter.v_mv > 100000 else _V_NOM_MV
        return ev + h * (v // 100) // 10000 * 3

    def _mn(self, charger):
        return max(charger.min_w, self.min_w)

    def _dis_cap(self, charger, lim):
        return min(self.max_discharge_w, charger.max_discharge_w, lim)

    def _minimum(self, want, mn, sp):
        # charge at the minimum once half of it is surplus (|grid| is smaller that way);
        # discharge only when the house takes the whole minimum (no car energy leaves)
        if 0 < want < mn:
            h = mn >> 1
            if sp > 0:
                h -= self.deadband_w  # hysteresis while already charging
            return mn if want >= h else 0
        if -mn < want < 0:
            # at the floor a smaller import margin is enough: discharge min_w once the house
            # takes min_w + floor_margin_w (the bias is for regulating, not for idling)
            return -mn if self.v2h_target_w - want >= mn + self.floor_margin_w else 0
        return want

    def _ramp(self, sp, want, dt):
        up = self.ramp_up_w_s * dt // 1000  # magnitude raise per step
        down = self.ramp_down_w_s * dt // 1000  # magnitude cut per step
        if sp >= 0:
            if want >= sp:
                return want if want - sp <= up else sp + up
            new = want if sp - want <= down else sp - down
            return max(new, -up)
        if want <= sp:
            return want if sp - want <= up else sp - up
        new = want if want - sp <= down else sp + down
        return min(new, up)

    def _batt(self, want, inv, permits):
        soc = inv.batt_soc_pct
        cap = self.batt_max_w
        if want > 0 and soc < self.batt_max_pct:
            b = min(want, cap)
        elif want < 0 and soc > self.batt_min_pct and permits.discharge and permits.export:
            b = want if -want <= cap else -cap
        else:
            return 0
        old = self.batt_sp_w
        if -self.deadband_w < b - old < self.deadband_w and (old > 0) == (b > 0) and \
                (old < 0) == (b < 0):
            return old
        return b

    def _busy(self, now_ms, busy):
        if busy != self.busy:
            self.busy = busy
            self.t_busy_ms = now_ms

    def _open(self, now_ms):
        self.session = True
        self.confirmed = False
        self.starts += 1
        self.t_switch_ms = now_ms

    def _close(self, now_ms):
        if self.session:
            self.session = False
            self.t_switch_ms = now_ms
        self.i_q = 0

    def _hold_zero(self, now_ms, out, reason):
        # car and battery at 0 W; the session is kept (closed later by the idle rule):
        # a data gap is no reason to cycle the contactors
        self.i_q = 0
        self.goal_w = 0
        self._busy(now_ms, False)
        if self.session and ticks_diff(now_ms, self.t_busy_ms) >= self.stop_delay_ms and \
                ticks_diff(now_ms, self.t_switch_ms) >= self.min_on_ms:
            self._close(now_ms)
        return self._finish(out, 0, 0, reason)

    def _finish(self, out, ev_w, batt_w, reason):
        if ev_w != self.sp_w:
            self.sp_w = ev_w
            self.writes += 1
            self.pending = True  # the car will move: hold until its reading shows it
            self.t_move_ms = self.t_last_ms
        if batt_w != self.batt_sp_w:
            self.batt_sp_w = batt_w
            self.batt_writes += 1
        out.ev_w = ev_w
        out.ev_session = self.session
        out.batt_w = batt_w
        out.reason = reason
        return ev_w
