# The control core on the MicroPython unix port, driven over a pipe by the benchmark
# (tools/gwhost/gwcore.py). Line 1: {"control": {...}, "plan": {...} or absent,
# "tariff": {...} or absent} as JSON (the Planner runs once per simulated second). Then one
# line of integers per step (gwcore.FIELDS_IN order), read by corelink.py as on CPython.
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

import corelink
from gateway.control import Controller
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints

_HIST = 4096  # step-time histogram, 1 us bins


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
    hist = array("I", bytes(4 * _HIST))  # first: 16 KB in one piece, before fragmentation
    cfg = json.loads(sys.stdin.readline())
    c = Controller(cfg["control"])
    pl = corelink.make_planner(cfg)
    t_s = None
    cfg = None
    gc.collect()
    m, ch, inv, pm, out = Meter(), Charger(), Inverter(), Permits(), Setpoints()
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
        corelink.load(f, m, ch, inv, pm)
        if pl is not None and f[27] != t_s:
            t_s = f[27]
            corelink.plan_tick(pl, f, c, m, ch, inv)
        t0 = time.ticks_us()
        c.step(f[0], m, ch, inv, pm, out)
        dt = time.ticks_diff(time.ticks_us(), t0)
        hist[min(_HIST - 1, dt)] += 1
        n += 1
        r = corelink.answers(c, out)
        crc = corelink.checksum(crc, r)
        if not replay:
            wr(" ".join([str(x) for x in r]) + "\n")
    wr("S " + str(median_x100(hist, n)) + " " + str(n) + " " + str(crc) + "\n")


main()
