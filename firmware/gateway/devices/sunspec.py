# A SunSpec inverter over Modbus RTU, found by discovery (SunSpec Information Model
# Specification: the marker "SunS" at 40000, 0 or 50000, then a chain of models, each an ID and a
# length L, until ID 0xFFFF). Model layouts are data in sunspec_map; nothing else is fixed.
# Export limit: model 123 WMaxLimPct (or 704), sent with its revert timer and rewritten at a third
# of it: the inverter returns to its own (certified) behaviour if the gateway goes quiet.
# Battery (optional, batt_control): model 124 StorCtl_Mod + OutWRte/InWRte with revert timer.
# Model 802 battery: SoC, W; the device heartbeat Hb must move (else stale) and CtrlHb is written.
from gateway.clock import saturate_age, ticks_add, ticks_diff
from gateway.devices import sunspec_map as M
from gateway.devices.base import COMMON_SCHEMA, Driver
from gateway.modbus import rtu
from micropython import const

SCHEMA = dict(COMMON_SCHEMA)
SCHEMA.update({
    "unit": (2, 1, 247),
    "base": (-1, -1, 65535),  # -1: discover at 40000, 0, 50000 (in that order)
    "poll_ms": (1000, 50, 60000),
    "slow_poll_ms": (5000, 100, 600000),
    "max_age_ms": (5000, 200, 600000),
    "revert_s": (30, 2, 3600),  # revert timer sent with every control write; refreshed at 1/3
    "wmax_w": (0, 0, 1000000),  # rating for % limits; 0: model 120 WRtg
    "batt_control": (False, None, None),  # drive model 124 charge/discharge rates
    "ctrl_hb_ms": (1000, 200, 60000),  # model 802 CtrlHb write period
})

_CANDIDATES = (40000, 0, 50000)
# command tags (TAG_CMD = 64 and up; const() needs literals)
_PROBE = const(64)
_WALK = const(65)
_LIMIT = const(66)
_MODE = const(67)
_RATE = const(68)
_CTRLHB = const(69)


