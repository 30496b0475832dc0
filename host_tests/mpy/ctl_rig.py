# A test rig for gateway.control on both runtimes: the records, an instant charger (its
# power follows the written setpoint one cycle later while the session is open) and a
# house whose net load (load - PV) the test sets. grid = net + car power.
from gateway.clock import ticks_add
from gateway.control import Controller
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints


class Rig:
    def __init__(self, cfg=None, soc=50, t0=0):
        self.c = Controller(cfg)
        m = self.m = Meter()
        m.valid = True
        ch = self.ch = Charger()
        ch.online = True
        ch.plugged = True
        ch.soc_pct = soc
        ch.min_w = 150
        ch.max_charge_w = 11000
        ch.max_discharge_w = 10000
        self.inv = Inverter()
        self.inv.online = True
        p = self.pm = Permits()
        p.export = p.discharge = p.charge = True
        p.limit_w = 100000
        self.out = Setpoints()
        self.t = t0
        self.net = 0  # house load - PV, W
        self.ev = 0  # the charger's actual power, W
        self.fresh = True  # refresh record timestamps each cycle

    def step(self, n=1):
        # one name per line: a 6-way tuple unpack would allocate on MicroPython
        c = self.c
        m = self.m
        ch = self.ch
        inv = self.inv
        pm = self.pm
        out = self.out
        for _ in range(n):
            t = self.t
            m.grid_w = self.net + self.ev
            if self.fresh:
                m.t_ms = t
                ch.t_ms = t
                inv.t_ms = t
            ch.power_w = self.ev
            c.step(t, m, ch, inv, pm, out)
            ch.session = out.ev_session
            self.ev = out.ev_w if out.ev_session else 0
            self.t = ticks_add(t, 200)
        return out.ev_w

    def grid(self):
        return self.net + self.ev
