# One step of the benchmark's pipe protocol, shared by both runtimes of the control core:
# tools/mpycore/driver.py (MicroPython unix port) and tools/gwhost/gwcore.py (CPython).
# A step is a list of integers in gwcore.FIELDS_IN order; the answers are FIELDS_OUT.
from gateway.plan import Planner
from gateway.tariff import Tariff


def make_planner(cfg):
    """The firmware Planner for a core config {"control", "plan", "tariff"}, or None."""
    if cfg.get("plan") is None:
        return None
    t = Tariff()
    if cfg.get("tariff"):
        t.load(cfg["tariff"])
    return Planner(cfg["plan"], t)


def load(f, m, ch, inv, pm):
    """The step's integers into the firmware records (Meter, Charger, Inverter, Permits)."""
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


def plan_tick(pl, f, ctl, m, ch, inv):
    """Once per simulated second: the departure, then Planner.update."""
    if f[29] != pl.dep_at_s:
        pl.set_departure(f[29], f[30])
    pl.update(f[27], f[28], ctl, m, ch, inv)


def answers(c, out):
    """The step's answers (FIELDS_OUT order) from the Controller and its Setpoints."""
    return (out.ev_w, 1 if out.ev_session else 0, out.batt_w, out.export_limit_w, out.reason,
            c.writes, c.starts)


def checksum(crc, r):
    """Running check over the answers of a run."""
    for x in r:
        crc = (crc * 31 + x) & 0x1FFFFFFF
    return crc
