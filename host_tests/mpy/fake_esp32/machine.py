# A stand-in for the ESP32's machine module (ADC, Pin, SPI) on the MicroPython unix port,
# for tests of gateway.ports.esp32_analog only: a .py earlier on the path replaces the
# built-in module. The ADC returns a 50 Hz mains waveform computed from ticks_us, in uV at
# the pin: voltage on pin 36, a CT at PF 1 on pin 39 and one at PF 0.5 lagging on pin 34.
import math
import time

AMPLITUDE_UV = {36: 800000, 39: 600000, 34: 300000}
PHASE = {36: 0.0, 39: 0.0, 34: -math.pi / 3}
BIAS_UV = 1650000
reads = [0]
_now = [0]


class FakeTime:
    @staticmethod
    def ticks_us():
        _now[0] += 2
        return _now[0] & 0x3FFFFFFF

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

    @staticmethod
    def idle_us(us):
        _now[0] += us


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, n, mode=None, value=None):
        self.n = n

    def __call__(self, v=None):
        return 0


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin.n

    def read_uv(self):
        reads[0] += 1
        _now[0] += 45
        t = _now[0] * 1e-6
        a = AMPLITUDE_UV.get(self.pin, 0)
        return int(BIAS_UV + a * math.sin(2 * math.pi * 50 * t + PHASE.get(self.pin, 0)))

    def read_u16(self):
        return self.read_uv() * 4096 // 3300000 << 4


class SPI:
    def __init__(self, *a, **k):
        self.args = k
