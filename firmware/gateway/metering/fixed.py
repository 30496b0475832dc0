# Fixed-point helpers for the metering core.
#
# Every intermediate stays within +/-2**30 (the ESP32's small-int range; a bigger int is a
# heap object). Gains are kept as (mantissa, exponent) pairs, mantissa in [2**14, 2**15),
# made once at start-up by gain(); fmul()/fmul3() then scale a measured value with a
# relative error below 1e-4 without ever forming a product wider than 30 bits.
import math

_M15 = 32768


def bitlen(x):
    """Number of bits of |x| (0 for 0)."""
    if x < 0:
        x = -x
    n = 0
    while x:
        x >>= 1
        n += 1
    return n


def isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**30."""
    if n <= 0:
        return 0
    x = 1 << ((bitlen(n) + 1) >> 1)  # >= sqrt(n)
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def rms_q4(var):
    """16 * sqrt(var) for 0 <= var < 2**30 (an rms in 1/16 of a unit)."""
    if var <= 0:
        return 0
    if var < 0x400000:  # var * 256 < 2**30: full resolution for small signals
        return isqrt(var << 8)
    return isqrt(var) << 4


def gain(g):
    """A positive real gain as (mantissa in [2**14, 2**15), exponent): g = m * 2**e.

    Runs at start-up (it uses a float); 0 gives (0, 0).
    """
    if g <= 0:
        return 0, 0
    f, e = math.frexp(g)  # g = f * 2**e, 0.5 <= f < 1
    m = int(f * _M15 + 0.5)
    if m >= _M15:
        m >>= 1
        e += 1
    return m, e - 15


def _shift(p, s):
    """p * 2**s with rounding (s may be negative)."""
    if s >= 0:
        return p << s
    return (p + (1 << (-s - 1))) >> -s


def fmul(x, m, e):
    """round(x * m * 2**e); the result must fit in 30 bits (caller's units ensure it)."""
    neg = x < 0
    if neg:
        x = -x
    k = 0
    while x >= _M15:
        x >>= 1
        k += 1
    r = _shift(x * m, e + k)
    return -r if neg else r


def fmul3(a, b, m, e):
    """round(a * b * m * 2**e) for |a|, |b| < 2**30 (relative error < 2e-4)."""
    neg = (a < 0) != (b < 0)
    if a < 0:
        a = -a
    if b < 0:
        b = -b
    k = 0
    while a >= _M15:
        a >>= 1
        k += 1
    while b >= _M15:
        b >>= 1
        k += 1
    p = a * b
    while p >= _M15:
        p >>= 1
        k += 1
    r = _shift(p * m, e + k)
    return -r if neg else r


def mean_q(s, sh, w_q8):
    """Per-sample mean of a sum: s * 2**sh / (w_q8 / 256), w_q8 > 0, floor.

    s is a kernel sum (|s| < 2**30) taken with right shift `sh`, over a weight of w_q8/256
    samples (w_q8 < 2**16). The mean itself must fit in 30 bits.
    """
    q = s // w_q8
    r = s - q * w_q8  # 0 <= r < w_q8
    return ((q << 8) + ((r << 8) // w_q8)) << sh


def mhz_from_period_ns(t_ns):
    """Frequency in mHz of a period in ns: 1e12 / t_ns, rounded (t_ns 1e6..1e8)."""
    if t_ns <= 0:
        return 0
    # 1e12 = 1e9 * 10**3: long division one decimal digit at a time keeps r * 10 < 2**30.
    q = 1000000000 // t_ns
    r = 1000000000 - q * t_ns
    for _ in range(3):
        r *= 10
        d = r // t_ns
        q = q * 10 + d
        r -= d * t_ns
    if r * 2 >= t_ns:
        q += 1
    return q


def mdiv(a, m, d):
    """floor(a * m / d) for d > 0 with a % d * m and the result within 30 bits."""
    q = a // d
    return q * m + ((a - q * d) * m) // d
