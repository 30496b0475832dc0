"""Signed power from CT clamps and a voltage reference, in fixed point (pure core).

Method (docs/metering.md has the derivation and the measured accuracy):
- The front end captures CHUNKS: contiguous runs of sample sets (voltage first, then each
  CT), each covering about one half-cycle, with a yield to asyncio between chunks (the
  ESP32 must not hold the interpreter much longer than ~10 ms). Samples inside a chunk are
  coherent (one clock, measured interval dt); between chunks the gap is unknown and unused.
- In each chunk the voltage's zero crossings are found (hysteresis, interpolated to 1/256
  sample). The span between two consecutive crossings is exactly one half-cycle, so the
  means of v*v, i*i and v*i over it are exact for odd harmonics whatever the gap was; the
  two end samples get fractional weights. The power integrand v*i is zero at the voltage
  crossings, so the power is insensitive to the end weights.
- A window (analog.cycles mains cycles of elapsed time, 200 ms at 50 Hz) averages its
  positive and negative half-cycles separately and then takes their mean: DC residuals and
  even harmonics cancel. Offsets are removed twice: a tracked offset per channel inside the
  loop (updated each window, starts at the calibrated bias) and the window's balanced
  residual mean in the covariance (cov = E[xy] - E[x]E[y]).
- The sequential ADC reads are undone per channel by interpolating the voltage by
  (position * skew + phase_us) / dt samples (Q8), plus the installer's phase calibration.
- Frequency: time between the window's first crossing and its last crossing of the same
  direction over a whole number of periods (chunk timestamps + dt); RoCoF from successive
  windows. Planning: the next capture starts lead_us before the next predicted crossing of
  the polarity the window lacks.

API (all integer, zero allocation after __init__):
    m = AdcMeter(cfg)                  # cfg = config.validate(board["analog"])
    m.begin(now_us)                    # start a window (now_us: front end's 30-bit us tick)
    while not m.done(now_us):
        wait_us = m.plan(now_us)       # >= 1000: sleep wait_us // 1000 ms and plan again
        n = frontend.capture(m.bufs, m.n_plan, m.period_us)
        m.feed(n, frontend.t0_us, frontend.dt_ns, frontend.skew_ns)
    m.finish(meter, now_ms)            # fills gateway.model.Meter; per channel: m.ch_w,
                                       # m.ch_ma, m.ch_va, m.ch_pf_pm, m.ch_flags
Units: samples are 0.1 mV at the ADC pin (array 'H', 0..32767); means in units**2.
"""
import array

from micropython import const

from gateway.clock import ticks_add, ticks_diff
from gateway.metering import Rocof
from gateway.metering import fixed as fx
from gateway.metering._finish import finish as _finish
from gateway.metering.config import ConfigError
from gateway.metering.kernel import select

_UNIT_UV = const(100)  # one sample unit: 0.1 mV at the ADC pin
_MAX_ZC = const(8)  # crossings kept per chunk
_LIM = const(0x1FFFFFFF)  # cap of a per-half mean (units**2)
_Q = const(3)  # quantities per channel: mean y (Q4), mean y*y, mean x*y


