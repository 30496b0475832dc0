# Helpers for the metering tests (both runtimes): a simulated board's analog front end in
# virtual time, the firmware's metering engine and the shared Meter record.
import gc
import sys

# Compiled from source under a 110 KB heap: collect between the big imports (on the board
# these modules are frozen bytecode and cost no RAM).
from gateway.metering import config

gc.collect()
from gateway.metering.adc import AdcMeter  # noqa: E402

gc.collect()
from gateway.ports.sim_analog import SimAnalog, Truth  # noqa: E402

gc.collect()
from gateway.metering import service  # noqa: E402
from gateway.model import Meter  # noqa: E402

MPY = sys.implementation.name == "micropython"
CHANNELS = [{"role": "grid", "pin": 39}, {"role": "house", "pin": 34}]


class Rig:
    """Front end + engine + Meter; `truth` is what the plant says."""

    def __init__(self, sim=None, analog=None, kernel="auto", start_us=0, gap_us=400):
        an = {"channels": CHANNELS, "sim": sim or {}}
        if analog:
            an.update(analog)
        an["kernel"] = kernel
        self.cfg = config.validate(an)
        gc.collect()  # two rigs at once under the 110 KB heap: compact before the buffers
        self.truth = Truth(len(self.cfg["channels"]))
        self.fe = SimAnalog(self.truth, self.cfg, virtual=True, kernel=kernel,
                            start_us=start_us)
        self.eng = AdcMeter(self.cfg)
        self.meter = Meter()
        self.gap_us = gap_us
        self._clock = self.now_ms  # one bound method, made once (making one allocates)

    def now_ms(self):
        return self.fe.now_us() // 1000

    def window(self):
        service.window(self.eng, self.fe, self.meter, self._clock)
        return self.meter

    def windows(self, n):
        for _ in range(n):
            self.window()
        return self.meter

    def step(self):
        """One planning/capture step of a window in progress (for mid-window events)."""
        eng, fe = self.eng, self.fe
        wait = eng.plan(fe.now_us())
        if wait >= 1000:
            fe.idle_us(wait)
            return
        n = fe.capture(eng.bufs, eng.n_plan, eng.period_us)
        eng.feed(n, fe.t0_us, fe.dt_ns, fe.skew_ns)
        fe.idle_us(self.gap_us)


def allowance(truth_w):
    """The acceptance limit on real power: 1 % of reading + 5 W."""
    return abs(truth_w) / 100 + 5
