# Voltage / frequency evidence for the safety supervisor: trip stages with
# definite times, a sliding 10-min mean for the slow over-voltage stage, RoCoF,
# the "voltage lost" check and the (narrower) reconnection window.
#
# Pure and allocation-free per call: stage tables are lists of small ints built
# once in __init__, times are 30-bit ticks compared only with ticks_diff.
# Thresholds come from the validated settings (gateway.safety_cfg).
from micropython import const

from gateway.clock import ticks_add, ticks_diff

# Reason codes for telemetry (re-exported by gateway.safety; codes are stable)
REASON_V_LOSS = const(14)  # reference below v_loss_pm or f <= 0: like loss of cycles
REASON_UV = const(15)
REASON_OV = const(16)
REASON_UF = const(17)
REASON_OF = const(18)
REASON_ROCOF = const(19)
REASON_V_WINDOW = const(20)  # not tripped, but outside the reconnection voltage window
REASON_F_WINDOW = const(21)

_V = const(0)  # stage input: rms voltage, mV
_F = const(1)  # frequency, mHz
_R = const(2)  # |RoCoF|, mHz/s
_M = const(3)  # sliding mean voltage, mV
_OFF = const(0x3FFFFFFF)  # a threshold never exceeded (stage off)
_BUCKET_MS = const(3000)  # VDE-AR-N 4105: the 10-min mean is updated at least every 3 s
_NBUCKETS = const(200)  # 600 s / 3 s
_V_CLAMP_MV = const(400000)  # keeps the mean's integrals below 2**30


class GridWindow:
    """Judges one voltage reference against the trip stages and the reconnect window."""

    def __init__(self, c):
        vn = c["v_nom_mv"]
        mean = c["ov1_mean_s"] > 0
        rocof = c["rocof_mhz_s"] if c["rocof_mhz_s"] > 0 else _OFF
        # stage tables, checked in this order (the fast stages first)
        self._src = [_V, _V, _V, _M if mean else _V, _F, _F, _F, _F, _R]
        self._over = [False, False, True, True, False, False, True, True, True]
        self._thr = [vn * c["uv2_pm"] // 1000, vn * c["uv1_pm"] // 1000,
                     vn * c["ov2_pm"] // 1000, vn * c["ov1_pm"] // 1000,
                     c["uf2_mhz"], c["uf1_mhz"], c["of2_mhz"], c["of1_mhz"], rocof]
        self._ms = [c["uv2_ms"], c["uv1_ms"], c["ov2_ms"], c["ov1_ms"],
                    c["uf2_ms"], c["uf1_ms"], c["of2_ms"], c["of1_ms"], c["rocof_ms"]]
        self._why = [REASON_UV, REASON_UV, REASON_OV, REASON_OV,
                     REASON_UF, REASON_UF, REASON_OF, REASON_OF, REASON_ROCOF]
        self._on = [False] * 9  # condition present since _since[i]
        self._since = [0] * 9
        self.v_loss_mv = vn * c["v_loss_pm"] // 1000
        self.rc_v_lo_mv = vn * c["rc_v_lo_pm"] // 1000
        self.rc_v_hi_mv = vn * c["rc_v_hi_pm"] // 1000
        self.rc_f_lo_mhz = c["rc_f_lo_mhz"]
        self.rc_f_hi_mhz = c["rc_f_hi_mhz"]
        self.rocof_mhz_s = rocof
        # sliding mean: _nb buckets of 3 s, each the time-weighted mean in 10 mV units
        self._nb = c["ov1_mean_s"] * 1000 // _BUCKET_MS if mean else 0
        self._ring = [0] * (self._nb if mean else 1)
        self._idx = 0
        self._count = 0
        self._sum = 0  # sum of the ring, 10 mV units
        self._acc = 0  # integral of the open bucket, 10 mV * ms
        self._acc_ms = 0
        self.v_mean_mv = 0  # mean over the filled buckets (0 until the first is done)
        self.tripped = 0  # reason of the first tripped stage at the last update, or 0

    def reset(self):
        """The reference is invalid: stage timers restart when it is back."""
        for i in range(9):
            self._on[i] = False

    def update(self, now_ms, dt_ms, v_mv, f_millihz, rocof_mhz_s):
        """Advance the stages by one tick with a valid reference; the trip reason or 0.

        dt_ms (>= 0, capped by the caller) weights the sample in the sliding mean.
        A stage trips once its condition has held for its time; the condition
        must then hold on: a value back inside releases the stage at once (the
        supervisor's reconnection delay does the slow release).
        """
        if self._nb:
            self._mean(dt_ms, v_mv)
        r = abs(rocof_mhz_s)
        self.tripped = 0
        for i in range(9):
            s = self._src[i]
            x = v_mv if s == _V else f_millihz if s == _F else r if s == _R else self.v_mean_mv
            if s == _M and self._count == 0:
                hit = False
            elif self._over[i]:
                hit = x > self._thr[i]
            else:
                hit = x < self._thr[i]
            if not hit:
                self._on[i] = False
                continue
            if not self._on[i]:
                self._on[i] = True
                self._since[i] = now_ms
            t = self._ms[i]
            if ticks_diff(now_ms, self._since[i]) >= t:
                self._since[i] = ticks_add(now_ms, -t)  # saturate: no wrap after 2**29 ms
                if not self.tripped:
                    self.tripped = self._why[i]
        return self.tripped

    def window(self, v_mv, f_millihz, rocof_mhz_s):
        """0 when the reference is inside the reconnection window, else the reason."""
        if v_mv < self.rc_v_lo_mv or v_mv > self.rc_v_hi_mv:
            return REASON_V_WINDOW
        if f_millihz < self.rc_f_lo_mhz or f_millihz > self.rc_f_hi_mhz:
            return REASON_F_WINDOW
        if abs(rocof_mhz_s) > self.rocof_mhz_s:
            return REASON_ROCOF
        return 0

    def _mean(self, dt_ms, v_mv):
        v = v_mv if v_mv < _V_CLAMP_MV else _V_CLAMP_MV
        v = max(v, 0)
        self._acc += (v // 10) * dt_ms
        self._acc_ms += dt_ms
        if self._acc_ms < _BUCKET_MS:
            return
        b = self._acc // self._acc_ms
        self._acc = 0
        self._acc_ms = 0
        i = self._idx
        self._sum += b - self._ring[i]
        self._ring[i] = b
        self._idx = i + 1 if i + 1 < self._nb else 0
        if self._count < self._nb:
            self._count += 1
        self.v_mean_mv = self._sum * 10 // self._count
