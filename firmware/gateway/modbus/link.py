# One Modbus RTU transaction at a time on a serial line, as a non-blocking state machine.
#
# Serial-line timings (MODBUS over Serial Line V1.02, 2.5.1.1): frames are separated by at
# least 3.5 character times of silence (t3.5); above 19200 baud fixed values are used
# (t3.5 = 1750 us). A character is start + 8 data + parity + stop bits (11 bits for the
# default 8E1). The UART (a board port object, duck-typed) has no timing of its own on the
# host, so the times come from the baud rate here.
#
# poll() never waits: it does what the line allows now and leaves in `wait_us` how long the
# caller may sleep before the next poll. Time is a 30-bit microsecond tick (clock.ticks_diff).
#
# Pre-emption (`cut`, set by the bus when a stop is submitted): a request not yet on the wire is
# withdrawn; one being transmitted finishes (RS-485 is half duplex: the frame cannot be taken
# back); a reply that has started is received to its end (sending over it would collide); a
# reply that has not started `preempt_us` after the request left the wire is given up at once
# instead of waiting out the response timeout. The outcome is rtu.E_PREEMPTED.
# Nothing here allocates after warm-up (one memoryview per distinct request length, cached).
from micropython import const

from gateway.clock import ticks_add, ticks_diff
from gateway.modbus import rtu

_IDLE = const(0)
_GAP = const(1)  # waiting for t3.5 of silence before transmitting
_TX = const(2)  # request on the wire, waiting for the UART to finish
_RX = const(3)  # waiting for the reply
_CHUNK = const(64)
_POLL_US = const(1000)  # how often to look at the UART while a reply is due


