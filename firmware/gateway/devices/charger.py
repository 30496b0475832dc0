# The project's reference bidirectional DC charger over Modbus RTU (map: docs/charger-map.md).
#
# No public RTU map of a bidirectional DC charger exists (the public ones are Modbus TCP), so
# the project defines this one; a real charger gets its own PROFILE with its own addresses.
# The profile is data; the driver below only moves values between register images and the
# Charger record, and turns Setpoints into writes.
from gateway.clock import saturate_age, ticks_diff
from gateway.devices.base import COMMON_SCHEMA, TAG_CMD, Driver, s16
from gateway.modbus.rtu import FC_READ_INPUT
from micropython import const

PROFILE = {
    "name": "gw-dcbc",
    "doc": "docs/charger-map.md",
    "map_id": 0x4743,  # input 10: "GC"
    "map_version": 1,  # input 11
    "polls": (
        (FC_READ_INPUT, 0, 6, False),  # state, flags, power, setpoint in effect, SoC, fault
        (FC_READ_INPUT, 6, 6, True),  # alive counter, min, max charge, max discharge, id, version
    ),
    "input": {
        "state": 0, "flags": 1, "power_w": 2, "setpoint_w": 3, "soc_pct": 4, "fault": 5,
        "alive": 6, "min_w": 7, "max_charge_w": 8, "max_discharge_w": 9,
        "map_id": 10, "map_version": 11,
    },
    "holding": {"setpoint_w": 0, "session": 1, "watchdog_s": 2, "heartbeat": 3},
    "flags": {"plugged": 1, "session": 2, "watchdog_expired": 4, "grid_ok": 8,
              "unconfigured": 16},
}

# Charger states (input register 0)
NO_CAR = const(0)
IDLE = const(1)  # plugged, no session
STANDBY = const(2)  # session open at 0 W
CHARGING = const(3)
DISCHARGING = const(4)
FAULT = const(5)
FALLBACK = const(6)  # communication watchdog expired: 0 W, session closed

SCHEMA = dict(COMMON_SCHEMA)
SCHEMA.update({
    "unit": (1, 1, 247),
    "poll_ms": (500, 50, 60000),
    "slow_poll_ms": (1000, 100, 600000),
    "watchdog_s": (10, 2, 600),  # the charger's communication timeout, programmed at start
    "max_charge_w": (11000, 0, 30000),  # the gateway's own caps on top of the charger's
    "max_discharge_w": (10000, 0, 30000),
    # a stop is confirmed by what the charger does: its measured power within this of 0 W (or
    # no session: contactors open), with its setpoint in effect at 0
    "stop_tol_w": (100, 0, 2000),
})

# command tags: TAG_CMD (64) + n (const() needs literals)
_INIT = const(64)
_SETPOINT = const(65)
_SESSION = const(66)
_HEARTBEAT = const(67)


