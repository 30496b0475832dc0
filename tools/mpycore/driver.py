# The control core on the MicroPython unix port, driven over a pipe by the benchmark
# (tools/gwhost/gwcore.py). Line 1: {"control": {...}, "plan": {...} or absent,
# "tariff": {...} or absent} as JSON (the Planner runs once per simulated second, as in
# gwcore.plan_tick). Then one line of integers
# per step (gwcore.FIELDS_IN order).
# Lockstep mode (no argument): each step is answered at once with one line of integers
# (gwcore.FIELDS_OUT); "Q" ends the run. Replay mode (argument "replay"): no answers, the
# steps come from a recorded run until end of input.
# Both end with "S <median step us x100> <steps> <checksum of all answers>" (the checksum
# is gwcore.checksum). Only Controller.step is timed (time.ticks_us), not the parsing.
import gc
import json
import sys
import time
from array import array

from gateway.control import Controller
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints
from gateway.plan import Planner
from gateway.tariff import Tariff

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
    pl = None
    if cfg.get("plan") is not None:
        t = Tariff()
        if cfg.get("tariff"):
            t.load(cfg["tariff"])
        pl = Planner(cfg["plan"], t)
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
        m.valid, m.t_ms, m.grid_w = f[1] == 1, f[2], f[3]
        ch.online, ch.t_ms, ch.plugged, ch.session = f[4] == 1, f[5], f[6] == 1, f[7] == 1
        ch.soc_pct, ch.power_w, ch.min_w, ch.max_charge_w = f[8], f[9], f[10], f[11]
        ch.max_discharge_w, ch.grid_ok = f[12], f[13] == 1
        inv.online, inv.t_ms, inv.pv_w, inv.batt_w = f[14] == 1, f[15], f[16], f[17]
        inv.batt_soc_pct, inv.has_battery, inv.grid_ok = f[18], f[19] == 1, f[20] == 1
        pm.state, pm.export, pm.discharge = f[21], f[22] == 1, f[23] == 1
        pm.charge, pm.island, pm.limit_w = f[24] == 1, f[25] == 1, f[26]
        m.ph_w[0], m.ph_w[1], m.ph_w[2] = f[31], f[32], f[33]
        m.ph_ma[0], m.ph_ma[1], m.ph_ma[2], m.v_mv = f[34], f[35], f[36], f[37]
        if pl is not None and f[27] != t_s:
            t_s = f[27]
            if f[29] != pl.dep_at_s:
                pl.set_departure(f[29], f[30])
            pl.update(f[27], f[28], c, m, ch, inv)
        t0 = time.ticks_us()
        c.step(f[0], m, ch, inv, pm, out)
        dt = time.ticks_diff(time.ticks_us(), t0)
        hist[min(_HIST - 1, dt)] += 1
        n += 1
        r = (out.ev_w, 1 if out.ev_session else 0, out.batt_w, out.export_limit_w, out.reason,
             c.writes, c.starts)
        for x in r:
            crc = (crc * 31 + x) & 0x1FFFFFFF
        if not replay:
            wr(" ".join([str(x) for x in r]) + "\n")
    wr("S " + str(median_x100(hist, n)) + " " + str(n) + " " + str(crc) + "\n")


main()
