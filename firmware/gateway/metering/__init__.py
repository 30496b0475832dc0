"""Metering: signed power at the grid connection, voltage and frequency.

Two paths fill the same `gateway.model.Meter` record in place, chosen by the board file's
"analog.path": "adc" (CT clamps + an AC-AC voltage reference on ESP32 ADC1 pins, the math
in `gateway.metering.adc`) or "atm90e32" (the metering IC over SPI,
`gateway.metering.atm90e32`). The async service is `gateway.metering.service.run`.

Meter fields written by every window (see gateway/model.py): t_ms (tick of the window's
end), valid, seq (+1 per window), grid_w (+ import, sum of grid CTs), house_w, v_mv (rms),
f_millihz, rocof_mhz_s, flags (FLAG_* below), ph_w[phase] and ph_ma[phase] (grid CTs).
`valid` is False when any bit of INVALID is set; consumers must also judge t_ms's age.

Flags (bits of Meter.flags):
"""
from micropython import const

from gateway.clock import ticks_diff

FLAG_NO_VOLTAGE = const(1)  # voltage reference below analog.v_min_mv (or the IC's phase loss)
FLAG_CT_OPEN = const(2)  # a grid CT's DC level left its bias window: open circuit
FLAG_CLIPPED = const(4)  # the voltage or a grid CT reached the ADC rails (or IC overcurrent)
FLAG_NO_ZC = const(8)  # no whole half-cycle within the window timeout
FLAG_FREQ_RANGE = const(16)  # frequency outside 40..70 Hz (or the IC's thresholds)
FLAG_HOUSE_FAULT = const(32)  # a house/aux CT open or clipped: house_w unreliable
FLAG_IC_FAULT = const(64)  # metering IC: SPI/config readback or config digest mismatch
FLAG_UNBALANCED = const(128)  # only one half-cycle polarity: DC residuals not measurable

INVALID = const(1 | 2 | 4 | 8 | 16 | 64 | 128)

_SEQ_MASK = const(0x3FFFFFFF)


class Rocof:
    """Rate of change of frequency in mHz/s, averaged with the previous window's value.
    A window without a frequency (0) or more than 2 s after the last resets it to 0."""

    def __init__(self):
        self.value = 0
        self._f = 0
        self._t = 0

    def update(self, f_millihz, now_ms):
        r = 0
        if f_millihz and self._f:
            dt = ticks_diff(now_ms, self._t)
            if 0 < dt < 2000:
                r = (self.value + (f_millihz - self._f) * 1000 // dt) // 2
        self.value = r
        self._f = f_millihz
        self._t = now_ms
        return r


def publish(meter, now_ms, flags, grid_w, house_w, v_mv, f_millihz, rocof):
    """Write one finished window into the shared Meter record (both paths). No allocation."""
    meter.t_ms = now_ms
    meter.seq = (meter.seq + 1) & _SEQ_MASK
    meter.valid = (flags & INVALID) == 0
    meter.grid_w = grid_w
    meter.house_w = house_w
    meter.v_mv = v_mv
    meter.f_millihz = f_millihz
    meter.rocof_mhz_s = rocof
    meter.flags = flags
