# The Modbus RTU bus master: ONE task owns the serial line and serves device drivers by priority.
#
# Priorities: SAFETY (stop commands) > COMMAND (setpoints, heartbeats, initialisation, one-off
# requests) > POLL (periodic reads). A stop pre-empts whatever is in flight: no retry of any
# other request while it is pending, a request not yet on the wire is withdrawn, a silent
# slave's reply is given up `preempt_ms` after the request left the wire (not its timeout), and
# one-off writes still queued when the stop comes are dropped, so nothing written before the
# stop reaches a device after it. A frame being transmitted, or a reply being received, is
# finished (on half-duplex RS-485 sending over it would collide): keep poll blocks short
# (max_poll_regs).
#
# Drivers (gateway/devices) are small state machines the bus asks for work:
#   drv.next(req, level, now_ms) -> bool  fill req for this priority level, or decline
#   drv.done(req, now_ms)                 req.status holds the outcome (rtu status code); the
#                                         bus has already counted it in drv.health
#   drv.tick(now_ms)                      age its data: online/offline, staleness
#   drv.arm_stop(now_ms), drv.stop_done   stop sequence: write safe values, read them back
#   drv.stop_urgent()                     its first safe write is still to be done
# step() is pure (time comes in) and allocates nothing after warm-up; run() is the asyncio task.
from array import array

import asyncio
from micropython import const

from gateway.clock import TICKS_MAX, Clock, ticks_add, ticks_diff
from gateway.modbus import rtu
from gateway.modbus.link import Link
from gateway.modbus.settings import ConfigError, settings

SAFETY = const(0)
COMMAND = const(1)
POLL = const(2)
_LEVELS = const(3)
_CUT_POLL_MS = const(5)  # longest sleep with a pre-emptable request in flight

STOP_NONE = const(0)
STOP_PENDING = const(1)  # stop requested, not yet confirmed by every device
STOP_CONFIRMED = const(2)  # every device read back its safe values

SCHEMA = {
    # The UART is configured from the board file; given here, these must agree with it.
    "baud": (9600, (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), None),
    "parity": ("E", ("E", "N", "O"), None),  # 8E1 is the Modbus default (serial line 2.5.1)
    "stop": (1, 1, 2),  # no parity needs 2 stop bits by the spec; many devices use 8N1
    "timeout_ms": (200, 10, 5000),  # response timeout, from the end of the request on the wire
    "char_timeout_ms": (0, 0, 200),  # 0: 12 characters, at least 2 x t3.5
    "retries": (2, 0, 5),  # extra attempts for commands and one-off requests
    "poll_retries": (0, 0, 3),  # extra attempts for polls (the next period polls again)
    "offline_after": (3, 1, 50),  # consecutive failed transactions before a device is offline
    "offline_poll_ms": (5000, 200, 600000),  # probe period of an offline device
    "stop_retry_ms": (100, 10, 5000),  # pacing of stop writes to a device that fails them
    # A stop gives up the reply to the request in flight when it has not started this long
    # after the request left the wire (a reply that starts later may collide with the stop,
    # which is then repeated after stop_retry_ms). Slaves answer within a few ms.
    "preempt_ms": (50, 0, 1000),
    # Longest poll read: a stop waits for at most one transaction in flight. At 9600 baud a
    # 4-register poll is 8 + 13 bytes on the wire (24 ms), so the charger's stop is acknowledged
    # within ~24 + t3.5 + 8 + 8 bytes (~50 ms) plus the devices' turnaround.
    "max_poll_regs": (4, 1, 125),
    "idle_ms": (2, 1, 50),  # how often an idle bus looks for work
}


