# Supervision across the ESP32's 2**30 ms tick wrap (issue 15 item 5): a stalled task starts
# the quiet period like an exception does, and a failure days ago never latches or skips it.
import unittest

import asyncio
from gateway.clock import TICKS_MAX, ManualClock
from gateway.supervisor import Supervisor

HOUR_MS = 3600000
DAY_MS = 24 * HOUR_MS
QUIET_MS = 10000


class Board:
    def __init__(self):
        self.fed = 0

    def watchdog_feed(self):
        self.fed += 1


def make(start_ms=0):
    clock = ManualClock(start_ms)
    return clock, Supervisor(clock, lambda reason: None, lambda msg: None)


class QuietPeriod(unittest.TestCase):
    def test_a_stall_starts_the_quiet_period(self):
        clock, sup = make()
        sup.critical("control", 1000)
        clock.advance(2000)  # control made no progress
        stalls = []

        async def one_check():
            t = asyncio.create_task(sup.feed_watchdog(Board(), 10, stalls.append))
            await asyncio.sleep_ms(5)
            t.cancel()

        asyncio.run(one_check())
        self.assertEqual(stalls, ["control"])
        self.assertFalse(sup.quiet_for(clock.now_ms(), QUIET_MS), "stall skipped the quiet period")
        self.assertIn("stalled", sup.last_error)
        sup.progress("control")
        clock.advance(QUIET_MS)
        self.assertTrue(sup.quiet_for(clock.now_ms(), QUIET_MS))

    def test_a_failure_a_week_ago_does_not_latch(self):
        # nothing looked at the failure age for 7 days (ticks_diff alone reads -5.4 days)
        clock, sup = make(TICKS_MAX - HOUR_MS)
        sup.stall("control")
        clock.advance(7 * DAY_MS)
        self.assertTrue(sup.quiet_for(clock.now_ms(), QUIET_MS))

    def test_quiet_stays_quiet_across_the_wrap(self):
        clock, sup = make(TICKS_MAX - DAY_MS)
        sup.critical("safety", 2000)
        sup.stall("safety")
        for hour in range(14 * 24):  # two weeks, the watchdog check runs every period
            clock.advance(HOUR_MS)
            sup.progress("safety")
            self.assertEqual(sup.stalled(), None)
            self.assertTrue(sup.quiet_for(clock.now_ms(), QUIET_MS), "hour %d" % hour)

    def test_a_silent_task_stays_stalled_across_the_wrap(self):
        clock, sup = make(TICKS_MAX - DAY_MS)
        sup.critical("safety", 2000)
        for hour in range(14 * 24):
            clock.advance(HOUR_MS)
            self.assertEqual(sup.stalled(), "safety", "hour %d" % hour)