class AdcMeter:
    def __init__(self, cfg):
        self.cfg = cfg
        chans = cfg["channels"]
        nc = len(chans)
        self.nc = nc
        self.n_buf = cfg["buf_n"]
        self.period_us = cfg["period_us"]
        self.bufs = [array.array("H", bytes(2 * self.n_buf)) for _ in range(nc + 1)]
        self._acc, self._zc, self._rng, self._lin = select(cfg["kernel"])
        self._tab = array.array("H", cfg["lin"]) if cfg["lin"] else None
        self._o = array.array("i", [0, 0, 0])
        self._o1 = array.array("i", [0, 0, 0])
        self._ctl = array.array("i", [0, 0, 0])
        self._zo = array.array("i", [0, 0])
        self._amax = array.array("i", [0] * (nc + 1))
        self._zpos = array.array("i", [0] * _MAX_ZC)
        self._ztyp = array.array("i", [0] * _MAX_ZC)
        vg = cfg["v_mv_per_v"] * 1e-4  # mains mV per sample unit
        self._gv = fx.gain(vg / 16)  # mV per 1/16 unit
        self._gi = [fx.gain(c["ma_per_v"] * 1e-4 / 16) for c in chans]
        self._gp = [fx.gain(vg * c["ma_per_v"] * 1e-10) for c in chans]  # W per unit**2
        self._gs = [fx.gain(vg * c["ma_per_v"] * 1e-10 / 256) for c in chans]
        self._sign = [-1 if c["invert"] else 1 for c in chans]
        self._role = [c["role"] for c in chans]
        self._phase = [c["phase"] for c in chans]
        self._ph_ns = [c["phase_us"] * 1000 for c in chans]
        self._vmin2 = min(_LIM, int((cfg["v_min_mv"] / vg) ** 2))
        # Peak probe threshold (units): 3/4 of v_min as an instantaneous value. Within
        # +-45 degrees of a peak a sine of v_min rms reads >= v_min; a lost reference ~0.
        self._vpk = int(cfg["v_min_mv"] * 3 / 4 / vg)
        self._vtail2 = self._vmin2 * 3 // 10
        self._hyst = int(cfg["zc_hyst_mv"] / vg)
        self._clo = cfg["clip_lo_uv"] // _UNIT_UV
        self._chi = cfg["clip_hi_uv"] // _UNIT_UV
        bias = [cfg["v_bias_uv"]] + [c["bias_uv"] for c in chans]
        self._bias_q4 = array.array("i", [b * 16 // _UNIT_UV for b in bias])
        self._tol_q4 = cfg["open_tol_uv"] * 16 // _UNIT_UV
        self.off_q4 = array.array("i", self._bias_q4)  # tracked DC offsets (Q4 units)
        self._off = array.array("i", [b >> 4 for b in self._bias_q4])
        # Block-floating accumulators [polarity][channel][quantity]: mantissa, exponent.
        self._am = array.array("i", [0] * (2 * (nc + 1) * _Q))
        self._ae = array.array("i", [0] * (2 * (nc + 1) * _Q))
        self.nh = array.array("i", [0, 0])  # half-cycles per polarity (0: positive)
        h_ns = 500000000 // cfg["nominal_hz"]
        self.h_ns = h_ns  # half-period estimate
        self.dt_ns = self.period_us * 1000
        self._lead_ns = cfg["lead_us"] * 1000
        self._hold_ns = cfg["max_hold_ms"] * 1000000
        if self.n_buf * self.period_us * 1000 < h_ns + 2 * self._lead_ns:
            raise ConfigError("analog.buf_n: %d samples of %d us do not hold a half-cycle"
                              % (self.n_buf, self.period_us))
        if h_ns + 2 * self._lead_ns > self._hold_ns:
            raise ConfigError("analog.max_hold_ms: shorter than a half-cycle + 2 * lead_us")
        self.locked = False
        self._wake_set = False
        self._wake_us = 0
        self._late_us = 0  # learned lateness of asyncio wake-ups
        self._asym = 0  # positive half-cycle minus the mean half-cycle, ns
        self.ref_us = 0
        self.ref_typ = 0
        self._miss = 0
        self.n_dropped = 0  # windows dropped unpublished (starved capture), for diagnostics
        self.n_plan = 0
        # Peak probes: a short capture at the peak of each half-cycle the chunks skip, so
        # the voltage is looked at every half-cycle (docs/metering.md, "Voltage loss").
        self.probing = False  # the planned capture is a probe (fed without a yield)
        self._pdone = -1  # index of the last half after the reference probed or passed
        self._pk_ns = 0  # the probed peak, ns after the reference
        self._pn = max(4, 1000000 // (self.period_us * 1000))  # probe: 1 ms of samples
        self._pcap = min(self.n_buf, (h_ns >> 1) // (self.period_us * 1000) + 1)
        self.n_probes = 0  # conclusive probes (diagnostics)
        self.f_millihz = 0
        self.rocof = Rocof()  # rate of change of frequency across windows
        n = nc
        self.ch_w = [0] * n
        self.ch_ma = [0] * n
        self.ch_va = [0] * n
        self.ch_pf_pm = [0] * n
        self.ch_flags = [0] * n
        self.v_mv = 0
        self.begin(0)

    # -- window ------------------------------------------------------------------
    def begin(self, now_us):
        self.t0_us = now_us
        am, ae = self._am, self._ae
        for i in range(len(am)):
            am[i] = 0
            ae[i] = 0
        self.nh[0] = 0
        self.nh[1] = 0
        self._clip = 0  # bit per channel (0: voltage)
        self._novolt = 0  # chunks whose voltage was below v_min
        self._flat = 0  # chunks of a half-cycle or more with voltage but no crossing
        self._chunks = 0
        self._c0 = -1  # first crossing (ns after t0_us) and its type
        self._c0t = 0
        self._c1 = -1  # last crossing of the same type
        self._hs = 0  # sum of half-cycle durations, ns
        self._hn = 0

    def lost(self):
        """A capture of this window saw no voltage: the window is over (and invalid)."""
        return self._novolt > 0

    def done(self, now_us):
        # A chunk or probe without voltage closes the window at once: the loss of the
        # reference is published right after the capture that saw it, not at the end of
        # the window (docs/safety.md, voltage-only loss).
        if self._novolt > 0:
            return True
        el = ticks_diff(now_us, self.t0_us)
        if el >= self.cfg["timeout_ms"] * 1000:
            return True
        if el * 1000 < self.cfg["cycles"] * 2 * self.h_ns:
            return False
        return self.nh[0] > 0 and self.nh[1] > 0

    def plan(self, now_us):
        """us to sleep before planning again (a multiple of 1000), or 0: capture
        self.n_plan samples now. Sleeps end early by the learned wake-up lateness (other
        asyncio tasks delay a wake-up); what is left before the crossing is captured."""
        if self._wake_set:
            self._wake_set = False
            late = ticks_diff(now_us, self._wake_us)
            if 0 <= late < 20000:
                est = self._late_us
                self._late_us = late if late > est else (est * 7 + late) >> 3
        dt = self.dt_ns
        if self.locked:
            h = self.h_ns
            e = ticks_diff(now_us, self.ref_us)
            if 0 <= e < 400000:
                e *= 1000
                lead = self._lead_ns
                a = self._asym
                # Crossing j after the reference: whole periods plus, for odd j, the half
                # that follows the reference. Halves are unequal while a DC residual or even
                # harmonics shift the crossings: positive lasts h + a, negative h - a.
                p0 = 0 if self.ref_typ == 1 else 1  # polarity of the half after ref
                h0 = h + a if p0 == 0 else h - a
                d = self.nh[0] - self.nh[1]
                want = -1
                if d > 1 or d < -1:  # the polarity the window lacks (a lead of 1 is free:
                    want = 1 if d > 1 else 0  # every other half-cycle has the same one)
                j = max((e + lead) // h - 1, 1)
                while True:
                    t = (j >> 1) * 2 * h + (h0 if j & 1 else 0)
                    pj = p0 if j & 1 == 0 else 1 - p0
                    if t > e + lead and (want < 0 or pj == want):
                        break
                    j += 1
                wait = t - lead - e
                early = self._late_us * 1000 + 300000
                self.probing = False
                # Probe the peak of every half-cycle before crossing j (the halves no
                # chunk covers); a peak whose +-45 degrees are already past is skipped.
                i = self._pdone + 1
                tp = 0
                while i < j:
                    hi = h + a if (p0 if i & 1 == 0 else 1 - p0) == 0 else h - a
                    tp = (i >> 1) * 2 * h + (h0 if i & 1 else 0) + (hi >> 1)
                    if tp + (h >> 2) > e:
                        break
                    i += 1
                self._pdone = i - 1
                # A probe starts at the peak, or h/8 before it (still within +-45 degrees)
                # when that is needed to leave the chunk its usual wake-up: a probe must
                # never make a chunk start late or early (a loop so busy that neither
                # fits skips the probe before the chunk).
                pk = tp
                if i < j:
                    room = wait + e - self._pn * dt - 2 * early - 1000000
                    if tp > room:
                        tp -= h >> 3
                        if tp > room:
                            i = j
                if i < j:
                    pw = tp - e
                    if pw >= 1000000 + early:
                        ms = (pw - early) // 1000000
                        self._wake_us = ticks_add(now_us, ms * 1000)
                        self._wake_set = True
                        return ms * 1000
                    self._pdone = i
                    self._pk_ns = pk
                    self.probing = True
                    n = (pw if pw > 0 else 0) // dt + self._pn
                    self.n_plan = n if n < self._pcap else self._pcap
                    return 0
                if wait >= 1000000 + early:
                    ms = (wait - early) // 1000000
                    self._wake_us = ticks_add(now_us, ms * 1000)
                    self._wake_set = True
                    return ms * 1000
                # The end crossing must lie 3 samples before the chunk's end (interpolation
                # neighbours); h/32 covers a frequency step within the window.
                hj = h + a if pj == 0 else h - a
                n = (wait + lead + hj + (h >> 5)) // dt + 4
                cap = min(self._hold_ns // dt, self.n_buf)
                over = (n - cap) * dt  # ns the chunk would need beyond what it may hold
                if over >= 1000000:
                    # Woken too early (the learned lateness overshot): a capped chunk would
                    # miss the half-cycle's end. Sleep the excess and plan again.
                    ms = (over + 999999) // 1000000
                    self._wake_us = ticks_add(now_us, ms * 1000)
                    self._wake_set = True
                    return ms * 1000
                self.n_plan = min(n, cap)
                return 0
            self.locked = False
        self.probing = False
        self.n_plan = min(self._hold_ns // dt, self.n_buf)
        return 0

    def feed(self, n, t0_us, dt_ns, skew_ns):
        """Process one captured chunk of n sample sets (t0_us: first sample, 30-bit tick)."""
        if self.probing:
            self.probing = False
            self._probe(n, t0_us, dt_ns)
            return
        if n < 8 or dt_ns <= 0:
            return
        self._chunks += 1
        self.dt_ns = dt_ns
        bufs = self.bufs
        v = bufs[0]
        nc = self.nc
        o = self._o
        if self._tab is not None:
            for ch in range(nc + 1):
                self._lin(bufs[ch], n, self._tab)
        for ch in range(nc + 1):
            self._rng(bufs[ch], n, o)
            if o[0] <= self._clo or o[1] >= self._chi:
                self._clip |= 1 << ch
            off = self._off[ch]
            a = max(o[1] - off, off - o[0])
            self._amax[ch] = fx.bitlen(a)
        ov = self._off[0]
        if self._vcheck(n):
            self._novolt += 1
            self.locked = False  # its crossings (noise, a cut-off half) say nothing
            return
        # Zero crossings of the voltage, then every half-cycle between two of them.
        nz = 0
        i = 2
        zo = self._zo
        while nz < _MAX_ZC:
            b = self._zc(v, i, n - 1, ov, self._hyst, zo)
            if b < 0:
                break
            self._zpos[nz] = ((b - 1) << 8) + zo[1]
            self._ztyp[nz] = zo[0]
            nz += 1
            i = b
        if nz == 0:
            if n * dt_ns >= self.h_ns:
                self._flat += 1  # the reference does not alternate: loss of cycles
            self._miss += 1
            if self._miss > 1:
                self.locked = False
            return
        rel = ticks_diff(t0_us, self.t0_us) * 1000  # chunk start, ns after the window start
        halves = 0
        for j in range(nz):
            p = self._zpos[j]
            t = rel + (p >> 8) * dt_ns + (((p & 255) * dt_ns) >> 8)
            if self._c0 < 0:
                self._c0 = t
                self._c0t = self._ztyp[j]
            elif self._ztyp[j] == self._c0t:
                self._c1 = t
            if j > 0 and self._ztyp[j] != self._ztyp[j - 1]:
                halves += self._half(self._zpos[j - 1], p, self._ztyp[j - 1], dt_ns, skew_ns)
        # Phase reference for planning: the chunk's last crossing.
        p = self._zpos[nz - 1]
        tl = (p >> 8) * dt_ns + (((p & 255) * dt_ns) >> 8)
        self.ref_us = ticks_add(t0_us, tl // 1000)
        self.ref_typ = self._ztyp[nz - 1]
        self._pdone = -1
        self.locked = True
        self._miss = 0 if halves else self._miss + 1

    def volt_lost(self, n):
        """Quick look at a captured chunk before the service yields: True when it lacks
        the voltage (feed() then closes the window)."""
        if n < 8:
            return False
        o = self._o
        ov = self._off[0]
        self._rng(self.bufs[0], n, o)
        self._amax[0] = fx.bitlen(max(o[1] - ov, ov - o[0]))
        return self._vcheck(n)

    def _vcheck(self, n):
        """The chunk lacks the voltage: its mean square is below v_min's, or that of its
        last quarter-cycle is below 0.3 * v_min's (any quarter-cycle of a sine of v_min
        rms has >= 0.36), so a loss after the chunk's start is not missed."""
        v = self.bufs[0]
        o = self._o
        ov = self._off[0]
        ctl = self._ctl
        self._set_ctl(0, 0)
        self._acc(v, v, 1, n - 1, ov, ov, ctl, o)
        if fx.mean_q(o[1], ctl[1], (n - 2) << 8) < self._vmin2:
            return True
        q = (self.h_ns >> 1) // self.dt_ns  # samples in a quarter-cycle
        if n - 2 <= q or q < 2:
            return False
        self._acc(v, v, n - 1 - q, n - 1, ov, ov, ctl, o)
        return fx.mean_q(o[1], ctl[1], q << 8) < self._vtail2

    def _probe(self, n, t0_us, dt_ns):
        """Judge a peak probe: conclusive when a sample lies within +-45 degrees of the
        predicted peak (or the probe spans a quarter-cycle); then a peak below _vpk
        is a lost reference."""
        if n < 1 or dt_ns <= 0:
            return
        e0 = ticks_diff(t0_us, self.ref_us) * 1000
        e1 = e0 + (n - 1) * dt_ns
        q = self.h_ns >> 2
        tp = self._pk_ns
        if not (e0 <= tp + q and e1 >= tp - q) and e1 - e0 < 2 * q:
            return  # woken too far from the peak: this probe says nothing
        o = self._o
        self._rng(self.bufs[0], n, o)
        ov = self._off[0]
        self.n_probes += 1
        if o[1] - ov < self._vpk and ov - o[0] < self._vpk:
            self._novolt += 1

    def _set_ctl(self, ch, k):
        """Kernel controls for channel ch against the voltage: shift k, overflow shifts."""
        ctl = self._ctl
        bx = self._amax[0]
        by = self._amax[ch]
        ctl[0] = k + 256
        ctl[1] = 2 * by - 21 if by > 10 else 0
        ctl[2] = bx + by - 21 if bx + by > 21 else 0

    def _half(self, pa, pb, typ, dt, skew):
        """Integrate the half-cycle between crossings pa and pb (Q8 sample positions)."""
        w = pb - pa
        hd = (w >> 8) * dt + (((w & 255) * dt) >> 8)  # ns
        if hd * 5 < self.h_ns * 4 or hd * 5 > self.h_ns * 6:
            return 0  # not a half-cycle (noise, frequency step): ignore
        self._hs += hd
        self._hn += 1
        pol = 0 if typ == 1 else 1
        # Learn the half-cycle asymmetry (positive lasts h + asym) and the half period.
        a = hd - self.h_ns if pol == 0 else self.h_ns - hd
        self._asym = (self._asym * 3 + a) >> 2
        a = self._asym
        self.h_ns = (self.h_ns * 3 + (hd - a if pol == 0 else hd + a)) >> 2
        self.nh[pol] += 1
        nf = (pa + 383) >> 8  # first sample fully inside: ceil((pa + 128) / 256)
        nl = (pb - 128) >> 8  # last sample fully inside
        wf = ((nf - 1) << 8) + 128 - pa  # weight (Q8) of sample nf - 1
        wl = pb - ((nl + 1) << 8) + 128  # weight of sample nl + 1
        bufs = self.bufs
        v = bufs[0]
        o = self._o
        o1 = self._o1
        ctl = self._ctl
        base = pol * (self.nc + 1) * _Q
        for ch in range(self.nc + 1):
            if ch == 0:
                k = 0
                oc = self._off[0]
            else:
                k = ((ch * skew + self._ph_ns[ch - 1]) << 8) // dt
                k = -256 if k < -256 else (256 if k > 256 else k)
                oc = self._off[ch]
            self._set_ctl(ch, k)
            c = bufs[ch]
            ov = self._off[0]
            self._acc(v, c, nf, nl + 1, ov, oc, ctl, o)
            s0, s1, s2 = o[0], o[1], o[2]
            self._acc(v, c, nf - 1, nf, ov, oc, ctl, o1)
            s0 += (o1[0] * wf) >> 8
            s1 += (o1[1] * wf) >> 8
            s2 += (o1[2] * wf) >> 8
            self._acc(v, c, nl + 1, nl + 2, ov, oc, ctl, o1)
            s0 += (o1[0] * wl) >> 8
            s1 += (o1[1] * wl) >> 8
            s2 += (o1[2] * wl) >> 8
            i = base + ch * _Q
            self._add(i, fx.mean_q(s0 << 4, 0, w))
            self._add(i + 1, fx.mean_q(s1, ctl[1], w))
            self._add(i + 2, fx.mean_q(s2, ctl[2], w))
        return 1

    def _add(self, i, x):
        """Block-floating add of x (|x| <= _LIM) into accumulator i."""
        if x > _LIM:
            x = _LIM
        elif x < -_LIM:
            x = -_LIM
        e = self._ae[i]
        s = self._am[i] + (x >> e)
        while s > _LIM or s < -_LIM:
            s >>= 1
            e += 1
        self._am[i] = s
        self._ae[i] = e

    def _mean(self, ch, q):
        """Mean over the window's half-cycles, positive and negative weighted equally."""
        r = 0
        n = 0
        for pol in range(2):
            cnt = self.nh[pol]
            if cnt:
                i = (pol * (self.nc + 1) + ch) * _Q + q
                m = (self._am[i] // cnt) << self._ae[i]
                r += m >> 1
                n += 1
        return r << 1 if n == 1 else r

    def finish(self, meter, now_ms):
        """Close the window: fill `meter` (gateway.model.Meter) and the per-channel lists.
        False when the window is dropped unpublished: the reference was present and
        alternating, but the chunks missed the half-cycles of one or both polarities (the
        event loop woke the capture too late). Nothing about the grid is known from such
        a window, so the Meter keeps its previous values and ages; safety's
        meter_stale_ms blocks if that goes on."""
        return _finish(self, meter, now_ms)