class Request:
    """The one transaction in flight (preallocated, reused)."""

    def __init__(self):
        self.unit = 0
        self.fn = 0
        self.start = 0
        self.count = 0
        self.values = array("H", bytes(2 * rtu.MAX_WRITE))  # registers to write
        self.regs = array("H", bytes(2 * rtu.MAX_READ))  # registers read
        self.status = 0
        self.tag = 0  # the driver's own step id
        self.tries = 1  # attempts allowed (set by the driver; 1 = no retry)
        self.timeout_ms = 0  # 0: the bus default
        self.owner = None
        self.level = POLL

    def read(self, unit, fn, start, count, tag):
        self.unit = unit
        self.fn = fn
        self.start = start
        self.count = count
        self.tag = tag
        self.values[0] = 0

    def write1(self, unit, reg, value, tag):
        self.unit = unit
        self.fn = rtu.FC_WRITE_SINGLE
        self.start = reg
        self.count = 1
        self.values[0] = value & 0xFFFF
        self.tag = tag

    def write(self, unit, start, count, tag):
        """Write values[0:count] (fill them before or after this call) with function 16."""
        self.unit = unit
        self.fn = rtu.FC_WRITE_MULTIPLE
        self.start = start
        self.count = count
        self.tag = tag


class Health:
    """Per-device link health: counters and the time of the last good reply."""

    def __init__(self):
        self.online = False
        self.t_ok_ms = 0  # tick of the last valid reply (normal or exception)
        self.ok = 0
        self.timeouts = 0
        self.crc = 0
        self.exceptions = 0
        self.unexpected = 0  # wrong address or function
        self.malformed = 0
        self.fails = 0  # consecutive transactions without a valid reply
        self.last_status = 0
        self.last_exception = 0

    def record(self, status, now_ms):
        if status == rtu.E_PREEMPTED:  # withdrawn by us: says nothing about the device
            return
        self.last_status = status
        if status >= 0 or status <= rtu.EXC_BASE:
            self.t_ok_ms = now_ms
            self.fails = 0
            if status >= 0:
                self.ok += 1
            else:
                self.exceptions += 1
                self.last_exception = rtu.EXC_BASE - status
            return
        self.fails += 1
        if status == rtu.E_TIMEOUT:
            self.timeouts += 1
        elif status == rtu.E_CRC:
            self.crc += 1
        elif status == rtu.E_MALFORMED:
            self.malformed += 1
        else:
            self.unexpected += 1


class _Adhoc:
    """One-off requests (discovery tools, console, tests) served at COMMAND level."""

    def __init__(self):
        self.pending = False
        self.unit = 0
        self.fn = 0
        self.start = 0
        self.count = 0
        self.values = array("H", bytes(2 * rtu.MAX_WRITE))
        self.regs = array("H", bytes(2 * rtu.MAX_READ))
        self.status = 0
        self.tries = 1
        self.health = Health()

    def next(self, req, level, now_ms):
        if level != COMMAND or not self.pending:
            return False
        req.unit = self.unit
        req.fn = self.fn
        req.start = self.start
        req.count = self.count
        for i in range(self.count if self.fn == rtu.FC_WRITE_MULTIPLE else 1):
            req.values[i] = self.values[i]
        req.tag = 0
        req.tries = self.tries
        return True

    def done(self, req, now_ms):
        self.status = req.status
        if req.status == 0 and (req.fn == rtu.FC_READ_HOLDING or req.fn == rtu.FC_READ_INPUT):
            for i in range(req.count):
                self.regs[i] = req.regs[i]
        self.pending = False

    def tick(self, now_ms):
        pass


