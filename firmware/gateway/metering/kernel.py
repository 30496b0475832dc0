# Sample loops of the metering window: viper on MicroPython, plain Python elsewhere.
#
# Two implementations with the same arithmetic, bit for bit, chosen once at import:
# `VIPER` (MicroPython's viper emitter: machine-word ints, raw array pointers, about 20x
# faster than bytecode) and `PLAIN` (any Python; what CPython runs, and a fallback on a
# MicroPython build without the native emitters). Both are tuples of functions
# (acc, zc, rng, lin); `select(name)` returns one of them.
#
# Sample buffers are array('H'): one sample per element, in 0.1 mV units at the ADC pin,
# 0..32767 (the front end's contract). Results go into array('i') outputs, never into
# returned tuples (a tuple allocates). Bounds (the ESP32's viper ints are 32-bit and its
# small ints 31-bit): |x|, |y| <= 32767 after offset removal; products < 2**30; sums over
# at most 256 samples stay < 2**30 with the shifts the caller picks (see window.py).
# A viper loop does not let soft IRQs run: one call covers at most one chunk (<= 256
# samples, well under 1 ms on the ESP32).
# ruff: noqa: PLR1730 - min()/max() are calls on objects (slow, and not viper ints): keep ifs
import micropython

# ctl[] layout for acc(): 256 + the voltage shift for this channel (Q8 samples, -256..256;
# stored offset by 256 because a viper ptr32 load is unsigned on 64-bit hosts), the shift for
# y*y and the shift for x*y.
CTL_K = 0
CTL_SYY = 1
CTL_SXY = 2


def _acc_py(v, c, n0, n1, ov, oc, ctl, out):
    """Sums over samples n0..n1-1 of one current channel `c` against the voltage `v`.

    y = c[n] - oc; xs = the voltage at n + k/256 samples (k = ctl[0] - 256, linear
    interpolation) - ov.
    out[0] = sum(y); out[1] = sum(round(y*y >> syy)); out[2] = sum(round(xs*y >> sxy)).
    """
    k = ctl[0] - 256
    syy = ctl[1]
    sxy = ctl[2]
    ryy = (1 << syy) >> 1
    rxy = (1 << sxy) >> 1
    s0 = 0
    s1 = 0
    s2 = 0
    if k >= 0:
        for n in range(n0, n1):
            a = v[n]
            xs = a + (((v[n + 1] - a) * k) >> 8) - ov
            y = c[n] - oc
            s0 += y
            s1 += (y * y + ryy) >> syy
            s2 += (xs * y + rxy) >> sxy
    else:
        for n in range(n0, n1):
            a = v[n]
            xs = a + (((a - v[n - 1]) * k) >> 8) - ov
            y = c[n] - oc
            s0 += y
            s1 += (y * y + ryy) >> syy
            s2 += (xs * y + rxy) >> sxy
    out[0] = s0
    out[1] = s1
    out[2] = s2


def _zc_py(v, n0, n1, ov, hyst, out):
    """First zero crossing of v - ov in n0..n1-1, with hysteresis `hyst`.

    Returns the index b of the first sample past the crossing (the crossing lies between
    b-1 and b) or -1; out[0] = 1 rising / 0 falling, out[1] = position of the crossing
    after sample b-1 in 1/256 sample. A crossing counts only after the signal was beyond
    -hyst (rising) or +hyst (falling) inside the range, so noise near zero gives none.
    """
    arm = 0  # 1: armed for rising, 2: armed for falling
    for n in range(n0, n1):
        x = v[n] - ov
        if arm == 1:
            if x >= 0:
                a = ov - v[n - 1]  # > 0
                out[0] = 1
                out[1] = (a * 256) // (a + x)
                return n
        elif arm == 2:
            if x < 0:
                a = v[n - 1] - ov  # >= 0
                out[0] = 0
                out[1] = (a * 256) // (a - x)
                return n
        if x < -hyst:
            arm = 1
        elif x > hyst:
            arm = 2
    return -1


def _rng_py(b, n, out):
    """out[0] = min, out[1] = max of b[0..n-1]."""
    lo = 65535
    hi = 0
    for i in range(n):
        x = b[i]
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    out[0] = lo
    out[1] = hi


