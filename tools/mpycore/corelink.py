# One step of the benchmark's pipe protocol, shared by both runtimes of the control core:
# tools/mpycore/driver.py (MicroPython unix port) and tools/gwhost/gwcore.py (CPython).
# A step is a list of integers in gwcore.FIELDS_IN order; the answers are FIELDS_OUT.
# Each step the firmware's own safety module (gateway/safety.py) ticks first on the
# step's readings and fills the Permits record; then the planner (once per simulated
# second) and Controller.step decide. The comparison controllers get their permits from
# the same Safety through make_safety / safety_tick (gwhost.lockstep), on CPython.
from gateway.model import Charger, Inverter, Meter, Permits
from gateway.plan import Planner
from gateway.safety import Safety
from gateway.tariff import Tariff

# indices into a step (gwcore.FIELDS_IN)
NOW = 0
C_POWER = 9
I_BATT = 17
CONTACT = 21
NOW_S = 23
TOD_S = 24
DEP_AT = 25
DEP_SOC = 26


def make_planner(cfg):
    """The firmware Planner for a core config {"control", "plan", "tariff"}, or None."""
    if cfg.get("plan") is None:
        return None
    t = Tariff()
    if cfg.get("tariff"):
        t.load(cfg["tariff"])
    return Planner(cfg["plan"], t)


def records():
    """(Meter, Charger, Inverter, Permits): the records one core reads and writes."""
    return Meter(), Charger(), Inverter(), Permits()


def make_safety(cfg, m, ch, inv, pm):
    """The firmware Safety over the records, with the core config's "safety" section."""
    s = Safety(cfg.get("safety") or {}, m, ch, inv, pm)
    if s.config_error:
        raise ValueError("safety: " + s.config_error)
    return s


def load(f, m, ch, inv):
    """The step's integers into the firmware records (Meter, Charger, Inverter)."""
    m.valid, m.t_ms, m.grid_w = f[1] == 1, f[2], f[3]
    ch.online, ch.t_ms, ch.plugged, ch.session = f[4] == 1, f[5], f[6] == 1, f[7] == 1
    ch.soc_pct, ch.power_w, ch.min_w, ch.max_charge_w = f[8], f[9], f[10], f[11]
    ch.max_discharge_w, ch.grid_ok = f[12], f[13] == 1
    inv.online, inv.t_ms, inv.pv_w, inv.batt_w = f[14] == 1, f[15], f[16], f[17]
    inv.batt_soc_pct, inv.has_battery, inv.grid_ok = f[18], f[19] == 1, f[20] == 1
    m.f_millihz = f[22]
    m.ph_w[0], m.ph_w[1], m.ph_w[2] = f[27], f[28], f[29]
    m.ph_ma[0], m.ph_ma[1], m.ph_ma[2], m.v_mv = f[30], f[31], f[32], f[33]


def safety_tick(s, f):
    """The step's safety tick (the sampled contact), then, while a stop is pending, the
    devices' read-back: confirmed once neither the charger nor the home battery
    discharges (the app's stop_done, without the Modbus round trip)."""
    s.tick(f[NOW], f[CONTACT])
    if s.stop_needed and f[C_POWER] >= 0 and f[I_BATT] >= 0:
        s.stop_confirmed(f[NOW], s.stop_seq)


def plan_tick(pl, f, ctl, m, ch, inv):
    """Once per simulated second: the departure, then Planner.update."""
    if f[DEP_AT] != pl.dep_at_s:
        pl.set_departure(f[DEP_AT], f[DEP_SOC])
    pl.update(f[NOW_S], f[TOD_S], ctl, m, ch, inv)


def answers(c, s, out):
    """The step's answers (FIELDS_OUT order) from the Controller, Safety and Setpoints."""
    return (out.ev_w, 1 if out.ev_session else 0, out.batt_w, out.export_limit_w, out.reason,
            c.writes, c.starts, 1 if s.interlock_on else 0, s.state)


def checksum(crc, r):
    """Running check over the answers of a run."""
    for x in r:
        crc = (crc * 31 + x) & 0x1FFFFFFF
    return crc
