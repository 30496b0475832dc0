"""ESP32 analog front end for the metering core: ADC1 pins read with machine.ADC.

    fe = Esp32Analog(analog)        # the board file's "analog" section (raw or validated)
    fe.n_channels, fe.now_us(), fe.capture(bufs, n, period_us) -> n; fe.t0_us, fe.dt_ns,
    fe.skew_ns                      # the same interface as gateway.ports.sim_analog
    ic = atm90e32(analog)           # path "atm90e32": the driver on machine.SPI (mode 3)

capture() reads n sample sets: the voltage first, then each CT, in that order every set,
paced to period_us by polling ticks_us (free-running when the reads are slower). It is
plain Python on purpose: MicroPython runs pending soft IRQs (the transfer-switch contact)
between bytecodes, so the contact's handler is not delayed by a capture; only asyncio
tasks wait for the chunk to end (about a half-cycle + 2 * lead_us; the service sleeps in
between). Samples are 0.1 mV at the pin: read_uv() // 100 ("mode": "uv", the ESP-IDF
calibration corrects the ADC's non-linearity) or the 12-bit code ("mode": "raw", corrected
by the board's "lin" table in the core). Coherence: t0_us is taken just before the first
read, dt_ns from the time the last set started, skew_ns from the duration of one set
divided by the number of channels (reads of equal length). ADC2 pins are unusable with
Wi-Fi on: only ADC1 pins (32..39) belong in the board file.
"""
import time

from machine import ADC, SPI, Pin

from gateway.metering.config import check, validate

_MASK30 = 0x3FFFFFFF


def _cfg(analog):
    return analog if analog.get("_valid") else validate(analog)


class Esp32Analog:
    def __init__(self, analog):
        cfg = _cfg(analog)
        self.cfg = cfg
        pins = [cfg["v_pin"]] + [c["pin"] for c in cfg["channels"]]
        for p in pins:
            if not 32 <= p <= 39:
                raise ValueError("analog: pin %d is not an ADC1 pin (32..39)" % p)
        self._adc = [ADC(Pin(p), atten=ADC.ATTN_11DB) for p in pins]
        raw = cfg["mode"] == "raw"
        self._rd = [(a.read_u16 if raw else a.read_uv) for a in self._adc]
        self._shift = 4 if raw else 0  # read_u16 >> 4: the 12-bit code
        self._div = 1 if raw else 100  # read_uv // 100: 0.1 mV
        self.n_channels = len(pins)
        self.t0_us = 0
        self.dt_ns = 0
        self.skew_ns = 0

    def now_us(self):
        return time.ticks_us() & _MASK30

    def capture(self, bufs, n, period_us):
        rd = self._rd
        nch = self.n_channels
        sh = self._shift
        dv = self._div
        tus = time.ticks_us
        tdiff = time.ticks_diff
        t0 = tus()
        t_next = t0
        last = t0
        set_us = 0
        for i in range(n):
            while tdiff(tus(), t_next) < 0:
                pass
            last = tus()
            for c in range(nch):
                bufs[c][i] = (rd[c]() >> sh) // dv
            if i == 0:
                set_us = tdiff(tus(), last)
            t_next += period_us
        self.t0_us = t0 & _MASK30
        self.dt_ns = tdiff(last, t0) * 1000 // (n - 1) if n > 1 else period_us * 1000
        self.skew_ns = set_us * 1000 // nch
        return n


def atm90e32(analog):
    """The ATM90E32 driver on this board's SPI bus (analog.atm90e32: spi, sck, mosi, miso,
    cs, baud)."""
    from gateway.metering.atm90e32 import SCHEMA, Atm90e32

    cfg = _cfg(analog)
    a = check(cfg.get("atm90e32"), SCHEMA, "analog.atm90e32")
    spi = SPI(a["spi"], baudrate=a["baud"], polarity=1, phase=1, sck=Pin(a["sck"]),
              mosi=Pin(a["mosi"]), miso=Pin(a["miso"]))
    cs = Pin(a["cs"], Pin.OUT, value=1)
    return Atm90e32(spi, cs, cfg)


def frontend(analog):
    """What service.run() takes for this board: the ADC front end or the ATM90E32 driver."""
    cfg = _cfg(analog)
    return atm90e32(cfg) if cfg["path"] == "atm90e32" else Esp32Analog(cfg)
