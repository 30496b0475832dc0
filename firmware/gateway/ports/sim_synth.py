# Sample synthesis for the simulated analog front end (host only: the unix port and CPython).
#
# One call fills one channel's chunk: a fundamental plus 3rd and 5th harmonics read from an
# integer sine table (1024 points, linear interpolation, Q15), DC bias, triangular noise from
# a seeded LCG (mod 2**31, multiplier 22695477: full period; constants small enough for
# 32-bit viper code), quantisation to the ADC step and clipping to the ADC range. The phase is
# Q44 (one cycle = 2**44) so that 30 minutes of drift-free phase costs nothing in accuracy.
# The viper version relies on 64-bit words (the Q44 phase, the 32-bit masks and the
# amplitude products overflow a 32-bit viper word), so it is used only where small ints
# reach 2**62 (the 64-bit unix port). On a 32-bit runtime (the ESP32-like host build)
# the plain kernel runs: exact there too (Python ints grow), only slower, and its long
# intermediates are simulator garbage, not firmware allocation. Never runs on the ESP32.
# The viper version and the plain one give the same samples bit for bit.
import array
import math
import sys

import micropython

TAB = array.array("h", bytes(2 * 1025))  # filled in place: no 1025-element list on the heap
for _i in range(1025):
    TAB[_i] = round(32767 * math.sin(2 * math.pi * _i / 1024))

# par[] layout
P_BIAS = 0  # uV
P_A1 = 1  # uV peak of the fundamental, 3rd, 5th
P_A3 = 2
P_A5 = 3
P_F1 = 4  # phase offsets, Q32 of a cycle, of the fundamental, 3rd, 5th
P_F3 = 5
P_F5 = 6
P_NOISE = 7  # uV, triangular noise in +/- this
P_LSB = 8  # uV per ADC code
P_LO = 9  # lowest and highest code (clipping)
P_HI = 10
NPAR = 11


def _synth_py(buf, n, th0, dth, par, tab, st):
    bias = par[0]
    a1 = par[1]
    a3 = par[2]
    a5 = par[3]
    f1 = par[4]
    f3 = par[5]
    f5 = par[6]
    nz = par[7]
    lsb = par[8]
    lo = par[9]
    hi = par[10]
    s = st[0]
    for j in range(n):
        t = ((th0 + j * dth) >> 12) & 0xFFFFFFFF
        p = (t + f1) & 0xFFFFFFFF
        i = p >> 22
        y = tab[i] + (((tab[i + 1] - tab[i]) * ((p >> 12) & 1023)) >> 10)
        acc = a1 * y
        p = (3 * t + f3) & 0xFFFFFFFF
        i = p >> 22
        y = tab[i] + (((tab[i + 1] - tab[i]) * ((p >> 12) & 1023)) >> 10)
        acc += a3 * y
        p = (5 * t + f5) & 0xFFFFFFFF
        i = p >> 22
        y = tab[i] + (((tab[i + 1] - tab[i]) * ((p >> 12) & 1023)) >> 10)
        acc += a5 * y
        s = (s * 22695477 + 1) & 0x7FFFFFFF
        u = (s >> 16) & 0x7FFF
        s = (s * 22695477 + 1) & 0x7FFFFFFF
        u += ((s >> 16) & 0x7FFF) - 32767
        val = bias + (acc >> 15) + ((u * nz) >> 15)
        code = (val + (lsb >> 1)) // lsb if val > 0 else 0
        if code < lo:
            code = lo
        elif code > hi:
            code = hi
        buf[j] = (code * lsb) // 100
    st[0] = s


PLAIN = _synth_py
VIPER = None

try:

    @micropython.viper
    def _synth_vp(buf, n: int, th0: int, dth: int, par, tab, st):
        pb = ptr16(buf)  # noqa: F821 - viper builtin
        pt = ptr16(tab)  # noqa: F821
        ps = ptr32(st)  # noqa: F821
        bias = int(par[0])
        a1 = int(par[1])
        a3 = int(par[2])
        a5 = int(par[3])
        f1 = int(par[4])
        f3 = int(par[5])
        f5 = int(par[6])
        nz = int(par[7])
        lsb = int(par[8])
        lo = int(par[9])
        hi = int(par[10])
        m32 = 0xFFFF
        m32 = (m32 << 16) | 0xFFFF
        m31 = 0x7FFF
        m31 = (m31 << 16) | 0xFFFF  # not folded into one constant: 2**31 - 1 is no small int
        s = int(ps[0])
        for j in range(n):
            t = ((th0 + j * dth) >> 12) & m32
            p = (t + f1) & m32
            i = p >> 22
            y0 = int(pt[i])
            y1 = int(pt[i + 1])
            if y0 > 32767:
                y0 -= 65536
            if y1 > 32767:
                y1 -= 65536
            acc = a1 * (y0 + (((y1 - y0) * ((p >> 12) & 1023)) >> 10))
            p = (3 * t + f3) & m32
            i = p >> 22
            y0 = int(pt[i])
            y1 = int(pt[i + 1])
            if y0 > 32767:
                y0 -= 65536
            if y1 > 32767:
                y1 -= 65536
            acc += a3 * (y0 + (((y1 - y0) * ((p >> 12) & 1023)) >> 10))
            p = (5 * t + f5) & m32
            i = p >> 22
            y0 = int(pt[i])
            y1 = int(pt[i + 1])
            if y0 > 32767:
                y0 -= 65536
            if y1 > 32767:
                y1 -= 65536
            acc += a5 * (y0 + (((y1 - y0) * ((p >> 12) & 1023)) >> 10))
            s = (s * 22695477 + 1) & m31
            u = (s >> 16) & 0x7FFF
            s = (s * 22695477 + 1) & m31
            u += ((s >> 16) & 0x7FFF) - 32767
            val = bias + (acc >> 15) + ((u * nz) >> 15)
            code = 0
            if val > 0:
                code = (val + (lsb >> 1)) // lsb
            if code < lo:
                code = lo
            elif code > hi:
                code = hi
            pb[j] = (code * lsb) // 100
        ps[0] = s

    _b = array.array("H", [0])
    _st = array.array("i", [1])
    _synth_vp(_b, 1, 0, 0, [1000, 0, 0, 0, 0, 0, 0, 0, 100, 0, 4095], TAB, _st)
    if _b[0] == 10 and sys.maxsize > 0x7FFFFFFF:  # 64-bit words only (see the top)
        VIPER = _synth_vp
except (NameError, AttributeError, TypeError):
    VIPER = None


def select(name="auto"):
    if name == "python":
        return PLAIN
    if name == "viper" and VIPER is None:
        raise ValueError("sim synth: viper is not available on this runtime")
    return VIPER if VIPER is not None else PLAIN
