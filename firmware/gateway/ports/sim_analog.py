"""The simulated board's analog front end: sample streams synthesised from plant "truth".

    fe = SimAnalog(truth, analog)       # analog: the board file's "analog" section (raw or
                                        # validated); truth: updated in place by the plant
Same duck-typed interface as the ESP32 front end (gateway.ports.esp32_analog):
    fe.n_channels                       voltage + current channels
    fe.now_us() -> int                  30-bit us tick (the ESP32's ticks_us wrap)
    fe.capture(bufs, n, period_us) -> n captured; then fe.t0_us (tick of the first
        sample), fe.dt_ns (time between sample sets), fe.skew_ns (between channel reads)
    fe.idle_us(us)                      virtual time only: let time pass (lockstep runs)
Truth (gateway.ports.sim.Truth or the Truth below; same attributes): v_mv (rms), f_millihz,
v_present, and per current channel ch_w (signed real power W, + import for grid), ch_var
(reactive, + inductive: the current lags), ch_open (CT open circuit). A change is seen at
the next capture (comparing with a copy: no allocation unless something changed).
Synthesis (gateway.ports.sim_synth): fundamental + 3rd/5th harmonics, channel read skew,
frequency drift, ADC bias error, triangular noise, quantisation, clipping, deterministic
(seeded integer LCG). Configured by the board file's analog.sim section (SIM_SCHEMA).
Harmonics are part of the truth: the total real power of the synthesised waveform equals
ch_w and the total rms voltage equals v_mv.

Time: `virtual=True` keeps its own clock (capture advances it by the chunk length, idle_us
by the given time): deterministic lockstep. Otherwise it follows time.ticks_us and a
capture sleeps for the chunk's duration, holding the interpreter like the ESP32's ADC loop.

A change of the truth during a capture reaches the samples taken after it, as on a real
ADC (otherwise a loss just after a chunk began would be seen one chunk late, latency the
board does not have): live, `fe.poll()` (set by the sim board: reads the plant link without
blocking, True when a line came) is called while the capture waits and the rest of the
chunk is synthesised again from the new truth; in virtual time, `fe.at(t_us, change)`
applies change(truth) at that moment of the simulated clock.
"""
import array
import math

from gateway.metering.config import check, validate
from gateway.ports import sim_synth

SIM_SCHEMA = {
    "seed": (12345, 1, 0x7FFFFFFF),
    "noise_uv": (1500, 0, 200000),  # triangular noise amplitude (+/-), uV at the pin
    "lsb_uv": (760, 1, 10000),  # ADC step (12 bits over ~3.1 V)
    "adc_min_uv": (0, 0, 3300000),
    "adc_max_uv": (3100000, 0, 3300000),
    "v_offset_uv": (0, -500000, 500000),  # DC error of the voltage input vs its bias
    "i_offset_uv": (0, -500000, 500000),  # DC error of each CT input (alternating sign)
    "skew_us": (40, 0, 500),  # delay between successive channel reads
    "i_delay_us": (0, -1000, 1000),  # CT phase error as a delay of the current (+ lags)
    "v_h3_pct": (1, 0, 30),
    "v_h5_pct": (2, 0, 30),
    "i_h3_pct": (0, 0, 60),
    "i_h5_pct": (0, 0, 60),
    "i_h3_deg": (0, -180, 180),  # current harmonic lag behind the voltage harmonic
    "i_h5_deg": (0, -180, 180),
    "drift_mhz": (0, 0, 1000),  # frequency wander amplitude around truth.f_millihz
    "drift_s": (60, 1, 3600),  # its period
    "open_uv": (3100000, 0, 3300000),  # level an open CT input is pulled to
}

_MASK30 = 0x3FFFFFFF
_Q44 = 1 << 44


class Truth:
    """What the plant says the analog inputs see (updated in place by the sim board)."""

    def __init__(self, n_ct=2):
        self.v_mv = 230000
        self.f_millihz = 50000
        self.v_present = True
        self.t_ms = 0  # board tick of the last update from the plant
        self.ch_w = [0] * n_ct
        self.ch_var = [0] * n_ct
        self.ch_open = [False] * n_ct


