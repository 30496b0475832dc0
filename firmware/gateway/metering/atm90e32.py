"""ATM90E32(AS) poly-phase metering IC over SPI: configuration, calibration, readings.

    ic = Atm90e32(spi, cs, cfg)    # spi: .write(buf), .readinto(buf) (machine.SPI, mode 3,
                                   # MSB first, <= 1 MHz); cs: chip select pin, cs(0)/cs(1);
                                   # cfg: config.validate(board["analog"]) ("path": "atm90e32")
    ic.init() -> bool              # soft reset, configure, verify every write, latch digest
    ic.poll(meter, now_ms)         # fill gateway.model.Meter (service.run calls it per window)
Per channel (analog.channels[]): role, phase (Meter index), invert, ic_input (IC phase
A/B/C = 0/1/2; -1: the channel's index). Results also in ic.ch_w, ic.ch_ma, ic.ch_pf_pm.

SPI frame (datasheet, SPI interface): 16-bit address word, MSB first, bit 15 = 1 to read,
bits 9..0 the register; then 16 data bits. The driver clocks the address, then the data in
a second transfer (the datasheet asks ~4 us between them on reads; a Python call is longer).
Register facts used (addresses hex): MeterEn 00 (1 = metering on), ZXConfig 07, SagTh 08,
FreqLoTh 0C / FreqHiTh 0D (0.01 Hz), MMode0 33 (bit 12: 60 Hz), MMode1 34 (PGA), PQGainA/
PhiA 47/48 (B 49/4A, C 4B/4C), UgainA/IgainA/UoffsetA/IoffsetA 61..64 (B 65..68, C 69..6C),
SoftReset 70 (write 789A), EMMState0 71 / EMMState1 72, LastSPIData 78 (the last word read
or written), CRCDigest 7A, CfgRegAccEn 7F (55AA unlocks configuration writes, 0000 locks),
PmeanT/A/B/C B0..B3 with the low words at C0..C3 (signed 32 bits, 0.32 mW per LSB),
PFmeanA BD.. (signed, 0.001), UrmsA D9.. (0.01 V), IrmsA DD.. (0.001 A), Freq F8 (0.01 Hz).
EMMState0: bits 15..13 overcurrent A/B/C, 12..10 overvoltage; EMMState1: bit 15 frequency
above FreqHiTh, 14..12 sag A/B/C, 11 frequency below FreqLoTh, 10..8 phase loss A/B/C.

Integrity ("checksums"): the ATM90E32 has no checksum registers of its own to write (the
ATM90E26/E36 do: low byte = sum of the bytes of the block mod 256, high byte = XOR of the
bytes). The driver (1) verifies each configuration write by reading LastSPIData and the
register back, (2) keeps the E26/E36-rule checksum of the configuration it wrote and
re-reads the whole block a few registers per poll, comparing the checksum at the end of
each sweep, and (3) latches the IC's own CRCDigest after configuration and treats any
change of it (or MeterEn != 1) as a reset/corruption. Any of these: FLAG_IC_FAULT, Meter
invalid, and a re-initialisation at the next poll. A CT open circuit cannot be detected on
this path (the IC sees zero current).
"""
from micropython import const

from gateway import metering as _f
from gateway.metering.config import check

_METER_EN = const(0x00)
_FREQ_LO_TH = const(0x0C)
_FREQ_HI_TH = const(0x0D)
_MMODE0 = const(0x33)
_MMODE1 = const(0x34)
_PQGAIN_A = const(0x47)  # + 2 * phase; Phi = PQGain + 1
_UGAIN_A = const(0x61)  # + 4 * phase: Ugain, Igain, Uoffset, Ioffset
_SOFT_RESET = const(0x70)
_EMM_STATE0 = const(0x71)
_EMM_STATE1 = const(0x72)
_LAST_SPI = const(0x78)
_CRC_DIGEST = const(0x7A)
_CFG_ACC = const(0x7F)
_PMEAN_A = const(0xB1)  # + phase; low word at + 0x10
_PFMEAN_A = const(0xBD)
_URMS_A = const(0xD9)
_IRMS_A = const(0xDD)
_FREQ = const(0xF8)
_UNLOCK = const(0x55AA)
_RESET_KEY = const(0x789A)
_SWEEP = const(4)  # configuration registers re-read per poll

