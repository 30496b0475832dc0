# The tick arithmetic must survive the ESP32's 2**30 wrap (~12.4 days of ms).
import unittest

from gateway.clock import (
    TICKS_MAX,
    TICKS_PERIOD,
    Clock,
    ManualClock,
    elapsed,
    saturate_age,
    ticks_add,
    ticks_diff,
)


class TickWrap(unittest.TestCase):
    def test_add_wraps(self):
        self.assertEqual(ticks_add(TICKS_MAX, 1), 0)
        self.assertEqual(ticks_add(TICKS_MAX - 5, 10), 4)
        self.assertEqual(ticks_add(3, -5), TICKS_PERIOD - 2)

    def test_diff_across_wrap(self):
        before = TICKS_MAX - 499
        after = ticks_add(before, 1000)
        self.assertEqual(after, 500)
        self.assertEqual(ticks_diff(after, before), 1000)
        self.assertEqual(ticks_diff(before, after), -1000)

    def test_elapsed_never_negative(self):
        self.assertEqual(elapsed(10, 20), 0)
        self.assertEqual(elapsed(ticks_add(TICKS_MAX, 60001), TICKS_MAX), 60001)

    def test_manual_clock_wraps(self):
        c = ManualClock(TICKS_MAX - 10)
        t0 = c.now_ms()
        c.advance(25)
        self.assertEqual(c.now_ms(), 14)
        self.assertEqual(ticks_diff(c.now_ms(), t0), 25)

    def test_board_clock_masks_and_offsets(self):
        raw = [0]
        c = Clock(lambda: raw[0], offset_ms=TICKS_MAX - 100)
        t0 = c.now_ms()
        raw[0] = 250
        self.assertEqual(ticks_diff(c.now_ms(), t0), 250)
        self.assertTrue(c.now_ms() < 200, "clock did not wrap")

    def test_no_allocation(self):
        import micropython

        micropython.heap_lock()
        try:
            t = TICKS_MAX - 3
            for _ in range(100):
                t = ticks_add(t, 7)
                d = ticks_diff(t, 5)
        finally:
            micropython.heap_unlock()
        self.assertTrue(-TICKS_PERIOD < d < TICKS_PERIOD)


class SmallIntRange(unittest.TestCase):
    def test_diff_extremes_stay_small(self):
        # b far ahead of a across the wrap: the old formula passed through 2**30 + 2**29
        self.assertEqual(ticks_diff(0, TICKS_MAX), 1)
        self.assertEqual(ticks_diff(TICKS_MAX, 0), -1)
        self.assertEqual(ticks_diff(0x1FFFFFFF, 0), 0x1FFFFFFF)
        self.assertEqual(ticks_diff(0x20000000, 0), -0x20000000)

    def test_no_allocation_on_a_32_bit_word_at_the_edges(self):
        # On an ESP32 any intermediate past +-2**30 is a heap-allocated long: the sums that
        # cross the wrap and the negative differences must not make one (proved under
        # heap_lock on the ESP32-like runtime; the 64-bit port checks the values).
        import micropython

        ts = (0, 1, 5, 0x1FFFFFFF, 0x20000000, TICKS_MAX - 7, TICKS_MAX)
        ds = (0, 1, -1, 7, -7, 0x1FFFFFFF, -0x1FFFFFFF, TICKS_MAX, -TICKS_MAX)
        n = len(ts) * len(ds)
        got_add = [0] * n
        got_diff = [0] * n
        micropython.heap_lock()
        try:
            k = 0
            for t in ts:
                for d in ds:
                    got_add[k] = ticks_add(t, d)
                    got_diff[k] = ticks_diff(t, d & TICKS_MAX)
                    k += 1
        finally:
            micropython.heap_unlock()
        k = 0
        for t in ts:
            for d in ds:
                self.assertEqual(got_add[k], (t + d) % TICKS_PERIOD, (t, d))
                want = (t - (d & TICKS_MAX)) % TICKS_PERIOD
                if want >= TICKS_PERIOD // 2:
                    want -= TICKS_PERIOD
                self.assertEqual(got_diff[k], want, (t, d))
                k += 1

DAY_MS = 86400000


class SaturatedAge(unittest.TestCase):
    """Issue 15 item 5: ages stay true up to their cap and never come back as fresh."""

    def test_true_age_up_to_the_cap(self):
        t = saturate_age(5000, 2000, 3000)
        self.assertEqual(t, 2000)
        self.assertEqual(ticks_diff(5000, t), 3000)

    def test_older_reads_cap_plus_one_across_the_wrap(self):
        since = TICKS_MAX - 100
        now = since
        for _ in range(30):  # 15 days in 12 h hops, judged every hop: past the 2**30 wrap
            now = ticks_add(now, DAY_MS // 2)
            since = saturate_age(now, since, 3000)
            self.assertEqual(ticks_diff(now, since), 3001)

    def test_a_stamp_that_already_wrapped_is_old(self):
        # not judged for 7 days: ticks_diff says -5.4 days; it must not read as fresh
        now = ticks_add(1000, 7 * DAY_MS)
        self.assertTrue(ticks_diff(now, 1000) < 0)
        since = saturate_age(now, 1000, 60000)
        self.assertEqual(ticks_diff(now, since), 60001)

    def test_allocates_nothing(self):
        import micropython

        s = TICKS_MAX - 10
        micropython.heap_lock()
        try:
            for k in range(100):
                s = saturate_age(ticks_add(s, 40000 + k), s, 30000)
        finally:
            micropython.heap_unlock()
        self.assertTrue(0 <= s <= TICKS_MAX)
