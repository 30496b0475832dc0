"""Simulated SunSpec inverter (pymodbus), with its model chain at a chosen base address.

Two model sets: "classic" (1, 103, 120, 123, 124: the common inverter + storage models) and
"der" (1, 701, 704, 802: the newer DER information models). Point offsets count from a model's
ID register and follow the SunSpec models JSON. Writes are accepted only on read-write points
(else exception 02); revert timers run as the specification describes them.
"""

import time

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

SETS = {"classic": ((1, 66), (103, 50), (120, 26), (123, 24), (124, 24)),
        "der": ((1, 66), (701, 153), (704, 65), (802, 62))}
# read-write offsets per model (from the ID register)
RW = {1: {66}, 123: set(range(2, 23)), 124: {2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17},
      704: set(range(2, 6)) | set(range(8, 12)) | set(range(14, 20)) | set(range(22, 33))
      | set(range(35, 47)) | set(range(49, 53)), 802: {9, 10, 19, 20, 50, 51}}


def u16(v):
    return int(v) & 0xFFFF


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


def _string(text, n):
    b = text.encode()[: 2 * n].ljust(2 * n, b"\0")
    return [(b[i] << 8) | b[i + 1] for i in range(0, 2 * n, 2)]


class SimSunSpec:
    kind = "sunspec"

    def __init__(self, unit, state, base=40000, models="classic", boot_s=3.0):
        self.unit = unit
        self.state = state
        self.base = base
        self.models = SETS[models]
        self.boot_s = boot_s
        self.at = {}
        a = base + 2
        for mid, ln in self.models:
            self.at[mid] = a
            a += 2 + ln
        self.end = a + 2  # end marker 0xFFFF, 0
        self.regs = None
        self.t_write = {}  # model -> time of its last control write
        self.t0 = time.monotonic()

    def simdevice(self):
        n = self.end - self.base
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(id=self.unit, simdata=(
            bits, bits, [SimData(self.base, count=n, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]), action=self.action)

    def bind(self, runtime):
        self.regs = runtime.block["h"][2]
        self.power_up()

    def _set(self, mid, off, v):
        self.regs[self.at[mid] + off - self.base] = u16(v)

    def _get(self, mid, off):
        return self.regs[self.at[mid] + off - self.base]

    def power_up(self):
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[0], r[1] = 0x5375, 0x6E53
        for mid, ln in self.models:
            self._set(mid, 0, mid)
            self._set(mid, 1, ln)
        r[self.end - 2 - self.base] = 0xFFFF
        if 1 in self.at:
            for i, v in enumerate(_string("GatewaySim", 16) + _string("SunSpec RTU", 16)):
                self._set(1, 2 + i, v)
        if 123 in self.at:
            self._set(123, 5, 10000)
            self._set(123, 23, -2)  # WMaxLimPct_SF
        if 124 in self.at:
            self._set(124, 18, 0)
            self._set(124, 22, 0)
            self._set(124, 25, -2)  # InOutWRte_SF
        if 704 in self.at:
            self._set(704, 15, 10000)
            self._set(704, 54, -2)
        for mid in (103, 701):
            if mid in self.at:
                self.inv_model = mid
        self.t_write = {}
        self.t0 = time.monotonic()
        self.sync()

    def reboot(self):
        self.power_up()

    async def action(self, fc, start, address, count, registers, set_values):
        if set_values is not None and fc in (6, 16):
            for i in range(count):
                reg = address + i
                mid = next((m for m, a in self.at.items() if a <= reg < a + 2 + dict(
                    self.models)[m]), None)
                if mid is None or (reg - self.at[mid]) not in RW.get(mid, ()):
                    return ExcCodes.ILLEGAL_ADDRESS
                self.t_write[mid] = time.monotonic()
            return None
        self.sync()
        return None

    def tick(self):
        self.sync()

    def _expired(self, mid, off):
        t = self.t_write.get(mid)
        tms = self._get(mid, off)
        return t is not None and tms > 0 and time.monotonic() - t > tms

    def sync(self):
        if self.regs is None:
            return
        st = self.state
        now = time.monotonic()
        limit_pct = 100
        if 123 in self.at:
            if self._get(123, 9) == 1 and self._expired(123, 7):
                self._set(123, 9, 0)  # revert: limit disabled
            if self._get(123, 9) == 1:
                limit_pct = self._get(123, 5) / 100.0
        if 704 in self.at:
            t = self.t_write.get(704)
            tms = (self._get(704, 18) << 16) | self._get(704, 19)
            if t is not None and tms and now - t > tms:
                self._set(704, 14, self._get(704, 17))
                self._set(704, 15, self._get(704, 16))
                self.t_write.pop(704)
            if self._get(704, 14) == 1:
                limit_pct = self._get(704, 15) / 100.0
        st.inv_limit_pct = limit_pct
        if 124 in self.at:
            if self._expired(124, 15):
                self._set(124, 5, 0)
                self.t_write.pop(124)
            wmax = st.batt_max_w
            self._set(124, 2, wmax)
            self._set(124, 8, st.batt_soc_pct)
            if self._get(124, 5) & 3:
                rate = s16(self._get(124, 13)) / 100.0  # InWRte, % of WChaMax, + charge
                st.batt_setpoint_w = int(rate * wmax / 100)
            else:
                st.batt_setpoint_w = None
        grid = st.grid_ok
        if 103 in self.at:
            self._set(103, 14, st.inv_ac_w)
            dc = min(st.pv_w, st.inv_rated_w * limit_pct / 100.0)
            self._set(103, 31, int(dc))
            self._set(103, 38, 4 if limit_pct >= 100 else 5)
            self._set(103, 41, 0 if grid else 1 << 4)
        if 120 in self.at:
            self._set(120, 3, st.inv_rated_w)
        if 701 in self.at:
            self._set(701, 5, 1 if grid else 0)
            self._set(701, 10, st.inv_ac_w)
        if 802 in self.at:
            self._set(802, 11, st.batt_soc_pct)
            self._set(802, 18, int(now - self.t0))
            self._set(802, 47, -st.batt_w)