SCHEMA = {
    "spi": (2, 1, 2),  # board wiring, used by the ESP32 port to build machine.SPI
    "sck": (18, 0, 48),
    "mosi": (23, 0, 48),
    "miso": (19, 0, 48),
    "cs": (5, 0, 48),
    "baud": (1000000, 100000, 1000000),
    "mmode0": (0x0185, 0, 0xFFFF),  # metering method; bit 12 (60 Hz) follows nominal_hz
    "pga": (0x0015, 0, 0xFFFF),  # MMode1: current channel PGA gains (x2 each)
    "ugain": (39470, 0, 0xFFFF),  # voltage rms gain, all phases (board calibration)
    "igain_a": (30000, 0, 0xFFFF),  # current rms gain per phase (CT calibration)
    "igain_b": (30000, 0, 0xFFFF),
    "igain_c": (30000, 0, 0xFFFF),
    "phi_a": (0, 0, 0xFFFF),  # phase angle calibration per phase (datasheet format)
    "phi_b": (0, 0, 0xFFFF),
    "phi_c": (0, 0, 0xFFFF),
    "v_input": (0, 0, 2),  # IC phase whose voltage is Meter.v_mv
}


def block_checksum(values, n):
    """ATM90E26/E36 checksum rule over n 16-bit words: low byte = sum of all bytes mod 256,
    high byte = XOR of all bytes."""
    s = 0
    x = 0
    for i in range(n):
        v = values[i]
        s += (v >> 8) + (v & 0xFF)
        x ^= (v >> 8) ^ (v & 0xFF)
    return ((x & 0xFF) << 8) | (s & 0xFF)