def _lin_py(b, n, tab):
    """In place: raw 12-bit ADC codes -> 0.1 mV through a 33-point table (every 128 codes)."""
    for i in range(n):
        x = b[i]
        j = x >> 7
        if j > 31:
            j = 31
        t0 = tab[j]
        b[i] = t0 + (((tab[j + 1] - t0) * (x - (j << 7))) >> 7)


PLAIN = (_acc_py, _zc_py, _rng_py, _lin_py)
VIPER = None

try:
    # The viper versions. ptr16 loads are unsigned; int() makes them signed machine ints.
    @micropython.viper
    def _acc_vp(v, c, n0: int, n1: int, ov: int, oc: int, ctl, out):
        pv = ptr16(v)  # noqa: F821 - viper builtin
        pc = ptr16(c)  # noqa: F821
        pk = ptr32(ctl)  # noqa: F821
        po = ptr32(out)  # noqa: F821
        k = int(pk[0]) - 256
        syy = int(pk[1])
        sxy = int(pk[2])
        ryy = (1 << syy) >> 1
        rxy = (1 << sxy) >> 1
        s0 = 0
        s1 = 0
        s2 = 0
        if k >= 0:
            for n in range(n0, n1):
                a = int(pv[n])
                xs = a + (((int(pv[n + 1]) - a) * k) >> 8) - ov
                y = int(pc[n]) - oc
                s0 += y
                s1 += (y * y + ryy) >> syy
                s2 += (xs * y + rxy) >> sxy
        else:
            for n in range(n0, n1):
                a = int(pv[n])
                xs = a + (((a - int(pv[n - 1])) * k) >> 8) - ov
                y = int(pc[n]) - oc
                s0 += y
                s1 += (y * y + ryy) >> syy
                s2 += (xs * y + rxy) >> sxy
        po[0] = s0
        po[1] = s1
        po[2] = s2

    @micropython.viper
    def _zc_vp(v, n0: int, n1: int, ov: int, hyst: int, out) -> int:
        pv = ptr16(v)  # noqa: F821
        po = ptr32(out)  # noqa: F821
        arm = 0
        for n in range(n0, n1):
            x = int(pv[n]) - ov
            if arm == 1:
                if x >= 0:
                    a = ov - int(pv[n - 1])
                    po[0] = 1
                    po[1] = (a * 256) // (a + x)
                    return n
            elif arm == 2:
                if x < 0:
                    a = int(pv[n - 1]) - ov
                    po[0] = 0
                    po[1] = (a * 256) // (a - x)
                    return n
            if x < 0 - hyst:
                arm = 1
            elif x > hyst:
                arm = 2
        return -1

    @micropython.viper
    def _rng_vp(b, n: int, out):
        pb = ptr16(b)  # noqa: F821
        po = ptr32(out)  # noqa: F821
        lo = 65535
        hi = 0
        for i in range(n):
            x = int(pb[i])
            if x < lo:
                lo = x
            if x > hi:
                hi = x
        po[0] = lo
        po[1] = hi

    @micropython.viper
    def _lin_vp(b, n: int, tab):
        pb = ptr16(b)  # noqa: F821
        pt = ptr16(tab)  # noqa: F821
        for i in range(n):
            x = int(pb[i])
            j = x >> 7
            if j > 31:
                j = 31
            t0 = int(pt[j])
            pb[i] = t0 + (((int(pt[j + 1]) - t0) * (x - (j << 7))) >> 7)

    # On CPython the decorator is the identity and ptr16 does not exist: probe once.
    import array as _array

    _probe = _array.array("H", [1, 2])
    _out = _array.array("i", [0, 0])
    _rng_vp(_probe, 2, _out)
    if _out[0] == 1 and _out[1] == 2:
        VIPER = (_acc_vp, _zc_vp, _rng_vp, _lin_vp)
except (NameError, AttributeError, SyntaxError, TypeError):
    VIPER = None


def select(name="auto"):
    """The kernel set by name: "auto" (viper where it runs), "viper" or "python"."""
    if name == "python":
        return PLAIN
    if name == "viper":
        if VIPER is None:
            raise ValueError("kernel: viper is not available on this runtime")
        return VIPER
    return VIPER if VIPER is not None else PLAIN
