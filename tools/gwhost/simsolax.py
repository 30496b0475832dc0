"""Simulated SolaX X1-Hybrid G4 (pymodbus): the registers the gateway uses, per the SolaX
"MODBUS RTU Communication protocols" V3.32 and the VPP remote-control note (see
firmware/gateway/devices/solax.py for the sources). 32-bit values are low word first.

The export limit (holding 0x42) is kept across reboots (EEPROM on the real device); remote
control (0x7C block) is not, and ends when its duration runs out.
"""

import time

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

N_INPUT = 0x110
N_HOLDING = 0x100
EXPORT_LIMIT = 0x42
REMOTE = 0x7C
REMOTE_LEN = 13
WRITABLE = {EXPORT_LIMIT} | set(range(REMOTE, REMOTE + REMOTE_LEN))


def u16(v):
    return int(v) & 0xFFFF


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


class SimSolax:
    kind = "solax"

    def __init__(self, unit, state, boot_s=5.0):
        self.unit = unit
        self.state = state
        self.boot_s = boot_s
        self.hr = None
        self.ir = None
        self.export_limit_w = 6000  # EEPROM: survives reboots
        self.remote_until = 0.0
        self.eeprom_writes = 0

    def simdevice(self):
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(id=self.unit, simdata=(
            bits, bits, [SimData(0, count=N_HOLDING, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=N_INPUT, values=0, datatype=DataType.REGISTERS)]),
            action=self.action)

    def bind(self, runtime):
        self.hr = runtime.block["h"][2]
        self.ir = runtime.block["i"][2]
        self.power_up()

    def power_up(self):
        for i in range(N_HOLDING):
            self.hr[i] = 0
        self.hr[EXPORT_LIMIT] = self.export_limit_w
        self.remote_until = 0.0
        self.state.batt_setpoint_w = None
        self.sync()

    def reboot(self):
        self.power_up()

    async def action(self, fc, start, address, count, registers, set_values):
        if set_values is not None and fc in (6, 16):
            if any(address + i not in WRITABLE for i in range(count)):
                return ExcCodes.ILLEGAL_ADDRESS
            if address <= EXPORT_LIMIT < address + count:
                self.eeprom_writes += 1
                self.export_limit_w = set_values[EXPORT_LIMIT - address]
            if address == REMOTE:
                if count != REMOTE_LEN:
                    return ExcCodes.ILLEGAL_VALUE  # the block is written as a whole
                mode = set_values[0]
                if mode not in (0, 1):
                    return ExcCodes.ILLEGAL_VALUE  # only power control is modelled
                self.remote_until = time.monotonic() + set_values[6] if mode else 0.0
            return None
        self.sync()
        return None

    def tick(self):
        self.sync()

    def sync(self):
        hr, ir, st = self.hr, self.ir, self.state
        if hr is None:
            return
        st.inv_export_limit_w = hr[EXPORT_LIMIT]
        active = hr[REMOTE] == 1 and time.monotonic() < self.remote_until
        if hr[REMOTE] == 1 and not active:
            hr[REMOTE] = 0  # duration over: back to self-use
        p = hr[REMOTE + 2] | (hr[REMOTE + 3] << 16)
        if p & 0x80000000:
            p -= 1 << 32
        if active:
            b = p + st.pv_w  # AC intake = battery charge - PV
            st.batt_setpoint_w = max(-st.batt_max_w, min(st.batt_max_w, b))
        else:
            st.batt_setpoint_w = None
        ir[0x02] = u16(st.inv_ac_w)
        ir[0x09] = 2 if st.grid_ok else 7
        ir[0x0A] = u16(st.pv_w // 2)
        ir[0x0B] = u16(st.pv_w - st.pv_w // 2)
        ir[0x16] = u16(st.batt_w)
        ir[0x1C] = st.batt_soc_pct
        feed = st.inv_ac_w - st.house_w - st.ev_power_w
        ir[0x46] = u16(feed)
        ir[0x47] = u16(feed >> 16)
        ir[0x100] = 1 if active else 0
        ir[0x101] = 0
        ir[0x102] = u16(p if active else 0)
        ir[0x103] = u16((p if active else 0) >> 16)
