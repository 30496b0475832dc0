# The link must send at any point of the 30-bit microsecond tick, including the
# first request after boot when "the line was last busy" is still the initial 0.
# (Found live: when the unix port's masked ticks_us was past 2**29 the bus never sent.)
import unittest

from gateway.clock import TICKS_MAX
from gateway.modbus import rtu
from gateway.modbus.bus import Request
from gateway.modbus.link import Link


class _Uart:
    baud = 9600
    parity = "E"
    stop = 1

    def __init__(self):
        self.sent = []

    def write(self, buf):
        self.sent.append(bytes(buf))
        return len(buf)

    def tx_done(self):
        return True

    def end_tx(self):
        pass

    def any(self):
        return 0

    def readinto(self, buf, n):
        return 0

    def flush_input(self):
        pass


class FirstFrameAnyTime(unittest.TestCase):
    def _first_send(self, now_us):
        u = _Uart()
        link = Link(u, 0)
        req = Request()
        req.read(1, rtu.FC_READ_INPUT, 0, 6, 0)
        link.begin(req, 200)
        link.poll(req, now_us)
        if not u.sent:  # it may first wait out one t3.5 gap (4 ms at 9600 baud), no more
            link.poll(req, (now_us + link.t35_us) & TICKS_MAX)
        return u.sent

    def test_sends_at_start_of_tick_range(self):
        self.assertEqual(len(self._first_send(10)), 1)

    def test_sends_past_half_the_tick_range(self):
        self.assertEqual(len(self._first_send(0x20000000 + 12345)), 1)

    def test_sends_just_before_the_wrap(self):
        self.assertEqual(len(self._first_send(TICKS_MAX - 3)), 1)