class Link:
    def __init__(self, uart, char_timeout_ms=0, preempt_ms=50):
        self.uart = uart
        self.preempt_us = preempt_ms * 1000
        self.cut = False  # a stop wants the line: withdraw / give up the transaction in flight
        baud = uart.baud
        bits = 10 + (0 if uart.parity == "N" else 1) + (uart.stop - 1)
        self.char_us = (bits * 1000000 + baud - 1) // baud
        self.t35_us = 1750 if baud > 19200 else (7 * self.char_us + 1) // 2
        # Inter-character timeout: a frame that stops growing for this long is over. The spec's
        # t1.5 cannot be seen through a UART FIFO (the ESP32 delivers bytes after ~10 idle
        # characters), so the default is 12 characters, at least 2 x t3.5.
        ct = char_timeout_ms * 1000
        if ct <= 0:
            ct = max(12 * self.char_us, 2 * self.t35_us)
        self.char_timeout_us = ct
        self.tx = bytearray(rtu.ADU_MAX)
        self.rx = bytearray(rtu.ADU_MAX)
        self._chunk = bytearray(_CHUNK)
        self._views = {}  # frame length -> memoryview(tx)[:length], made once per length
        self._view = None
        self.txn = 0
        self.rxn = 0
        self.state = _IDLE
        self.line_us = 0  # last time the line was seen busy (our tx end or a received byte)
        self.wait_us = 0
        self._deadline_us = 0
        self._expect_us = 0
        self._txe_us = 0
        self._rx0_us = 0  # when the request left the wire
        self._timeout_us = 0
        # counters
        self.resyncs = 0  # replies found after leading garbage
        self.discarded = 0  # bytes dropped: unsolicited, during our transmission, overflow
        self.frames = 0  # requests put on the wire (retries included)

    def frame_us(self, nbytes):
        return nbytes * self.char_us

    def begin(self, req, timeout_ms):
        """Build the request frame for req and start the transaction."""
        fn = req.fn
        if fn == rtu.FC_READ_HOLDING or fn == rtu.FC_READ_INPUT:
            n = rtu.build_read(self.tx, req.unit, fn, req.start, req.count)
        elif fn == rtu.FC_WRITE_SINGLE:
            n = rtu.build_write_single(self.tx, req.unit, req.start, req.values[0])
        else:
            n = rtu.build_write_multiple(self.tx, req.unit, req.start, req.values, req.count)
        v = self._views.get(n)
        if v is None:
            v = memoryview(self.tx)[:n]
            self._views[n] = v
        self._view = v
        self.txn = n
        self._timeout_us = timeout_ms * 1000
        self.state = _GAP
        self.wait_us = 0
        self.cut = False

    def restart(self):
        """Send the same frame again (a retry)."""
        self.state = _GAP
        self.wait_us = 0

    def busy(self):
        return self.state != _IDLE

    def _drain(self, now_us, keep):
        """Read what the UART holds; keep it in rx (keep=True) or drop it. Returns bytes read."""
        u = self.uart
        c = self._chunk
        rx = self.rx
        got = 0
        while True:
            n = u.readinto(c, _CHUNK)
            if not n:
                break
            got += n
            if keep:
                j = self.rxn
                room = rtu.ADU_MAX - j
                if n > room:
                    self.discarded += n - room
                    n = room
                for i in range(n):
                    rx[j + i] = c[i]
                self.rxn = j + n
            else:
                self.discarded += n
        if got:
            self.line_us = now_us
        return got

    def poll(self, req, now_us):
        """Advance the transaction; True when req.status holds its outcome."""
        st = self.state
        if st == _GAP:
            if self.cut:  # not on the wire yet: withdrawn
                req.status = rtu.E_PREEMPTED
                return self._done()
            self._drain(now_us, False)
            quiet = ticks_diff(now_us, self.line_us)
            # line_us is always in the past; a "future" one is a stale tick from more than
            # 2**29 us (~9 min) ago, e.g. the initial 0: the line has long been quiet.
            if 0 <= quiet < self.t35_us:
                self.wait_us = self.t35_us - quiet
                return False
            self.uart.write(self._view)
            self.frames = (self.frames + 1) & 0x3FFFFFFF  # small int: wraps like ticks
            self.state = _TX
            self._txe_us = ticks_add(now_us, self.txn * self.char_us)  # when it leaves the wire
            self.wait_us = self.txn * self.char_us
            return False
        if st == _TX:
            self._drain(now_us, False)  # nothing that arrives while we talk is a reply
            if not self.uart.tx_done():
                left = ticks_diff(self._txe_us, now_us)
                self.wait_us = left if 0 < left < _POLL_US else _POLL_US
                return False
            self.uart.end_tx()
            self.line_us = now_us
            self._rx0_us = now_us
            self.rxn = 0
            self._deadline_us = ticks_add(now_us, self._timeout_us)
            self._expect_us = ticks_add(now_us, rtu.reply_len(req.fn, req.count) * self.char_us)
            self.state = _RX
            st = _RX
        if st == _RX:
            self._drain(now_us, True)
            n = self.rxn
            if n:
                off = rtu.find_reply(self.rx, n, req.unit, req.fn, req.count)
                if off >= 0:
                    if off:
                        self.resyncs += 1
                    req.status = rtu.check_reply(
                        self.rx, off, req.unit, req.fn, req.start, req.count, req.values[0],
                        req.regs)
                    return self._done()
                quiet = ticks_diff(now_us, self.line_us)
                if quiet >= self.char_timeout_us or quiet < 0 or n >= rtu.ADU_MAX:
                    req.status = rtu.classify(self.rx, n, req.unit, req.fn, req.count)
                    return self._done()
                self.wait_us = min(self.char_timeout_us - quiet, _POLL_US)
                return False
            left = ticks_diff(self._deadline_us, now_us)
            if left <= 0:
                req.status = rtu.E_TIMEOUT
                return self._done()
            if self.cut:  # no reply has started: give it preempt_us from the end of the request
                cut = self.preempt_us - ticks_diff(now_us, self._rx0_us)
                if cut <= 0:
                    req.status = rtu.E_PREEMPTED
                    return self._done()
                left = min(left, cut)
            early = ticks_diff(self._expect_us, now_us)
            self.wait_us = min(left, max(_POLL_US, early))
            return False
        return True

    def _done(self):
        self.state = _IDLE
        self.wait_us = 0
        self.cut = False
        return True

    def abort(self, now_us):
        """Forget the transaction (after an error in the caller); the line gets a fresh gap."""
        self.state = _IDLE
        self.line_us = now_us
