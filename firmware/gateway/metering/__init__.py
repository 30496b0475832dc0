"""Metering: signed power at the grid connection, voltage and frequency.

Two paths fill the same `gateway.model.Meter` record in place, chosen by the board file's
"analog.path": "adc" (CT clamps + an AC-AC voltage reference on ESP32 ADC1 pins, the math
in `gateway.metering.adc`) or "atm90e32" (the metering IC over SPI,
`gateway.metering.atm90e32`). The async service is `gateway.metering.service.run`.

Meter fields written by every window (see gateway/model.py): t_ms (tick of the window's
end), valid, seq (+1 per window), grid_w (+ import, sum of grid CTs), house_w, v_mv (rms),
f_mhz, rocof_mhz_s, flags (FLAG_* below), ph_w[phase] and ph_ma[phase] (grid CTs).
`valid` is False when any bit of INVALID is set; consumers must also judge t_ms's age.

Flags (bits of Meter.flags):
"""
from micropython import const

FLAG_NO_VOLTAGE = const(1)  # voltage reference below analog.v_min_mv (or the IC's phase loss)
FLAG_CT_OPEN = const(2)  # a grid CT's DC level left its bias window: open circuit
FLAG_CLIPPED = const(4)  # the voltage or a grid CT reached the ADC rails (or IC overcurrent)
FLAG_NO_ZC = const(8)  # no whole half-cycle within the window timeout
FLAG_FREQ_RANGE = const(16)  # frequency outside 40..70 Hz (or the IC's thresholds)
FLAG_HOUSE_FAULT = const(32)  # a house/aux CT open or clipped: house_w unreliable
FLAG_IC_FAULT = const(64)  # metering IC: SPI/config readback or config digest mismatch
FLAG_UNBALANCED = const(128)  # only one half-cycle polarity: DC residuals not measurable

INVALID = const(1 | 2 | 4 | 8 | 16 | 64 | 128)
