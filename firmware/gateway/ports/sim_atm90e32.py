"""A simulated ATM90E32 on a simulated SPI bus (host only): the driver's test peer.

    ic = SimAtm90e32(truth)          # truth: v_mv, f_millihz, v_present, ch_w/ch_var/ch_open
    drv = Atm90e32(ic.spi, ic.cs, cfg)
The peer implements the register file and the framing the driver must get right: a frame
is what happens between CS low and CS high; the first 16 bits are the address word (bit
15 = read, bits 9..0 = register), the next 16 the data (clocked out by the peer on a read,
taken in on a write). A write frame that is not exactly 32 bits long is ignored, as are
writes to the configuration and calibration registers (00..6F) while CfgRegAccEn is not
55AA. SoftReset (70) with 789A restores the power-on state. LastSPIData (78) holds the last
word read or written. CRCDigest (7A) is a CRC-16 (CCITT) over registers 00..6F: an
opaque digest to the driver, which only watches it for changes.
Measurements come from the truth (inputs A/B/C = truth channels 0/1/2, one shared voltage)
scaled by the gains written versus `cal_ugain`/`cal_igain` (the values that make this
board read true), so a wrong calibration reads wrong, as on the real board.
Fault injection: corrupt(reg, val), power_glitch(), dead (MISO stuck high).
"""
import array
import math

_CFG_TOP = 0x70
_N = 0x100


class _Spi:
    def __init__(self, peer):
        self._p = peer

    def write(self, buf):
        for b in buf:
            self._p._byte(b)

    def readinto(self, buf, write=0):
        for i in range(len(buf)):
            buf[i] = self._p._byte(write)

    def write_readinto(self, tx, rx):
        for i in range(len(tx)):
            rx[i] = self._p._byte(tx[i])


class SimAtm90e32:
    def __init__(self, truth, cal_ugain=39470, cal_igain=30000):
        self.truth = truth
        self.cal_ugain = cal_ugain
        self.cal_igain = cal_igain
        self.regs = array.array("H", bytes(2 * _N))
        self.spi = _Spi(self)
        self.dead = False
        self.frames = 0
        self.bad_frames = 0
        self._sel = False
        self._nb = 0
        self._addr = 0
        self._out = 0
        self._in = 0
        self._seen = None
        self.power_glitch()

    # -- chip select: the Pin-like callable the driver toggles ------------------------
    def cs(self, level):
        if not level and not self._sel:
            self._sel = True
            self._nb = 0
        elif level and self._sel:
            self._sel = False
            self._end()

    def _byte(self, b):
        if not self._sel:
            return 0xFF
        n = self._nb
        self._nb = n + 1
        if n == 0:
            self._addr = b << 8
        elif n == 1:
            self._addr |= b
            if self._addr & 0x8000:
                reg = self._addr & 0x3FF
                self._out = self._value(reg)
                if reg != 0x78 and reg < _N:
                    self.regs[0x78] = self._out
        elif n == 2:
            self._in = b << 8
        elif n == 3:
            self._in |= b
        if self.dead:
            return 0xFF
        if self._addr & 0x8000 and n in (2, 3):
            return (self._out >> 8) & 0xFF if n == 2 else self._out & 0xFF
        return 0

    def _end(self):
        self.frames += 1
        if self._nb != 4:
            self.bad_frames += 1
            return
        if self._addr & 0x8000:
            return
        reg = self._addr & 0x3FF
        val = self._in
        if reg >= _N:
            return
        self.regs[0x78] = val
        if reg == 0x70:
            if val == 0x789A:
                self.power_glitch()
            return
        if reg < _CFG_TOP and self.regs[0x7F] != 0x55AA:
            return
        self.regs[reg] = val
        if reg < _CFG_TOP:
            self._digest()
            self._seen = None  # gains changed: recompute the measurements

    # -- register file ------------------------------------------------------------------
    def power_glitch(self):
        """Power-on state: configuration lost, metering off."""
        r = self.regs
        for i in range(_N):
            r[i] = 0
        self._digest()
        self._seen = None

    def corrupt(self, reg, val):
        """A register changes behind the driver's back (EMI, brown-out)."""
        self.regs[reg] = val
        if reg < _CFG_TOP:
            self._digest()
            self._seen = None

    def _digest(self):
        crc = 0xFFFF
        for i in range(_CFG_TOP):
            v = self.regs[i]
            for b in ((v >> 8) & 0xFF, v & 0xFF):
                crc ^= b << 8
                for _ in range(8):
                    crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        self.regs[0x7A] = crc

    def _value(self, reg):
        if reg >= 0xB0 or reg in (0x71, 0x72):
            self._measure()
        return self.regs[reg] if reg < _N else 0

    def _changed(self):
        t, o = self.truth, self._seen
        if o is None:
            return True
        if t.v_mv != o[0] or t.f_millihz != o[1] or t.v_present != o[2]:
            return True
        for c in range(min(3, len(t.ch_w))):
            if t.ch_w[c] != o[3 + 3 * c] or t.ch_var[c] != o[4 + 3 * c] or \
                    t.ch_open[c] != o[5 + 3 * c]:
                return True
        return False

    def _measure(self):
        """Measurement registers from the truth (allocates only when something changed)."""
        if not self._changed():
            return
        t = self.truth
        o = [t.v_mv, t.f_millihz, t.v_present]
        r = self.regs
        on = r[0x00] == 1
        v_mv = t.v_mv if (t.v_present and on) else 0
        s0 = 0
        s1 = 0
        fr = t.f_millihz // 10 if v_mv else 0
        if fr and r[0x0D] and fr > r[0x0D]:
            s1 |= 0x8000
        if fr and r[0x0C] and fr < r[0x0C]:
            s1 |= 0x0800
        r[0xF8] = fr
        for i in range(3):
            w = t.ch_w[i] if i < len(t.ch_w) else 0
            q = t.ch_var[i] if i < len(t.ch_w) else 0
            opened = t.ch_open[i] if i < len(t.ch_w) else False
            o += [w, q, opened]
            ku = r[0x61 + 4 * i] / self.cal_ugain
            ki = r[0x62 + 4 * i] / self.cal_igain
            if opened or not v_mv:
                w = q = 0
            s = math.sqrt(w * w + q * q)
            ma = s / (t.v_mv / 1000) * 1000 * ki if t.v_mv else 0
            if ma > 65535:
                s0 |= 0x8000 >> i
                ma = 65535
            r[0xD9 + i] = min(0xFFFF, int(v_mv / 10 * ku + 0.5))
            r[0xDD + i] = int(ma + 0.5)
            raw = round(w * ku * ki / 0.00032) & 0xFFFFFFFF
            r[0xB1 + i] = raw >> 16
            r[0xC1 + i] = raw & 0xFFFF
            r[0xBD + i] = round(1000 * w / s) & 0xFFFF if s else 0
            if not v_mv:
                s1 |= 0x0400 >> i
        r[0x71] = s0
        r[0x72] = s1
        self._seen = o
