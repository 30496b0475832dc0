# The control core on the MicroPython unix port, driven over a pipe by the benchmark
# (tools/gwhost/gwcore.py MpyCore). Line 1: the control config as JSON. Then one line of
# integers per step (gwcore.FIELDS_IN order); the reply is one line of integers
# (gwcore.FIELDS_OUT). "Q" ends the run: the reply is "S <median step us x100> <steps>".
# Only Controller.step is timed (time.ticks_us); parsing is the driver's, not the core's.
import json
import sys
import time
from array import array

from gateway.control import Controller
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints



def median_x100(hist, n):
    half = (n + 1) // 2
    acc = 0
    for i in range(len(hist)):
        acc += hist[i]
        if acc >= half:
            return i * 100
    return (len(hist) - 1) * 100


def main():
    c = Controller(json.loads(sys.stdin.readline()))
    m, ch, inv, pm, out = Meter(), Charger(), Inverter(), Permits(), Setpoints()
    hist = array("I", bytes(4 * 4096))
    n = 0
    rd = sys.stdin.readline
    wr = sys.stdout.write
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
        t0 = time.ticks_us()
        c.step(f[0], m, ch, inv, pm, out)
        dt = time.ticks_diff(time.ticks_us(), t0)
        hist[dt if dt < 4095 else 4095] += 1
        n += 1
        wr("%d %d %d %d %d %d %d\n" % (out.ev_w, 1 if out.ev_session else 0, out.batt_w,
                                       out.export_limit_w, out.reason, c.writes, c.starts))
    wr("S %d %d\n" % (median_x100(hist, n), n))


main()
