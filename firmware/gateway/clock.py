# Wrapping millisecond ticks, the same on every runtime.
#
# All firmware time is a 30-bit tick count in ms that wraps at 2**30, exactly
# as time.ticks_ms() does on the ESP32 (~12.4 days). The 64-bit unix port never
# wraps its own ticks, so the board clock masks them to 30 bits: the wrap is
# then exercised on the host too. Core modules take `now_ms` as an argument and
# only ever compare ticks through ticks_diff(); they never read a clock.
# Every value here, intermediates included, stays a small int on a 32-bit word
# (inside +-2**30): no allocation on an ESP32. TICKS_PERIOD itself (2**30) is no
# small int there, so no hot path computes with it.
from micropython import const

TICKS_PERIOD = const(0x40000000)  # 2**30
TICKS_MAX = const(0x3FFFFFFF)
_HALF = const(0x20000000)


def ticks_add(t, delta):
    """t + delta (ms), wrapped; t a tick, |delta| < 2**30.

    t + delta itself may pass 2**30 (a long on a 32-bit word): a forward step is taken
    as t + (delta - TICKS_MAX), which stays inside +-2**30, then brought back.
    """
    if delta < 0:
        return (t + delta) & TICKS_MAX
    t += delta - TICKS_MAX  # the true sum minus 2**30 - 1
    if t > 0:  # the sum wrapped
        return (t - 1) & TICKS_MAX
    return (t + TICKS_MAX) & TICKS_MAX


def ticks_diff(a, b):
    """Signed a - b (ms) for ticks less than 2**29 apart, across the wrap.

    Every intermediate stays inside the ESP32's small-int range (+/-2**30): a - b does,
    while a - b + 2**29 or d - 2**30 would not.
    """
    d = (a - b) & TICKS_MAX
    return d - TICKS_MAX - 1 if d >= _HALF else d


def elapsed(now, since):
    """ms from `since` to `now`, never negative."""
    d = ticks_diff(now, since)
    return max(0, d)


class Clock:
    """The board clock: ticks_ms masked to 30 bits, with an optional offset.

    `offset_ms` lets the simulated board start just before the wrap so every
    live run crosses it. `source` is a function returning raw ms ticks (the
    runtime's time.ticks_ms by default).
    """

    def __init__(self, source=None, offset_ms=0):
        if source is None:
            import time

            source = time.ticks_ms
        self._src = source
        self._off = offset_ms

    def now_ms(self):
        return ticks_add(self._src() & TICKS_MAX, self._off)


class ManualClock:
    """A clock that only moves when told to: for tests and lockstep runs."""

    def __init__(self, start_ms=0):
        self.t = start_ms & TICKS_MAX

    def now_ms(self):
        return self.t

    def advance(self, ms):
        self.t = ticks_add(self.t, ms)
        return self.t


def saturate_age(now, since, cap_ms):
    """The stamp to keep in place of `since` so that its age at `now` never wraps.

    ticks_diff() sees ages only up to 2**29 ms (~6.2 days): an older stamp reads as the future,
    then from 2**30 ms (~12.4 days) as fresh again. Every age the firmware judges goes through
    here: keep the result (`t = saturate_age(now, t, cap)`) and its age ticks_diff(now, t) is
    the true age up to cap_ms, and cap_ms + 1 for anything older. A stamp that already reads as
    the future (its age wrapped past 2**29 ms before it was saturated) counts as older than
    cap_ms. Call it at least every ~6 days per stamp (every judgement does); 0 <= cap_ms < 2**29.
    """
    d = ticks_diff(now, since)
    if 0 <= d <= cap_ms:
        return since
    return ticks_add(now, -cap_ms - 1)