class Atm90e32:
    def __init__(self, spi, cs, cfg):
        self.cfg = cfg
        self.ic = check(cfg.get("atm90e32"), SCHEMA, "analog.atm90e32")
        self._spi = spi
        self._cs = cs
        self._a = bytearray(2)
        self._d = bytearray(2)
        ic = self.ic
        mm0 = ic["mmode0"] & ~0x1000
        if cfg["nominal_hz"] >= 55:
            mm0 |= 0x1000
        # The configuration written at init, (register, value) pairs, in order.
        regs = [(_METER_EN, 1), (_MMODE0, mm0), (_MMODE1, ic["pga"]),
                (_FREQ_LO_TH, 4000), (_FREQ_HI_TH, 7000)]
        for p, n in ((0, "a"), (1, "b"), (2, "c")):
            regs.append((_PQGAIN_A + 2 * p + 1, ic["phi_" + n]))
            regs.append((_UGAIN_A + 4 * p, ic["ugain"]))
            regs.append((_UGAIN_A + 4 * p + 1, ic["igain_" + n]))
        self._regs = bytearray(len(regs))
        self._vals = [v for _, v in regs]
        for i, (r, _) in enumerate(regs):
            self._regs[i] = r
        self._n = len(regs)
        self._sum = block_checksum(self._vals, self._n)
        self._rb = [0] * self._n  # values read back during the sweep
        self._sweep = 0
        chans = cfg["channels"]
        self.nc = len(chans)
        self._in = [c.get("ic_input", -1) if c.get("ic_input", -1) >= 0 else i
                    for i, c in enumerate(chans)]
        self._role = [c["role"] for c in chans]
        self._phase = [c["phase"] for c in chans]
        self._sign = [-1 if c["invert"] else 1 for c in chans]
        self.ch_w = [0] * self.nc
        self.ch_ma = [0] * self.nc
        self.ch_pf_pm = [0] * self.nc
        self.ok = False
        self._inited = False
        self.digest = -1
        self.faults = 0  # count of detected IC faults (re-initialisations)
        self._rocof = _f.Rocof()

    # -- SPI frames ---------------------------------------------------------------
    def read(self, reg):
        a = self._a
        a[0] = 0x80 | ((reg >> 8) & 0x03)
        a[1] = reg & 0xFF
        self._cs(0)
        self._spi.write(a)
        self._spi.readinto(self._d)
        self._cs(1)
        return (self._d[0] << 8) | self._d[1]

    def write(self, reg, val):
        a = self._a
        a[0] = (reg >> 8) & 0x03
        a[1] = reg & 0xFF
        d = self._d
        d[0] = (val >> 8) & 0xFF
        d[1] = val & 0xFF
        self._cs(0)
        self._spi.write(a)
        self._spi.write(d)
        self._cs(1)

    def _write_checked(self, reg, val, readback=True):
        self.write(reg, val)
        return self.read(_LAST_SPI) == val and (not readback or self.read(reg) == val)

    # -- configuration ------------------------------------------------------------
    def init(self):
        """Reset and configure the IC; True when every write was verified."""
        self.write(_SOFT_RESET, _RESET_KEY)
        ok = self._write_checked(_CFG_ACC, _UNLOCK, False)
        for i in range(self._n):
            ok = self._write_checked(self._regs[i], self._vals[i]) and ok
        self.write(_CFG_ACC, 0)
        self.digest = -1  # latched at the next poll, once the IC has recomputed it
        self.ok = ok
        self._inited = True
        self._sweep = 0
        return ok

    def _check_config(self):
        """Re-read a few configured registers; at the end of a sweep compare checksums."""
        for _ in range(_SWEEP):
            i = self._sweep
            self._rb[i] = self.read(self._regs[i])
            i += 1
            if i == self._n:
                i = 0
                if block_checksum(self._rb, self._n) != self._sum:
                    self.ok = False
            self._sweep = i

    # -- readings -----------------------------------------------------------------
    def _s16(self, reg):
        v = self.read(reg)
        return v - 0x10000 if v & 0x8000 else v

    def power_w(self, inp):
        """Signed active power of IC phase inp, W (32-bit register pair, 0.32 mW/LSB)."""
        hi = self._s16(_PMEAN_A + inp)
        lo = self.read(_PMEAN_A + 0x10 + inp)
        mw = hi * 20971 + (hi * 52 + lo * 32) // 100  # hi * 20971.52 + lo * 0.32
        return (mw + 500) // 1000

    def poll(self, meter, now_ms):
        flags = 0
        if not self._inited:
            self.init()
        dig = self.read(_CRC_DIGEST)
        if self.digest < 0:
            self.digest = dig
        if not self.ok or self.read(_METER_EN) != 1 or dig != self.digest:
            self.faults += 1
            flags |= _f.FLAG_IC_FAULT
            self.init()
        s0 = self.read(_EMM_STATE0)
        s1 = self.read(_EMM_STATE1)
        vin = self.ic["v_input"]
        v_mv = self.read(_URMS_A + vin) * 10
        f = self.read(_FREQ) * 10
        if v_mv < self.cfg["v_min_mv"] or s1 & (0x0400 >> vin):
            flags |= _f.FLAG_NO_VOLTAGE
        if s1 & 0x8800:
            flags |= _f.FLAG_FREQ_RANGE
        if s0 == 0xFFFF and s1 == 0xFFFF:  # MISO stuck high: no IC answering
            flags |= _f.FLAG_IC_FAULT
        ph_w = meter.ph_w
        ph_ma = meter.ph_ma
        for i in range(len(ph_w)):
            ph_w[i] = 0
            ph_ma[i] = 0
        grid = 0
        house = 0
        for c in range(self.nc):
            inp = self._in[c]
            p = self.power_w(inp) * self._sign[c]
            ma = self.read(_IRMS_A + inp)
            self.ch_w[c] = p
            self.ch_ma[c] = ma
            self.ch_pf_pm[c] = self._s16(_PFMEAN_A + inp) * self._sign[c]
            over = s0 & (0x8000 >> inp)
            if self._role[c] == "grid":
                grid += p
                ph_w[self._phase[c]] += p
                ph_ma[self._phase[c]] += ma
                if over:
                    flags |= _f.FLAG_CLIPPED
            elif self._role[c] == "house":
                house += p
                if over:
                    flags |= _f.FLAG_HOUSE_FAULT
        self._check_config()
        if not self.ok:
            flags |= _f.FLAG_IC_FAULT
        if flags & _f.FLAG_NO_VOLTAGE:
            f = 0
        _f.publish(meter, now_ms, flags, grid, house, v_mv, f, self._rocof.update(f, now_ms))