class SunSpecInverter(Driver):
    def __init__(self, cfg, rec, setpoints):
        super().__init__(cfg, ())
        self.rec = rec
        self.sp = setpoints
        self.base = -1
        self.discovered = False
        self.addr = {}  # model id -> address of its ID register
        self.inv = -1  # address of the inverter model (101/102/103), or -1
        self.can_limit = False  # has 123 or 704: the gateway can hold its export at 0
        self.wmax_w = cfg["wmax_w"]
        self._k = 0
        self._walk = 0
        self._nmod = 0
        self._retry_ms = 0
        self._retry_wait = False  # (a "not before" time only once set: ticks start anywhere)
        self._img = [None] * M.N_KINDS
        self._lim_raw = -1  # last acknowledged limit write (raw pct), -1: none yet
        self._lim_w = 0
        self._lim_w_pending = 0
        self._lim_ms = 0
        self._rate = -1  # last acknowledged 124 rate (signed raw pct), -1 + _rate_ok False
        self._rate_ok = False
        self._rate_ms = 0
        self._mode_ok = False
        self._hb_ms = 0
        self._hb_sent = False
        self._hb_n = 0
        self._hb_seen = -1
        self._hb_seen_ms = 0

    def info(self):
        return {"base": self.base, "models": sorted(self.addr), "wmax_w": self.wmax_w,
                "can_limit": self.can_limit}

    # ---- discovery (COMMAND level, before anything else) -------------------------------------

    def next(self, req, level, now_ms):
        if self.discovered:
            return super().next(req, level, now_ms)
        if level != 1 or (self._retry_wait and ticks_diff(now_ms, self._retry_ms) < 0):
            return False
        self._retry_wait = False
        req.timeout_ms = self.cfg["timeout_ms"]
        if self._walk:
            req.read(self.unit, rtu.FC_READ_HOLDING, self._walk, 2, _WALK)
        else:
            base = self.cfg["base"]
            a = base if base >= 0 else _CANDIDATES[self._k % 3]
            req.read(self.unit, rtu.FC_READ_HOLDING, a, 2, _PROBE)
        return True

    def _later(self, now_ms):
        self._retry_ms = ticks_add(now_ms, self.bus.cfg["offline_poll_ms"])
        self._retry_wait = True

    def command_done(self, req, now_ms):
        tag = req.tag
        st = req.status
        r = req.regs
        if tag == _PROBE:
            if st == 0 and r[0] == M.SUNS[0] and r[1] == M.SUNS[1]:
                self.base = req.start
                self._walk = req.start + 2
                self._nmod = 0
            elif st == 0 or rtu.is_exception(st):
                self._k += 1  # not at this address: the next candidate
                if self._k % 3 == 0 or self.cfg["base"] >= 0:
                    self._later(now_ms)
            else:
                self._later(now_ms)  # no answer: try again later
        elif tag == _WALK:
            if st != 0:
                self._walk = 0
                self._later(now_ms)
                return
            mid, ln = r[0], r[1]
            if mid == 0xFFFF or self._nmod >= 64 or req.start + 2 + ln > 0xFFFF:
                self._build()
                return
            if mid in M.MODELS:
                self.addr[mid] = req.start
            self._nmod += 1
            self._walk = req.start + 2 + ln
        elif st == 0:
            self._written(req, now_ms)

    def _build(self):
        a = self.addr
        for m in M.INVERTERS:
            if m in a:
                self.inv = a[m]
                break
        blocks = []
        kinds = []
        for mid, kind, off, n, slow in M.BLOCKS:
            m = self.inv if mid == 101 else a.get(mid, -1)
            if m >= 0:
                blocks.append((rtu.FC_READ_HOLDING, m + off, n, slow))
                kinds.append(kind)
        self.set_polls(tuple(blocks))
        self._kinds = tuple(kinds)
        if M.K_802HB in kinds:
            self.stale_block = kinds.index(M.K_802HB)
        self.can_limit = 123 in a or 704 in a
        self.discovered = True

    # ---- registers -> record -----------------------------------------------------------------

    def decode(self, block, now_ms):
        g = self._img
        rec = self.rec
        k = self._kinds[block]
        g[k] = self.images[block]  # from now on this block's values are real
        if k == M.K_W or k == M.K_701:
            rec.t_ms = now_ms
        if k == M.K_802HB:  # the battery's own heartbeat must move, or its data is stale
            hb = g[k][0]
            if hb != self._hb_seen:
                self._hb_seen = hb
                self._hb_seen_ms = now_ms
            self._hb_seen_ms = saturate_age(now_ms, self._hb_seen_ms, self.cfg["max_age_ms"])
            self.stale = ticks_diff(now_ms, self._hb_seen_ms) > self.cfg["max_age_ms"]
        if g[M.K_120] is not None and not self.cfg["wmax_w"]:
            w = M.scale(g[M.K_120][0], g[M.K_120][1])
            if w:
                self.wmax_w = w
        pv = None
        if g[M.K_DCW] is not None and g[M.K_DCW][0] != 0x8000:
            pv = M.scale(M.s16(g[M.K_DCW][0]), g[M.K_DCW][1])
        if pv is None and g[M.K_W] is not None:
            pv = M.scale(M.s16(g[M.K_W][0]), g[M.K_W][1])
        if pv is None and g[M.K_701SF] is not None:
            pv = M.scale(M.s16(g[M.K_701][5]), g[M.K_701SF][0])
        if pv is not None:
            rec.pv_w = max(0, pv)
        if g[M.K_701] is not None:
            rec.grid_ok = g[M.K_701][0] == 1  # ConnSt CONNECTED
        elif g[M.K_ST] is not None:
            rec.grid_ok = (g[M.K_ST][3] & M.EVT1_GRID) == 0
        self._decode_limit(rec)
        if g[M.K_124] is not None or g[M.K_802] is not None:
            rec.has_battery = True
        soc = None
        if g[M.K_802SF] is not None and g[M.K_802] is not None:
            soc = M.scale(g[M.K_802][0], g[M.K_802SF][0])
            w = None if g[M.K_802W] is None else M.scale(M.s16(g[M.K_802W][0]), g[M.K_802SF][7])
            if w is not None:
                rec.batt_w = -w  # model 802 W taken as + out of the battery (DER convention)
        elif g[M.K_124SF] is not None and g[M.K_124ST] is not None:
            soc = M.scale(g[M.K_124ST][0], g[M.K_124SF][4])
        if soc is not None:
            rec.batt_soc_pct = soc

    def _decode_limit(self, rec):
        g = self._img
        if not self.wmax_w:
            return
        if g[M.K_123] is not None and g[M.K_123SF] is not None:
            on, raw, sf = g[M.K_123][4] == 1, g[M.K_123][0], g[M.K_123SF][0]
        elif g[M.K_704] is not None and g[M.K_704SF] is not None:
            on, raw, sf = g[M.K_704][0] == 1, g[M.K_704][1], g[M.K_704SF][0]
        else:
            return
        pct100 = M.scale(raw, (M.s16(sf) + 2) & 0xFFFF) if sf != M.NOT_SF else None
        if pct100 is None:
            return
        rec.export_limit_w = self.wmax_w * pct100 // 10000 if on else self.wmax_w

    # ---- setpoints -> writes -----------------------------------------------------------------

    def _limit_sf(self):
        """The limit's scale factor once read (the first write waits for it)."""
        g = self._img
        k = M.K_123SF if 123 in self.addr else M.K_704SF
        return M.NOT_SF if g[k] is None else g[k][0]

    def _fill_limit(self, req, limit_w):
        """Write the active power limit for limit_w (with its revert timer); False if unknown."""
        sf = self._limit_sf()
        if sf == M.NOT_SF or (limit_w > 0 and not self.wmax_w):
            return False  # a limit of 0 needs no rating; any other needs WRtg or wmax_w
        ena = 1 if limit_w <= 0 or limit_w < self.wmax_w else 0
        pct100 = 0 if limit_w <= 0 else 10000 if not ena else limit_w * 10000 // self.wmax_w
        raw = M.pct100_raw(pct100, sf)
        v = req.values
        if 123 in self.addr:
            v[0] = raw
            v[1] = 0
            v[2] = self.cfg["revert_s"]
            v[3] = 0
            v[4] = ena
            req.write(self.unit, self.addr[123] + M.O123_PCT, 5, _LIMIT)
        else:  # 704: after the reversion time the limit is disabled (the inverter's own mode)
            v[0] = ena
            v[1] = raw
            v[2] = M.pct100_raw(10000, sf)
            v[3] = 0
            v[4] = 0
            v[5] = self.cfg["revert_s"]
            req.write(self.unit, self.addr[704] + M.O704_ENA, 6, _LIMIT)
        return True

    def _rate_raw(self):
        """Model 124 rate (% of WChaMax, raw) for the battery setpoint; + charge, - discharge."""
        g = self._img
        if g[M.K_124SF] is None or g[M.K_124] is None or g[M.K_124SF][7] == M.NOT_SF:
            return None
        wmax = M.scale(g[M.K_124][0], g[M.K_124SF][0])
        if not wmax:
            return None
        w = self.sp.batt_w
        if self.bus.hold:
            w = max(0, w)  # stop: the battery may take PV, never discharge
        pct100 = max(-10000, min(10000, w * 10000 // wmax))
        return M.pct100_raw(pct100, g[M.K_124SF][7])

    def command(self, req, now_ms):
        if self.need_init:  # (back) online: it may have rebooted, rewrite every control
            self.need_init = False
            self._lim_raw = -1
            self._rate_ok = False
            self._mode_ok = False
        if self.can_limit:
            lim = 0 if self.bus.hold else self.sp.export_limit_w
            if (self._lim_raw < 0 or self.hb_due(now_ms, self._lim_ms, self.cfg["revert_s"])
                    or lim != self._lim_w):
                self._lim_w_pending = lim
                if self._fill_limit(req, lim):
                    req.tries = 1 + self.bus.cfg["retries"]
                    return True
        if self.cfg["batt_control"] and 124 in self.addr:
            if not self._mode_ok:
                req.write1(self.unit, self.addr[124] + M.O124_MODE, 3, _MODE)
                return True
            raw = self._rate_raw()
            if raw is not None and (not self._rate_ok or raw != self._rate
                                    or self.hb_due(now_ms, self._rate_ms, self.cfg["revert_s"])):
                v = req.values
                v[0] = -raw  # OutWRte: + discharge
                v[1] = raw  # InWRte: + charge
                v[2] = 0
                v[3] = self.cfg["revert_s"]
                req.write(self.unit, self.addr[124] + M.O124_RATE, 4, _RATE)
                return True
        self._hb_ms = saturate_age(now_ms, self._hb_ms, self.cfg["ctrl_hb_ms"])
        if 802 in self.addr and (not self._hb_sent
                                 or ticks_diff(now_ms, self._hb_ms) >= self.cfg["ctrl_hb_ms"]):
            self._hb_n = (self._hb_n + 1) & 0xFFFF
            req.write1(self.unit, self.addr[802] + M.O802_CTRLHB, self._hb_n, _CTRLHB)
            return True
        return False

    def _written(self, req, now_ms):
        tag = req.tag
        if tag == _LIMIT:
            self._lim_raw = req.values[0] if 123 in self.addr else req.values[1]
            self._lim_w = self._lim_w_pending
            self._lim_ms = now_ms
        elif tag == _MODE:
            self._mode_ok = True
        elif tag == _RATE:
            self._rate = req.values[1]
            self._rate_ok = True
            self._rate_ms = now_ms
        elif tag == _CTRLHB:
            self._hb_ms = now_ms
            self._hb_sent = True

    # ---- stop: limit 0 (and no battery discharge), then read the limit back -----------------

    def stop_fill(self, req, step):
        if not self.discovered:
            return -1  # cannot act yet: the stop stays pending, the safety task escalates
        if step == 0:
            self._lim_w_pending = 0
            return 1 if self._fill_limit(req, 0) else (0 if not self.can_limit else -1)
        if step == 1:
            raw = self._rate_raw() if self.cfg["batt_control"] and 124 in self.addr else None
            if raw is not None:
                v = req.values
                v[0] = -raw if raw < 0 else 0
                v[1] = max(0, raw)
                v[2] = 0
                v[3] = self.cfg["revert_s"]
                req.write(self.unit, self.addr[124] + M.O124_RATE, 4, _RATE)
                return 1
            self._stop_step = step = 2
        if 123 in self.addr:
            req.read(self.unit, rtu.FC_READ_HOLDING, self.addr[123] + M.O123_PCT, 5, 0)
        else:
            req.read(self.unit, rtu.FC_READ_HOLDING, self.addr[704] + M.O704_ENA, 2, 0)
        return 1

    def stop_result(self, req, step, now_ms):
        if step == 0:
            self._lim_raw = req.values[0] if 123 in self.addr else req.values[1]
            self._lim_w = 0
            self._lim_ms = now_ms
            return 1
        if step == 1:
            self._rate = req.values[1]
            self._rate_ok = True
            self._rate_ms = now_ms
            return 2
        r = req.regs
        ok = (r[0] == 0 and r[4] == 1) if 123 in self.addr else (r[0] == 1 and r[1] == 0)
        return -1 if ok else 0
