# SolaX X1/X3-Hybrid G4 hybrid inverter over Modbus RTU (its RS485 port: 19200 8N1, address 1).
#
# Sources (public): SolaX Power "Energy Storage Inverter MODBUS RTU Communication protocols"
# V3.32 (validity X1-Hybrid-G4, X3-Hybrid-G4; registers big-endian, 32-bit values low word
# first) and the SolaX knowledge-base note "SolaX_VPP function Definition of ESS" (remote
# control, holding 0x7C..0x88, written with function 16). The register facts below were checked
# against both and against the public homeassistant-solax-modbus register tables.
#
# Export limit: holding 0x42 "export control user limit" (W; some X3 firmware in 10 W units:
# export_scale). SolaX stores it in EEPROM: it survives an inverter reboot (good for a safe 0),
# but the flash wears, so it is written only on change and loosened at most every export_min_ms.
# Battery (optional, batt_control): remote control mode 1 "power control"; the active power
# target is the inverter's AC intake (+) = battery charge - PV. Its duration (0x82) is the
# revert timer: when it runs out the inverter returns to its own self-use mode. Not stored in
# EEPROM, so it is refreshed at a third of the duration; an inverter reboot also ends it.
from gateway.clock import saturate_age, ticks_diff
from gateway.devices.base import COMMON_SCHEMA, Driver, s16
from gateway.modbus.rtu import FC_READ_HOLDING, FC_READ_INPUT
from micropython import const

PROFILE = {
    "name": "SolaX X1/X3-Hybrid G4",
    "source": "SolaX MODBUS RTU Communication protocols V3.32; SolaX KB VPP function of ESS",
    "polls": (
        (FC_READ_INPUT, 0x09, 3, False),  # run mode, PV1 power W, PV2 power W
        (FC_READ_INPUT, 0x16, 1, False),  # battery power W (int16, + charge)
        (FC_READ_INPUT, 0x46, 2, False),  # feed-in power W (int32 low word first, + export)
        (FC_READ_INPUT, 0x1C, 1, True),  # battery capacity (SoC) %
        (FC_READ_INPUT, 0x100, 4, True),  # remote control mode, target finished, target W (i32)
        (FC_READ_HOLDING, 0x42, 1, True),  # export control user limit
    ),
    "export_limit": 0x42,
    "feed_in": 0x46,  # input, int32 W low word first, + export
    "remote": 0x7C,  # ModbusPowerControl, TargetSetType, ActivePower (i32 lo, hi), Reactive
    "remote_len": 13,  # (i32), Duration s, TargetSoC, Energy (i32), Power (i32), Timeout s
    "mode_power_control": 1,
    "set_type_set": 1,
    "run_mode_off_grid": (6, 7),  # "Off-Grid Waiting", "Off-Grid" (EPS): the grid is gone
}

SCHEMA = dict(COMMON_SCHEMA)
SCHEMA.update({
    "unit": (1, 1, 247),
    "poll_ms": (1000, 50, 60000),
    "slow_poll_ms": (5000, 100, 600000),
    "max_age_ms": (5000, 200, 600000),
    "export_scale": (1, 1, 10),  # W per register unit of 0x42
    "export_min_ms": (60000, 0, 3600000),  # loosen the EEPROM export limit at most this often
    "batt_control": (False, None, None),  # drive the battery by remote control mode 1
    "remote_s": (20, 5, 3600),  # remote control duration (revert timer), refreshed at 1/3
    "stop_tol_w": (100, 0, 2000),  # a stop is confirmed once the feed-in is at most this (W)
})

_EXPORT = const(64)
_REMOTE = const(65)


