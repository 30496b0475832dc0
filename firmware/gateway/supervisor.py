# Task supervision: every service runs under `supervise`, which turns any
# unhandled exception into the safe state (interlock de-energised, setpoints 0,
# safety latched blocked) before it restarts the service after a pause. The
# asyncio loop's own exception handler does the same for stray tasks. The
# hardware watchdog is fed only while every critical task reports progress.
import sys

import asyncio
from micropython import const

from gateway.clock import saturate_age, ticks_diff

_FAIL_AGE_CAP_MS = const(0x10000000)  # ~3.1 days: longer than any quiet period (<= 1 h)


class Supervisor:
    def __init__(self, clock, safe_state, log):
        self.clock = clock
        self._safe_state = safe_state  # callable(reason_str): must not raise
        self._log = log
        self.failures = {}  # service name -> count
        self._beat = {}  # critical service name -> last progress tick
        self._limit = {}  # critical service name -> max silence, ms
        self.last_error = ""
        self.last_fail_ms = None  # tick of the last failure (None: never)
        self._stalled = None  # the critical task seen stalled at the last watchdog check

    def fail(self, name, exc):
        self.failures[name] = self.failures.get(name, 0) + 1
        self.last_fail_ms = self.clock.now_ms()
        self.last_error = "%s: %s: %s" % (name, type(exc).__name__, exc)
        try:
            self._safe_state("exception in " + name)
        finally:
            self._log("ERROR " + self.last_error)
            sys.print_exception(exc)

    async def supervise(self, name, factory, restart_ms=1000):
        """Run factory() forever; on an exception go to safe state, then restart."""
        while True:
            try:
                await factory()
                return  # a service that returns has finished its job
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the point is to catch everything
                self.fail(name, e)
            await asyncio.sleep_ms(restart_ms)

    def loop_exception_handler(self, loop, context):
        exc = context.get("exception")
        self.fail("loop", exc if exc is not None else RuntimeError(context.get("message")))

    def quiet_for(self, now_ms, ms):
        """True when no service has failed (or stalled) in the last `ms` milliseconds."""
        if self.last_fail_ms is None:
            return True
        self.last_fail_ms = saturate_age(now_ms, self.last_fail_ms, ms)
        return ticks_diff(now_ms, self.last_fail_ms) >= ms

    def stall(self, name):
        """A critical task made no progress: a failure like an exception, so the quiet period
        that clears the fault starts only once it runs again."""
        if name != self._stalled:  # counted once per stall, timed at every check of it
            self._stalled = name
            self.failures[name] = self.failures.get(name, 0) + 1
            self.last_error = "%s: stalled" % name
        self.last_fail_ms = self.clock.now_ms()

    # --- watchdog ------------------------------------------------------------
    def critical(self, name, max_silence_ms):
        self._limit[name] = max_silence_ms
        self._beat[name] = self.clock.now_ms()

    def progress(self, name):
        self._beat[name] = self.clock.now_ms()

    def stalled(self):
        """Name of the first critical task silent for too long, or None. Called every
        watchdog period, so it also keeps the failure age from wrapping (saturate_age)."""
        now = self.clock.now_ms()
        if self.last_fail_ms is not None:
            self.last_fail_ms = saturate_age(now, self.last_fail_ms, _FAIL_AGE_CAP_MS)
        for name, lim in self._limit.items():
            b = saturate_age(now, self._beat[name], lim)
            self._beat[name] = b
            if ticks_diff(now, b) > lim:
                return name
        return None

    async def feed_watchdog(self, board, period_ms, on_stall):
        while True:
            name = self.stalled()
            if name is None:
                self._stalled = None
                board.watchdog_feed()
            else:
                self.stall(name)
                on_stall(name)  # not fed: the board resets unless the task recovers
            await asyncio.sleep_ms(period_ms)
