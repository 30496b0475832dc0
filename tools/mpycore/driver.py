# The control core on the MicroPython unix port, driven over a pipe by the benchmark
# (tools/gwhost/gwcore.py). Line 1: {"control": {...}, "safety": {...}, "plan": {...} or
# absent, "tariff": {...} or absent} as JSON. Then one line of integers per step
# (gwcore.FIELDS_IN order), handled by corelink.py exactly as on CPython: the firmware's
# Safety ticks, the Planner runs once per simulated second, Controller.step decides.
# Lockstep mode (no argument): each step is answered at once with one line of integers
# (gwcore.FIELDS_OUT); "Q" ends the run. Replay mode (argument "replay"): no answers, the
# steps come from a recorded run until end of input.
# Both end with "S <median step us x100> <steps> <checksum of all answers>" (the checksum
# is corelink.checksum). Only Controller.step is timed (time.ticks_us), not the parsing.
import gc
import json
import sys
import time
from array import array

_HIST = 4096  # step-time histogram, 1 us bins
# first: 16 KB in one piece, before the firmware's bytecode (in the heap on the unix port,
# in flash on a board) fragments it
_hist = array("I", bytes(4 * _HIST))

import corelink  # noqa: E402
from gateway.control import Controller  # noqa: E402
from gateway.model import Setpoints  # noqa: E402


def median_x100(hist, n):
    half = (n + 1) // 2
    acc = 0
    for i in range(len(hist)):
        acc += hist[i]
        if acc >= half:
            return i * 100
    return (len(hist) - 1) * 100


def main():
    replay = len(sys.argv) > 1 and sys.argv[1] == "replay"
    hist = _hist
    cfg = json.loads(sys.stdin.readline())
    c = Controller(cfg["control"])
    pl = corelink.make_planner(cfg)
    m, ch, inv, pm = corelink.records()
    out = Setpoints()
    s = corelink.make_safety(cfg, m, ch, inv, pm)
    t_s = None
    cfg = None
    gc.collect()
    n = 0
    crc = 0
    rd = sys.stdin.readline
    wr = sys.stdout.write
    if not replay:
        wr("READY\n")
    while True:
        line = rd()
        if not line or line[0] == "Q":
            break
        f = [int(x) for x in line.split()]
        corelink.load(f, m, ch, inv)
        corelink.safety_tick(s, f)
        if pl is not None and f[corelink.NOW_S] != t_s:
            t_s = f[corelink.NOW_S]
            corelink.plan_tick(pl, f, c, m, ch, inv)
        t0 = time.ticks_us()
        c.step(f[0], m, ch, inv, pm, out)
        dt = time.ticks_diff(time.ticks_us(), t0)
        hist[min(_HIST - 1, dt)] += 1
        n += 1
        r = corelink.answers(c, s, out)
        crc = corelink.checksum(crc, r)
        if not replay:
            wr(" ".join([str(x) for x in r]) + "\n")
    wr("S " + str(median_x100(hist, n)) + " " + str(n) + " " + str(crc) + "\n")


main()
