"""Simulated reference bidirectional DC charger (docs/charger-map.md), a pymodbus device.

Implemented from the map document, not from the firmware driver, so the two can disagree
only if one of them is wrong. Physics come from a PlantState (simstate).
"""

import time

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

MAP_ID = 0x4743
MAP_VERSION = 1
N_INPUT = 12
N_HOLDING = 4
WATCHDOG_DEFAULT_S = 30
# states (input 0)
NO_CAR, IDLE, STANDBY, CHARGING, DISCHARGING, FAULT, FALLBACK = range(7)
# flags (input 1)
F_PLUGGED, F_SESSION, F_WD_EXPIRED, F_GRID_OK, F_UNCONFIGURED = 1, 2, 4, 8, 16


def u16(v):
    return int(v) & 0xFFFF


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


def _bits(n):
    return [SimData(0, count=16, values=False, datatype=DataType.BITS)]


class SimRefCharger:
    kind = "charger"

    def __init__(self, unit, state, boot_s=2.0):
        self.unit = unit
        self.state = state
        self.boot_s = boot_s
        self.hr = None  # live pymodbus register lists, bound after the server is built
        self.ir = None
        self.t_write = time.monotonic()
        self.t0 = time.monotonic()
        self.writes = 0
        self.frozen = False  # fault: the controller hangs (alive counter stops)
        self._defaults = None

    def simdevice(self):
        return SimDevice(
            id=self.unit,
            simdata=(_bits(16), _bits(16),
                     [SimData(0, count=N_HOLDING, values=0, datatype=DataType.REGISTERS)],
                     [SimData(0, count=N_INPUT, values=0, datatype=DataType.REGISTERS)]),
            action=self.action)

    def bind(self, runtime):
        self.hr = runtime.block["h"][2]
        self.ir = runtime.block["i"][2]
        self.power_up()

    def power_up(self):
        """State after a power cycle: idle, watchdog at its default, not configured."""
        self.hr[0] = 0
        self.hr[1] = 0
        self.hr[2] = WATCHDOG_DEFAULT_S
        self.hr[3] = 0
        self.unconfigured = True
        self.expired = False
        self.t_write = time.monotonic()
        self.t0 = time.monotonic()
        self.sync()

    def reboot(self):
        self.power_up()

    async def action(self, fc, start, address, count, registers, set_values):
        if set_values is not None and fc in (6, 16):
            for i, v in enumerate(set_values):
                reg = address + i
                if reg == 1 and v not in (0, 1):
                    return ExcCodes.ILLEGAL_VALUE
                if reg == 2 and not 1 <= v <= 3600:
                    return ExcCodes.ILLEGAL_VALUE
            self.writes += 1
            self.t_write = time.monotonic()
            self.expired = False
            if address <= 2 < address + count:
                self.unconfigured = False
            return None
        self.sync()
        return None

    def tick(self):
        self.sync()

    def sync(self):
        """Apply the holding registers to the plant and show the plant in the input ones."""
        hr, ir, st = self.hr, self.ir, self.state
        if hr is None:
            return
        now = time.monotonic()
        if now - self.t_write > hr[2] and not self.expired:  # watchdog: revert to 0 W, idle
            self.expired = True
            hr[0] = 0
            hr[1] = 0
        sp = s16(hr[0])
        lo, hi = -st.ev_max_discharge_w, st.ev_max_charge_w
        sp = max(lo, min(hi, sp))
        if 0 < abs(sp) < st.ev_min_w:
            sp = 0
        session = hr[1] == 1 and st.ev_plugged
        st.ev_setpoint_w = sp
        st.ev_session = session
        p = st.ev_power_w if st.ev_plugged else 0
        if st.ev_fault:
            state = FAULT
        elif self.expired:
            state = FALLBACK
        elif not st.ev_plugged:
            state = NO_CAR
        elif not session:
            state = IDLE
        elif p > 0:
            state = CHARGING
        elif p < 0:
            state = DISCHARGING
        else:
            state = STANDBY
        flags = ((F_PLUGGED if st.ev_plugged else 0) | (F_SESSION if session else 0)
                 | (F_WD_EXPIRED if self.expired else 0) | (F_GRID_OK if st.grid_ok else 0)
                 | (F_UNCONFIGURED if self.unconfigured else 0))
        ir[0] = state
        ir[1] = flags
        ir[2] = u16(p)
        ir[3] = u16(sp)
        ir[4] = st.ev_soc_pct if st.ev_plugged else 0xFFFF
        ir[5] = st.ev_fault
        if not self.frozen:
            ir[6] = int(now - self.t0) & 0xFFFF
        ir[7] = st.ev_min_w
        ir[8] = st.ev_max_charge_w
        ir[9] = st.ev_max_discharge_w
        ir[10] = MAP_ID
        ir[11] = MAP_VERSION
