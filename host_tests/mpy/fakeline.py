# An RS-485 line on virtual time for bus tests on both runtimes: a UART (the board port API)
# whose far end is an in-process slave. Bytes take their wire time at the baud rate; the slave
# answers after its turnaround. Allocation-free after set-up, so heap_lock tests can run the
# whole bus through it.
from gateway.clock import TICKS_MAX
from gateway.modbus import rtu


class VClock:
    """Virtual time in microseconds; ms ticks derived from it (both wrap at 2**30)."""

    def __init__(self, start_us=0):
        self.us = start_us

    def now_us(self):
        return self.us & TICKS_MAX

    def now_ms(self):
        return (self.us // 1000) & TICKS_MAX


class FakeUart:
    def __init__(self, clock, slave, baud=9600, parity="E", stop=1, turnaround_us=2000):
        self.baud = baud
        self.parity = parity
        self.stop = stop
        self.clock = clock
        self.slave = slave
        bits = 10 + (0 if parity == "N" else 1) + (stop - 1)
        self.char_us = (bits * 1000000 + baud - 1) // baud
        self.turnaround_us = turnaround_us
        self.req = bytearray(rtu.ADU_MAX)
        self.reply = bytearray(rtu.ADU_MAX + 16)
        self.reply_n = 0
        self.reply_pos = 0
        self.reply_due = 0
        self.tx_end = 0
        self.writes = 0
        self.write_us = [0] * 64  # start times of the last 64 requests (ring)
        self.rx_end_us = [0] * 64  # when the reply before each request finished arriving
        self.last_rx_end = 0

    def write(self, buf):
        now = self.clock.us
        n = len(buf)
        for i in range(n):
            self.req[i] = buf[i]
        k = self.writes & 63
        self.write_us[k] = now
        self.rx_end_us[k] = self.last_rx_end
        self.writes += 1
        self.tx_end = now + n * self.char_us
        m = self.slave.handle(self.req, n, self.reply, now)
        self.reply_n = m
        self.reply_pos = 0
        delay = self.slave.delay_us
        self.reply_due = self.tx_end + self.turnaround_us + m * self.char_us + delay
        return n

    def tx_done(self):
        return self.clock.us >= self.tx_end

    def end_tx(self):
        pass

    def any(self):
        if self.reply_pos < self.reply_n and self.clock.us >= self.reply_due:
            return self.reply_n - self.reply_pos
        return 0

    def readinto(self, buf, n):
        avail = self.any()
        if avail <= 0:
            return 0
        avail = min(avail, n)
        p = self.reply_pos
        for i in range(avail):
            buf[i] = self.reply[p + i]
        self.reply_pos = p + avail
        self.last_rx_end = self.reply_due
        return avail

    def flush_input(self):
        if self.clock.us >= self.reply_due:
            self.reply_pos = self.reply_n


def run(bus, clock, ms):
    """Drive bus.step() for `ms` of virtual time, sleeping what it asks (at least 100 us)."""
    end = clock.us + ms * 1000
    while clock.us < end:
        sleep_ms = bus.step(clock.now_ms(), clock.now_us())
        clock.us += sleep_ms * 1000 if sleep_ms > 0 else 100


class RefChargerSlave:
    """The reference charger map (docs/charger-map.md), in process, with fault switches."""

    def __init__(self, unit=1, clock=None):
        self.unit = unit
        self.clock = clock
        self.ir = [0] * 12
        self.hr = [0] * 4
        self.regs = [0] * rtu.MAX_READ
        self.delay_us = 0
        self.silent = False
        self.garbage = 0  # bytes of noise before the reply
        self.corrupt = False  # flip a bit in the reply (CRC error)
        self.wrong_unit = 0
        self.exception = 0
        self.frozen = False  # the alive counter stops
        self.drop_reply_w = None  # a setpoint write of this value (W) is applied, never answered
        self.stuck_power_w = None  # measured power shown whatever the setpoint (a slow ramp)
        self.sp_log = [0] * 16  # the last setpoint values written (ring, by sp_writes)
        self.writes = 0
        self.hb_writes = 0
        self.sp_writes = 0
        self.last_write_us = 0
        self.power_up()

    def power_up(self):
        self.ir[0] = 1  # plugged, idle
        self.ir[1] = 1 | 8 | 16  # plugged, grid ok, unconfigured
        self.ir[4] = 55
        self.ir[7] = 150
        self.ir[8] = 11000
        self.ir[9] = 10000
        self.ir[10] = 0x4743
        self.ir[11] = 1
        self.hr[0] = 0
        self.hr[1] = 0
        self.hr[2] = 30
        self.hr[3] = 0

    def update(self, now):
        if not self.frozen:
            self.ir[6] = (now // 1000000) & 0xFFFF
        sp = self.hr[0] - 0x10000 if self.hr[0] & 0x8000 else self.hr[0]
        sess = self.hr[1] == 1
        if now - self.last_write_us > self.hr[2] * 1000000 and self.writes:
            sp = 0  # communication watchdog: revert to 0 W, close the session
            sess = False
            self.hr[0] = 0
            self.hr[1] = 0
            self.ir[1] |= 4
        self.ir[3] = sp & 0xFFFF
        self.ir[2] = (sp if sess else 0) & 0xFFFF
        if self.stuck_power_w is not None:
            self.ir[2] = self.stuck_power_w & 0xFFFF
        p = self.ir[2] - 0x10000 if self.ir[2] & 0x8000 else self.ir[2]
        # state (input 0): 1 idle, 2 session at 0 W, 3 charging, 4 discharging
        self.ir[0] = 1 if not sess else (3 if p > 0 else 4 if p < 0 else 2)
        self.ir[1] = (self.ir[1] & ~2) | (2 if sess else 0)

    def handle(self, req, n, out, now):
        if self.silent or req[0] != self.unit or not rtu.crc_ok(req, 0, n):
            return 0
        self.update(now)
        fn = req[1]
        a = (req[2] << 8) | req[3]
        b = (req[4] << 8) | req[5]
        unit = self.wrong_unit or self.unit
        g = self.garbage
        for i in range(g):
            out[i] = 0x5A + i
        if self.exception:
            return g + rtu.build_exception(out if not g else memoryview(out)[g:], unit, fn,
                                           self.exception)
        o = memoryview(out)[g:] if g else out
        if fn == 3 or fn == 4:
            space = self.hr if fn == 3 else self.ir
            if a + b > len(space):
                m = rtu.build_exception(o, unit, fn, rtu.ILLEGAL_ADDRESS)
            else:
                for i in range(b):
                    self.regs[i] = space[a + i]
                m = rtu.build_read_reply(o, unit, fn, self.regs, b)
        elif fn == 6:
            self._store(a, b, now)
            m = rtu.build_write_reply(o, unit, 6, a, b)
            if a == 0 and self.drop_reply_w is not None and b == self.drop_reply_w & 0xFFFF:
                return 0  # applied, but the reply is lost
        elif fn == 16:
            j = 7
            for i in range(b):
                self._store(a + i, (req[j] << 8) | req[j + 1], now)
                j += 2
            m = rtu.build_write_reply(o, unit, 16, a, b)
        else:
            m = rtu.build_exception(o, unit, fn, rtu.ILLEGAL_FUNCTION)
        self.update(now)
        if self.corrupt:
            out[g + 3] ^= 0x40
        return g + m

    def _store(self, reg, v, now):
        if reg >= 4:
            return
        self.hr[reg] = v
        self.writes += 1
        self.last_write_us = now
        self.ir[1] &= ~4
        if reg == 2:
            self.ir[1] &= ~16  # programmed: no longer "unconfigured"
        if reg == 3:
            self.hb_writes += 1
        if reg == 0:
            self.sp_log[self.sp_writes & 15] = v - 0x10000 if v & 0x8000 else v
            self.sp_writes += 1

    def reboot(self):
        self.writes = 0
        self.power_up()
