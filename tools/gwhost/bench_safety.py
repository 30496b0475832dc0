"""Benchmark of the safety supervisor core on the MicroPython unix port.

Prints one JSON object on its last line: microseconds per call of tick() (min
and median of 5 runs, the record updates subtracted) in the normal state and while trip timers run, of contact_edge() and stop_confirmed(),
bytes allocated per tick (gc.mem_alloc with the collector off), the heap one
Safety instance takes, and the .mpy size of each module (mpy-cross xtensawin).
Host numbers: an ESP32 at 240 MHz is roughly 30-60x slower (re-measure there).

Usage: tools/bench-safety [--ticks N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from gwhost import paths

MODULES = ("safety.py", "safety_cfg.py", "safety_grid.py")

# runs inside `micropython -X heapsize=110k -c ...`
_MPY = """
import gc, time
from gateway.model import Meter, Charger, Inverter
from gateway.safety import Safety, STATE_NORMAL, STATE_GRID_LOST_BLOCKED
N = %d
gc.collect()
a0 = gc.mem_alloc()
m = Meter(); c = Charger(); i = Inverter()
s = Safety({"reconnect_ms": 1000, "ramp_w_s": 100000}, m, c, i)
gc.collect()
inst = gc.mem_alloc() - a0

def feed(t, v):
    m.valid = True; m.t_ms = t; m.v_mv = v; m.f_millihz = 50000
    c.online = True; c.t_ms = t; i.online = True; i.t_ms = t

T = [1000]  # time carries on from loop to loop (going back would be a tick gap)

def loop(n, v, do_tick):
    t = T[0]
    for _ in range(n):
        t += 20
        feed(t, v)
        if do_tick:
            s.tick(t, 0)
            if s.stop_needed:
                s.stop_confirmed(t, s.stop_seq)
    T[0] = t

def us(n, v, do_tick):
    best = []  # 5 repetitions: the minimum is the cost without host interference
    for _ in range(5):
        t0 = time.ticks_us()
        loop(n, v, do_tick)
        best.append(time.ticks_diff(time.ticks_us(), t0))
    best.sort()
    return best[0], best[2]

loop(200, 230000, True)
assert s.state == STATE_NORMAL and s.limit_w == s._limit_max_w
base = us(N, 230000, False)
normal = us(N, 230000, True)
normal = (normal[0] - base[0], normal[1] - base[1])
n_blocks = s.n_blocks
gc.collect(); gc.disable()
a = gc.mem_alloc()
loop(N, 183000, True)  # UV1 timer running, then tripped: blocked ticks
alloc = gc.mem_alloc() - a
gc.enable()
assert s.state == STATE_GRID_LOST_BLOCKED and s.n_blocks == n_blocks + 1
blocked = us(N, 183000, True)
blocked = (blocked[0] - base[0], blocked[1] - base[1])
t0 = time.ticks_us()
for k in range(N):
    s.contact_edge(k, 1)
edge = time.ticks_diff(time.ticks_us(), t0)
t0 = time.ticks_us()
for k in range(N):
    s.stop_confirmed(k, s.stop_seq)
conf = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print("R", N, normal[0], normal[1], blocked[0], blocked[1], edge, conf, alloc, inst,
      gc.mem_free())
"""


def mpy_sizes():
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for f in MODULES:
            dst = os.path.join(d, f[:-3] + ".mpy")
            subprocess.run([paths.MPY_CROSS, "-march=xtensawin", "-o", dst,
                            os.path.join(paths.FIRMWARE, "gateway", f)], check=True)
            out[f[:-3]] = os.path.getsize(dst)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=20000)
    args = ap.parse_args(argv)
    p = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.HEAP, "-c",
                        _MPY % args.ticks], capture_output=True, text=True,
                       env=paths.micropython_env(), cwd=paths.ROOT, check=False, timeout=300)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("R ")]
    if p.returncode != 0 or not line:
        print(p.stdout + p.stderr, file=sys.stderr)
        return 1
    vals = [int(x) for x in line[0].split()[1:]]
    n, normal, normal_med, blocked, blocked_med, edge, conf, alloc, inst, free = vals
    res = {
        "runtime": "micropython unix port, heapsize=" + paths.HEAP,
        "ticks": n,
        "tick_us_normal": round(normal / n, 2),  # min of 5 runs
        "tick_us_normal_median": round(normal_med / n, 2),
        "tick_us_blocked_trip_timers": round(blocked / n, 2),
        "tick_us_blocked_median": round(blocked_med / n, 2),
        "contact_edge_us": round(edge / n, 2),
        "stop_confirmed_us": round(conf / n, 2),
        "alloc_bytes_per_tick": alloc / n,
        "instance_heap_bytes": inst,
        "heap_free_bytes": free,
        "mpy_bytes": mpy_sizes(),
    }
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