class Bus:
    def __init__(self, uart, cfg=None, clock=None):
        self.cfg = c = settings(SCHEMA, cfg, "bus")
        for k in ("baud", "parity", "stop"):  # the board file configures the UART itself
            if cfg and k in cfg and cfg[k] != getattr(uart, k):
                raise ConfigError(f"bus.{k}: {cfg[k]!r} but the UART is set to "
                                  f"{getattr(uart, k)!r} (board file)")
        self.link = Link(uart, c["char_timeout_ms"], c["preempt_ms"])
        self.clock = clock
        self.timeout_ms = c["timeout_ms"]
        self.devices = []
        self.req = Request()
        self._adhoc = _Adhoc()
        self._rr = [0] * _LEVELS  # round-robin position per level
        self._busy = False
        self._tries = 0
        self._t0_us = 0
        self._tick_ms = 0
        self._ticked = False
        self.hold = False  # stop latched: drivers write safe values until release_stop()
        self.stop_state = STOP_NONE
        self.stop_req_ms = 0  # tick of submit_stop()
        self.stop_confirmed_ms = 0  # tick at which every device confirmed
        # statistics
        self.transactions = 0
        self.errors = 0
        self.retries = 0
        self.preempted = 0  # requests withdrawn or given up for a stop
        self.adhoc_dropped = 0  # one-off writes dropped because a stop came before they went out
        self.stops = 0  # submit_stop() calls
        self.exceptions = 0  # firmware exceptions caught by run() (should stay 0)
        self.busy_us_max = 0  # longest transaction, request start to outcome
        self.step_us_max = 0  # longest single step() in run(): how long the bus holds the loop
        self.timeout_cost_us_max = 0  # longest transaction that ended in a timeout

    def add(self, drv):
        drv.attach(self)
        self.devices.append(drv)
        return drv

    # ---- stop ------------------------------------------------------------------------------

    def submit_stop(self, now_ms):
        """Top priority: every driver writes its safe values (charger 0 W, export limit 0) and
        reads them back. Latches `hold` until release_stop(). The safety task escalates when
        stop_state is still STOP_PENDING 1 s after stop_req_ms."""
        self.hold = True
        self.stops += 1
        self.stop_req_ms = now_ms
        self.stop_state = STOP_PENDING
        for d in self.devices:
            d.arm_stop(now_ms)
        if self._busy and self.req.level != SAFETY:
            self.link.cut = True  # no retry, no waiting out a silent slave: the stop goes next
        a = self._adhoc
        if a.pending and a.fn != rtu.FC_READ_HOLDING and a.fn != rtu.FC_READ_INPUT and not (
                self._busy and self.req.owner is a):
            a.status = rtu.E_PREEMPTED  # a queued one-off write predates the stop: never sent
            a.pending = False
            self.adhoc_dropped += 1

    def release_stop(self):
        self.hold = False
        self.stop_state = STOP_NONE

    def _check_stop(self, now_ms):
        for d in self.devices:
            if not d.stop_done:
                return
        self.stop_state = STOP_CONFIRMED
        self.stop_confirmed_ms = now_ms

    # ---- the scheduler ---------------------------------------------------------------------

    def _pick(self, now_ms):
        req = self.req
        devs = self.devices
        n = len(devs)
        if self.stop_state == STOP_PENDING:
            # Stop: every device's first safe write (charger 0 W, export limit 0) before any
            # read-back, in the order the devices were added (add the charger first).
            for urgent in (True, False):
                for d in devs:
                    if urgent and not d.stop_urgent():
                        continue
                    req.timeout_ms = 0
                    req.tries = 1
                    if d.next(req, SAFETY, now_ms):
                        req.owner = d
                        req.level = SAFETY
                        return True
        for level in range(1, _LEVELS):
            if level == COMMAND and self._adhoc.next(req, level, now_ms):
                req.owner = self._adhoc
                req.level = level
                req.timeout_ms = 0
                return True
            start = self._rr[level]
            for k in range(n):
                i = start + k
                if i >= n:
                    i -= n
                d = devs[i]
                req.timeout_ms = 0
                req.tries = 1
                if d.next(req, level, now_ms):
                    self._rr[level] = i + 1 if i + 1 < n else 0
                    req.owner = d
                    req.level = level
                    return True
        return False

    def step(self, now_ms, now_us):
        """Advance the bus. Returns how many ms the caller may sleep (0: call again soon)."""
        link = self.link
        req = self.req
        if self._busy:
            if not link.poll(req, now_us):
                ms = link.wait_us // 1000  # floor: under 1 ms left, just yield and look again
                # a stop may come (another task) while we sleep: look again soon to cut
                return ms if ms < _CUT_POLL_MS or req.level == SAFETY else _CUT_POLL_MS
            self._finish(now_ms, now_us)
            if self._busy:
                return 0
        if ticks_diff(now_ms, self._tick_ms) >= 0 or not self._ticked:
            self._ticked = True
            self._tick_ms = ticks_add(now_ms, 10)
            for d in self.devices:
                d.tick(now_ms)
        if not self._pick(now_ms):
            return self.cfg["idle_ms"]
        self._tries = req.tries
        self._busy = True
        self._t0_us = now_us
        link.begin(req, req.timeout_ms or self.timeout_ms)
        link.poll(req, now_us)
        ms = link.wait_us // 1000  # floor: under 1 ms left, just yield and look again
        return ms if ms < _CUT_POLL_MS or req.level == SAFETY else _CUT_POLL_MS

    def _finish(self, now_ms, now_us):
        req = self.req
        st = req.status
        self.transactions += 1
        cost = ticks_diff(now_us, self._t0_us)
        self.busy_us_max = max(self.busy_us_max, cost)
        if st == rtu.E_TIMEOUT and cost > self.timeout_cost_us_max:
            self.timeout_cost_us_max = cost
        if st == rtu.E_PREEMPTED:
            self.preempted += 1
        elif st < 0:
            self.errors += 1
        self._tries -= 1
        req.owner.health.record(st, now_ms)
        retry = (rtu.EXC_BASE < st < 0 and st != rtu.E_PREEMPTED) or \
            st == rtu.EXC_BASE - rtu.DEVICE_BUSY
        # while a stop is pending only its own writes and read-backs are retried: a retry of
        # anything else would delay the stop and could resend a setpoint from before it
        if retry and self._tries > 0 and (req.level == SAFETY or self.stop_state != STOP_PENDING):
            self.retries += 1
            self._t0_us = now_us
            self.link.restart()
            return
        self._busy = False
        req.owner.done(req, now_ms)
        if self.stop_state == STOP_PENDING:
            self._check_stop(now_ms)

    # ---- one-off requests (not for the control loop) ---------------------------------------

    async def transact(self, unit, fn, start, count, values=None):
        """Queue one request at COMMAND level and wait for it; returns the rtu status.
        Read results are in bus.adhoc_regs until the next one-off request."""
        a = self._adhoc
        while a.pending:
            await asyncio.sleep_ms(1)
        a.unit = unit
        a.fn = fn
        a.start = start
        a.count = count
        if values is not None:
            for i in range(len(values)):
                a.values[i] = values[i] & 0xFFFF
        a.tries = 1 + self.cfg["retries"]
        a.pending = True
        while a.pending:
            await asyncio.sleep_ms(1)
        return a.status

    @property
    def adhoc_regs(self):
        return self._adhoc.regs

    def stats(self):
        """The bus counters for the console and telemetry (a new dict: not for the loop)."""
        return {"transactions": self.transactions, "errors": self.errors,
                "retries": self.retries, "stops": self.stops, "stop_state": self.stop_state,
                "exceptions": self.exceptions, "busy_us_max": self.busy_us_max,
                "step_us_max": self.step_us_max}

    # ---- the task --------------------------------------------------------------------------

    async def run(self):
        """The bus task: never blocks the loop longer than one step (no busy waits)."""
        import sys
        import time

        clock = self.clock
        if clock is None:
            clock = self.clock = Clock()
        while True:
            t0 = time.ticks_us()
            try:
                ms = self.step(clock.now_ms(), t0 & TICKS_MAX)
            except Exception as e:  # noqa: BLE001 - the bus must survive a driver bug
                self.exceptions += 1
                if self.exceptions <= 3:
                    sys.print_exception(e)
                self._busy = False
                self.link.abort(time.ticks_us() & TICKS_MAX)
                ms = 10
            # the longest stretch the bus held the event loop (a measurement, no effect)
            self.step_us_max = max(self.step_us_max, time.ticks_diff(time.ticks_us(), t0))
            await asyncio.sleep_ms(ms)