class SimAnalog:
    def __init__(self, truth, analog, virtual=False, kernel="auto", start_us=0):
        cfg = analog if analog.get("_valid") else validate(analog)
        self.cfg = cfg
        self.sim = check(cfg.get("sim"), SIM_SCHEMA, "analog.sim")
        self.nc = len(cfg["channels"])
        self.n_channels = self.nc + 1
        self._synth = sim_synth.select(kernel)
        self._virtual = virtual
        self._t_ns = start_us * 1000
        self._raw = 0
        if not virtual:
            import time

            self._time = time
            self._raw = time.ticks_us()
        self._st = array.array("i", [self.sim["seed"]])
        self._par = [[0] * sim_synth.NPAR for _ in range(self.n_channels)]
        self._ph = 0  # fundamental phase, Q44 cycles, at time _ph_t
        self._ph_t = self._t_ns
        self._f_mhz = 50000
        self.t0_us = 0
        self.dt_ns = 0
        self.skew_ns = self.sim["skew_us"] * 1000
        self.truth = truth if truth is not None else Truth(self.nc)
        self._seen = Truth(self.nc)
        self.poll = None  # live: callable() -> True when the plant sent something
        self._at = None  # virtual: (t_ns, change) scheduled by at()
        self._inc = 0
        self.update(self.truth)

    # -- time ---------------------------------------------------------------------
    def _now_ns(self):
        if not self._virtual:
            raw = self._time.ticks_us()
            self._t_ns += self._time.ticks_diff(raw, self._raw) * 1000
            self._raw = raw
        return self._t_ns

    def now_us(self):
        return (self._now_ns() // 1000) & _MASK30

    def idle_us(self, us):
        if self._virtual:
            self._t_ns += us * 1000

    def f_now_mhz(self, t_ns=None):
        """The synthesised frequency (truth + drift) at t_ns (default: now)."""
        s = self.sim
        f = self.truth.f_millihz
        if s["drift_mhz"]:
            per = s["drift_s"] * 1000000000
            t = self._now_ns() if t_ns is None else t_ns
            x = ((t % per) << 20) // per  # Q20 of the drift period
            i = x >> 10
            tab = sim_synth.TAB
            f += (s["drift_mhz"] * (tab[i] + (((tab[i + 1] - tab[i]) * (x & 1023)) >> 10))) >> 15
        return f

    # -- plant ----------------------------------------------------------------------
    def _changed(self):
        t, o = self.truth, self._seen
        if t.v_mv != o.v_mv or t.f_millihz != o.f_millihz or t.v_present != o.v_present:
            return True
        for c in range(self.nc):
            if (t.ch_w[c] != o.ch_w[c] or t.ch_var[c] != o.ch_var[c]
                    or t.ch_open[c] != o.ch_open[c]):
                return True
        return False

    def update(self, truth):
        """Take new truth values (allocates: runs only when the plant changed them)."""
        self.truth = truth
        o = self._seen
        o.v_mv, o.f_millihz, o.v_present = truth.v_mv, truth.f_millihz, truth.v_present
        for c in range(self.nc):
            o.ch_w[c] = truth.ch_w[c]
            o.ch_var[c] = truth.ch_var[c]
            o.ch_open[c] = truth.ch_open[c]
        s = self.sim
        cfg = self.cfg
        lo = s["adc_min_uv"] // s["lsb_uv"]
        hi = s["adc_max_uv"] // s["lsb_uv"]
        h3v, h5v = s["v_h3_pct"] / 100, s["v_h5_pct"] / 100
        v_tot = truth.v_mv / 1000  # V rms
        v1 = v_tot / math.sqrt(1 + h3v * h3v + h5v * h5v)
        adc_per_v = 1000 / cfg["v_mv_per_v"]  # ADC V per mains V
        r2 = math.sqrt(2)
        q32 = 1 << 32
        p = self._par[0]
        p[0] = cfg["v_bias_uv"] + s["v_offset_uv"]
        amp = v1 * adc_per_v * 1e6 * r2 if truth.v_present else 0
        p[1:7] = [int(amp), int(amp * h3v), int(amp * h5v), 0, 0, 0]
        p[7:11] = [s["noise_uv"], s["lsb_uv"], lo, hi]
        v_calc = v1 if v1 > 0 else 230.0
        r3, r5 = s["i_h3_pct"] / 100, s["i_h5_pct"] / 100
        th3, th5 = math.radians(s["i_h3_deg"]), math.radians(s["i_h5_deg"])
        hh = v_calc * (h3v * r3 * math.cos(th3) + h5v * r5 * math.cos(th5))
        for c in range(self.nc):
            ch = cfg["channels"][c]
            sign = -1 if ch["invert"] else 1
            pw, qv = truth.ch_w[c] * sign, truth.ch_var[c] * sign
            y = qv / v_calc
            x = pw / v_calc
            for _ in range(8):  # P = V1 x + H |I1|: fixed point iteration
                x = (pw - hh * math.sqrt(x * x + y * y)) / v_calc
            i1 = math.sqrt(x * x + y * y)  # A rms
            phi = math.atan2(y, x)  # current lags the voltage by phi
            amp = i1 * r2 * 1e9 / ch["ma_per_v"]  # uV peak at the pin
            p = self._par[c + 1]
            off = s["i_offset_uv"] if c % 2 == 0 else -s["i_offset_uv"]
            p[0] = ch["bias_uv"] + off
            f1 = int((-phi / (2 * math.pi)) % 1.0 * q32) % q32
            # Harmonic currents lag their voltage harmonic by th3 / th5 (that is what `hh`
            # assumes), whatever the fundamental's angle.
            f3 = int((-th3 / (2 * math.pi)) % 1.0 * q32) % q32
            f5 = int((-th5 / (2 * math.pi)) % 1.0 * q32) % q32
            p[1:7] = [int(amp), int(amp * r3), int(amp * r5), f1, f3, f5]
            p[7:11] = [s["noise_uv"], s["lsb_uv"], lo, hi]
            if truth.ch_open[c]:
                p[0] = s["open_uv"]
                p[1] = p[2] = p[3] = 0

    def at(self, t_us, change):
        """Virtual time: call change(truth) at t_us (the simulated clock's us)."""
        self._at = (t_us * 1000, change)

    # -- capture --------------------------------------------------------------------
    def _resynth(self, bufs, k, n, t, dt):
        """Samples k..n-1 of the chunk that began at t ns, again from the present truth."""
        if k >= n:
            return
        self.update(self.truth)
        inc = self._inc
        for c in range(self.n_channels):
            d = k * dt + c * self.skew_ns - (self.sim["i_delay_us"] * 1000 if c else 0)
            th0 = (self._ph + inc * d) & (_Q44 - 1)
            self._synth(memoryview(bufs[c])[k:n], n - k, th0, inc * dt, self._par[c],
                        sim_synth.TAB, self._st)

    def capture(self, bufs, n, period_us):
        at = self._at
        if at is not None and at[0] <= self._now_ns():
            self._at = None
            at[1](self.truth)
        if self._changed():
            self.update(self.truth)
        t = self._now_ns()
        f = self.f_now_mhz(t)
        inc = (f << 44) // 1000000000000  # Q44 cycles per ns
        d = t - self._ph_t
        ph = self._ph
        while d > 1000000000:
            ph = (ph + inc * 1000000000) & (_Q44 - 1)
            d -= 1000000000
        ph = (ph + inc * d) & (_Q44 - 1)
        self._ph = ph
        self._ph_t = t
        self._inc = inc
        dt = period_us * 1000
        dth = inc * dt
        for c in range(self.n_channels):
            d = c * self.skew_ns - (self.sim["i_delay_us"] * 1000 if c else 0)
            th0 = (ph + inc * d) & (_Q44 - 1)
            self._synth(bufs[c], n, th0, dth, self._par[c], sim_synth.TAB, self._st)
        self.t0_us = (t // 1000) & _MASK30
        self.dt_ns = dt
        end = t + n * dt
        if self._virtual:
            at = self._at
            if at is not None and at[0] < end:
                self._at = None
                at[1](self.truth)
                if self._changed():
                    self._resynth(bufs, (at[0] - t + dt - 1) // dt, n, t, dt)
            self._t_ns = end
        else:
            poll = self.poll
            while True:
                now = self._now_ns()
                if now >= end:
                    break
                if poll is not None and poll() and self._changed():
                    self._resynth(bufs, (now - t) // dt + 1, n, t, dt)
                self._time.sleep_us(50)
        return n


def frontend(truth, analog, virtual=False):
    """What service.run() takes on the simulated board: SimAnalog, or for path "atm90e32"
    the real driver on a simulated IC (gateway.ports.sim_atm90e32) fed by the same truth."""
    cfg = analog if analog.get("_valid") else validate(analog)
    if cfg["path"] != "atm90e32":
        return SimAnalog(truth, cfg, virtual=virtual)
    from gateway.metering.atm90e32 import Atm90e32
    from gateway.ports.sim_atm90e32 import SimAtm90e32

    peer = SimAtm90e32(truth)
    return Atm90e32(peer.spi, peer.cs, cfg)
