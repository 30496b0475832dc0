# Metering benchmark, firmware side: runs on the MicroPython unix port (or CPython).
#
# Usage: micropython tools/mpybench/metering.py CASES.jsonl (one case per line)
# Runs the firmware's metering core (gateway.metering.adc, the same window loop as
# gateway.metering.service.window, inlined here to time the core apart from the
# simulated ADC) against gateway.ports.sim_analog in virtual time, one case after the
# other, and prints one JSON line per case, then one summary line (timing, allocation).
# tools/gwhost/bench_metering.py makes the cases and aggregates. Numbers are the firmware's.
import gc
import json
import sys

try:
    import time

    _us = time.ticks_us
    _diff = time.ticks_diff
except AttributeError:  # CPython
    import time

    def _us():
        return time.perf_counter_ns() // 1000

    def _diff(a, b):
        return a - b


from gateway.metering import config
from gateway.metering.adc import AdcMeter
from gateway.model import Meter
from gateway.ports.sim_analog import SimAnalog, Truth

T = {"core": 0, "sim": 0, "windows": 0, "hold": 0}


def run_window(eng, fe, meter, gap_us):
    """service.window() with timing: core (plan/feed/finish) apart from synthesis."""
    t = _us()
    eng.begin(fe.now_us())
    core = _diff(_us(), t)
    sim = 0
    while True:
        t = _us()
        if eng.done(fe.now_us()):
            core += _diff(_us(), t)
            break
        wait = eng.plan(fe.now_us())
        core += _diff(_us(), t)
        if wait >= 1000:
            fe.idle_us((wait // 1000) * 1000 + gap_us)  # a late wake-up, like asyncio's
            continue
        hold = eng.n_plan * eng.period_us
        T["hold"] = max(T["hold"], hold)
        t = _us()
        n = fe.capture(eng.bufs, eng.n_plan, eng.period_us)
        t2 = _us()
        eng.feed(n, fe.t0_us, fe.dt_ns, fe.skew_ns)
        t3 = _us()
        sim += _diff(t2, t)
        core += _diff(t3, t2)
        fe.idle_us(gap_us)  # other tasks run between chunks
    t = _us()
    eng.finish(meter, fe.now_us() // 1000)
    core += _diff(_us(), t)
    T["core"] += core
    T["sim"] += sim
    T["windows"] += 1


def run_case(c):
    an = {"channels": c["channels"], "sim": c["sim"]}
    if "kernel" in c:
        an["kernel"] = c["kernel"]
    cfg = config.validate(an)
    nc = len(cfg["channels"])
    tr = Truth(nc)
    tr.v_mv = c["v_mv"]
    tr.f_millihz = c["f_millihz"]
    for i in range(nc):
        tr.ch_w[i] = c["w"][i]
        tr.ch_var[i] = c["var"][i]
    fe = SimAnalog(tr, cfg, virtual=True, start_us=c.get("start_us", 0))
    eng = AdcMeter(cfg)
    m = Meter()
    gap = c.get("gap_us", 300)
    for _ in range(c.get("warm", 2)):
        run_window(eng, fe, m, gap)
    res = {"id": c["id"], "w": [], "v_mv": [], "f_millihz": [], "f_true": [], "valid": [],
           "flags": [], "ma": []}
    for k in range(c.get("windows", 3)):
        run_window(eng, fe, m, gap + 37 * k)
        res["w"].append(list(eng.ch_w))
        res["ma"].append(list(eng.ch_ma))
        res["v_mv"].append(m.v_mv)
        res["f_millihz"].append(m.f_millihz)
        res["f_true"].append(fe.f_now_mhz())
        res["valid"].append(m.valid)
        res["flags"].append(m.flags)
    return res


def alloc_per_window(c, windows=10):
    """Bytes allocated per window (capture + core) with the truth held constant."""
    cfg = config.validate({"channels": c["channels"], "sim": c["sim"]})
    tr = Truth(len(cfg["channels"]))
    tr.ch_w[0] = 2000
    fe = SimAnalog(tr, cfg, virtual=True)
    eng = AdcMeter(cfg)
    m = Meter()
    run_window(eng, fe, m, 300)
    gc.collect()
    try:
        gc.disable()
        a0 = gc.mem_alloc()
        for _ in range(windows):
            run_window(eng, fe, m, 300)
        d = gc.mem_alloc() - a0
    except AttributeError:  # CPython has no mem_alloc
        return -1
    finally:
        gc.enable()
    return d // windows


def main():
    first = None
    with open(sys.argv[1]) as f:  # one case per line: the list never sits in the heap
        for line in f:
            c = json.loads(line)
            first = first or c
            print(json.dumps(run_case(c)))
            gc.collect()
    w = T["windows"] or 1
    alloc = alloc_per_window(first)
    print(json.dumps({"summary": True, "windows": T["windows"], "us_per_window": T["core"] // w,
                      "sim_us_per_window": T["sim"] // w, "max_hold_us": T["hold"],
                      "alloc_bytes_per_window": alloc,
                      "runtime": sys.implementation.name}))


if __name__ == "__main__":
    main()