class SolaxHybrid(Driver):
    def __init__(self, cfg, rec, setpoints, profile=PROFILE):
        super().__init__(cfg, profile["polls"])
        self.p = profile
        self.rec = rec
        self.sp = setpoints
        self.rec.has_battery = True
        self._exp_written = -1  # W, -1: unknown
        self._exp_ms = 0
        self._exp_pending = 0
        self._remote_p = 0  # last acknowledged active power target
        self._remote_on = False
        self._remote_ok = False
        self._remote_ms = 0
        self._p_pending = 0

    def tick(self, now_ms):
        # age of the last export-limit write: after days without one a raise must not wait
        # another 6 days (ticks_diff reads older stamps as the future)
        self._exp_ms = saturate_age(now_ms, self._exp_ms, self.cfg["export_min_ms"])
        super().tick(now_ms)

    # ---- registers -> record -----------------------------------------------------------------

    def decode(self, block, now_ms):
        img = self.images[block]
        rec = self.rec
        if block == 0:
            rec.grid_ok = img[0] not in self.p["run_mode_off_grid"]
            rec.pv_w = img[1] + img[2]
            rec.t_ms = now_ms
        elif block == 1:
            rec.batt_w = s16(img[0])
        elif block == 3:
            rec.batt_soc_pct = img[0]
        elif block == 5:
            rec.export_limit_w = img[0] * self.cfg["export_scale"]

    def remote_mode(self):
        """Remote control mode to hold: 0 = leave the inverter to its own self-use mode."""
        return self.p["mode_power_control"] if self.cfg["batt_control"] else 0

    def remote_power(self):
        """Active power target (W, + AC intake) giving the battery setpoint: charge - PV.
        (Two methods, not one returning a tuple: a tuple allocates.)"""
        if self.bus.hold:
            return 0  # stop: AC power 0, PV only into the battery
        return self.sp.batt_w - self.rec.pv_w

    def _fill_remote(self, req, mode, p_w):
        v = req.values
        for i in range(self.p["remote_len"]):
            v[i] = 0
        v[0] = mode
        v[1] = self.p["set_type_set"]
        v[2] = p_w & 0xFFFF  # int32, low word first
        v[3] = (p_w >> 16) & 0xFFFF
        v[6] = self.cfg["remote_s"] if mode else 0
        req.write(self.unit, self.p["remote"], self.p["remote_len"], _REMOTE)
        self._p_pending = p_w

    def _fill_export(self, req, w):
        self._exp_pending = w
        req.write1(self.unit, self.p["export_limit"], w // self.cfg["export_scale"], _EXPORT)

    # ---- setpoints -> writes -----------------------------------------------------------------

    def command(self, req, now_ms):
        if self.need_init:
            self.need_init = False
            self._remote_ok = False  # a reboot ends remote control: send it again
        want = 0 if self.bus.hold else max(0, min(self.sp.export_limit_w, 65535))
        cur = self._exp_written
        if cur < 0 or want < cur or (want > cur and (
                ticks_diff(now_ms, self._exp_ms) >= self.cfg["export_min_ms"])):
            self._fill_export(req, want)
            req.tries = 1 + self.bus.cfg["retries"]
            return True
        mode = self.remote_mode()
        p_w = self.remote_power() if mode else 0
        if not (mode or self._remote_on):
            return False
        if (not self._remote_ok or p_w != self._remote_p or (mode != 0) != self._remote_on
                or (mode and self.hb_due(now_ms, self._remote_ms, self.cfg["remote_s"]))):
            self._fill_remote(req, mode, p_w)
            req.tries = 1 + self.bus.cfg["retries"]
            return True
        return False

    def command_done(self, req, now_ms):
        if req.status != 0:
            return
        if req.tag == _EXPORT:
            self._exp_written = self._exp_pending
            self._exp_ms = now_ms
        elif req.tag == _REMOTE:
            self._remote_on = req.values[0] != 0
            self._remote_p = self._p_pending
            self._remote_ok = True
            self._remote_ms = now_ms

    # ---- stop: export limit 0, AC power 0 under remote control, read both back, then confirm
    # by what the inverter does: its measured feed-in at most stop_tol_w (re-read every
    # stop_retry_ms until it is).

    def stop_fill(self, req, step):
        if step == 0:
            self._fill_export(req, 0)
        elif step == 1 and self.cfg["batt_control"]:
            self._fill_remote(req, self.p["mode_power_control"], 0)
        elif step <= 2:
            self._stop_step = 2
            req.read(self.unit, FC_READ_HOLDING, self.p["export_limit"], 1, 0)
        elif step == 3:
            req.read(self.unit, FC_READ_INPUT, 0x100, 4, 0)
        else:
            req.read(self.unit, FC_READ_INPUT, self.p["feed_in"], 2, 0)
        return 1

    def stop_result(self, req, step, now_ms):
        if step == 0:
            self._exp_written = 0
            self._exp_ms = now_ms
            return 1
        if step == 1:
            self._remote_on = True
            self._remote_p = 0
            self._remote_ok = True
            self._remote_ms = now_ms
            return 2
        r = req.regs
        if step == 2:
            if r[0] != 0:
                return 0
            return 3 if self.cfg["batt_control"] else 4
        if step == 3:
            ok = r[0] == self.p["mode_power_control"] and r[2] == 0 and r[3] == 0
            return 4 if ok else 1
        # feed-in, int32 low word first: negative (import) or at most stop_tol_w; the high
        # word is looked at alone so nothing here leaves the small-int range
        hi = r[1]
        if hi & 0x8000 or (hi == 0 and r[0] <= self.cfg["stop_tol_w"]):
            return -1
        return 4  # export still flowing: read again (paced)