class RefCharger(Driver):
    def __init__(self, cfg, rec, setpoints, profile=PROFILE):
        super().__init__(cfg, profile["polls"])
        self.p = profile
        self.rec = rec
        self.sp = setpoints
        hr = profile["holding"]
        self._r_sp = hr["setpoint_w"]
        self._r_sess = hr["session"]
        self._r_wd = hr["watchdog_s"]
        self._r_hb = hr["heartbeat"]
        self._fl = profile["flags"]
        self.map_ok = False  # identity registers read and matching: only then do we write
        self.written_w = 0
        self.written_session = False
        self._hb_ms = 0
        self._hb_n = 0
        self._alive = -1
        self._alive_ms = 0
        self.reboots = 0  # device power-ups seen (its "unconfigured" flag came back)

    def info(self):
        return {"reboots": self.reboots, "map_ok": self.map_ok}

    def attach(self, bus):
        super().attach(bus)
        ir = self.p["input"]
        loc = self.block_of
        self._img0, _ = loc(FC_READ_INPUT, ir["state"])
        self._img1, _ = loc(FC_READ_INPUT, ir["alive"])
        for k in range(len(self.p["polls"])):
            if self.images[k] is self._img1:
                self.stale_block = k  # probe it while stale: only it can clear staleness
        self._i = {}
        for k in ir:
            self._i[k] = loc(FC_READ_INPUT, ir[k])[1]
        # the stop read-back: state .. setpoint in effect, one read
        a = min(ir["state"], ir["power_w"], ir["setpoint_w"])
        b = max(ir["state"], ir["power_w"], ir["setpoint_w"])
        if b - a >= 8:
            raise ValueError("charger profile: state, power and setpoint must be within 8 registers")
        self._stop_rd = a
        self._stop_n = b - a + 1
        self._o_state = ir["state"] - a
        self._o_power = ir["power_w"] - a
        self._o_sp = ir["setpoint_w"] - a

    def tick(self, now_ms):
        # the alive counter's age, judged every tick too: days without a reply (offline) must
        # not let a frozen counter read as fresh when the device answers again
        self._alive_ms = saturate_age(now_ms, self._alive_ms, self.cfg["max_age_ms"])
        super().tick(now_ms)

    # ---- registers -> record -----------------------------------------------------------------

    def decode(self, block, now_ms):
        i = self._i
        rec = self.rec
        if block == 0:
            img = self._img0
            f = img[i["flags"]]
            fl = self._fl
            rec.state = img[i["state"]]
            rec.plugged = bool(f & fl["plugged"])
            rec.session = bool(f & fl["session"])
            rec.grid_ok = bool(f & fl["grid_ok"])
            rec.power_w = s16(img[i["power_w"]])
            rec.setpoint_w = s16(img[i["setpoint_w"]])
            soc = img[i["soc_pct"]]
            if soc <= 100:
                rec.soc_pct = soc
            rec.fault = img[i["fault"]]
            rec.t_ms = now_ms
            if f & fl["unconfigured"] and not self.need_init:
                # It powered up since we programmed it: its watchdog setting and setpoint are
                # gone. Re-program before anything else.
                self.need_init = True
                self.reboots += 1
        else:
            img = self._img1
            a = img[i["alive"]]
            if a != self._alive:
                self._alive = a
                self._alive_ms = now_ms
            # answering with a frozen alive counter: a hung controller, its data is stale
            self._alive_ms = saturate_age(now_ms, self._alive_ms, self.cfg["max_age_ms"])
            self.stale = ticks_diff(now_ms, self._alive_ms) > self.cfg["max_age_ms"]
            rec.min_w = img[i["min_w"]]
            rec.max_charge_w = img[i["max_charge_w"]]
            rec.max_discharge_w = img[i["max_discharge_w"]]
            self.map_ok = (img[i["map_id"]] == self.p["map_id"]
                           and img[i["map_version"]] == self.p["map_version"])

    # ---- setpoints -> writes -----------------------------------------------------------------

    def want_w(self):
        """The setpoint to write: 0 W while the bus holds a stop, else within both limits."""
        if self.bus.hold:
            return 0
        w = self.sp.ev_w
        c = self.cfg
        hi = min(c["max_charge_w"], self.rec.max_charge_w or c["max_charge_w"])
        lo = -min(c["max_discharge_w"], self.rec.max_discharge_w or c["max_discharge_w"])
        return max(lo, min(hi, w))

    def command(self, req, now_ms):
        if not self.map_ok:
            return False  # never write setpoints to a device we have not identified
        w = self.want_w()
        session = bool(self.sp.ev_session)
        if self.need_init:
            v = req.values
            v[0] = w & 0xFFFF
            v[1] = 1 if session else 0
            v[2] = self.cfg["watchdog_s"]
            self._hb_n = (self._hb_n + 1) & 0xFFFF
            v[3] = self._hb_n
            req.write(self.unit, self._r_sp, 4, _INIT)
        elif w != self.written_w:
            req.write1(self.unit, self._r_sp, w, _SETPOINT)
        elif session != self.written_session:
            req.write1(self.unit, self._r_sess, 1 if session else 0, _SESSION)
        elif self.hb_due(now_ms, self._hb_ms, self.cfg["watchdog_s"]):
            self._hb_n = (self._hb_n + 1) & 0xFFFF
            req.write1(self.unit, self._r_hb, self._hb_n, _HEARTBEAT)
        else:
            return False
        req.tries = 1 + self.bus.cfg["retries"]
        return True

    def command_done(self, req, now_ms):
        if req.status != 0:
            return
        self._hb_ms = now_ms  # any write to these registers refreshes the charger's watchdog
        tag = req.tag
        if tag == _INIT:
            self.need_init = False
            self.written_w = s16(req.values[0])
            self.written_session = req.values[1] == 1
        elif tag == _SETPOINT:
            self.written_w = s16(req.values[0])
        elif tag == _SESSION:
            self.written_session = req.values[0] == 1

    # ---- stop: 0 W, then confirm by what the charger does ------------------------------------
    # A setpoint read back at 0 only shows the write arrived. Confirmed when the setpoint in
    # effect is 0 AND the charger's measured power is within stop_tol_w of 0 W, or its state
    # says no power can flow (no car, no session, watchdog fallback: contactors open). Until
    # then the state is read again every stop_retry_ms; a setpoint other than 0 is rewritten.

    def stop_fill(self, req, step):
        if step == 0:
            req.write1(self.unit, self._r_sp, 0, TAG_CMD)
        else:
            req.read(self.unit, FC_READ_INPUT, self._stop_rd, self._stop_n, 0)
        return 1

    def stop_result(self, req, step, now_ms):
        if step == 0:
            self.written_w = 0
            self._hb_ms = now_ms
            return 1
        r = req.regs
        if r[self._o_sp] != 0:
            return 0  # still following another setpoint: write 0 W again
        st = r[self._o_state]
        p = s16(r[self._o_power])
        tol = self.cfg["stop_tol_w"]
        if st == NO_CAR or st == IDLE or st == FALLBACK or -tol <= p <= tol:
            return -1
        return 1  # 0 W accepted, power still flowing (ramping down): look again
