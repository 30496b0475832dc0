# The serial console's commands. gateway/console.py imports this module when the
# first command line arrives and keeps it from then on. Each command takes
# (ctx, args), ctx being the gateway's gateway.model.View, and returns the lines
# to print; HELP lists every command (docs/installer-guide.md shows their output).
from gateway.clock import ticks_diff
from gateway.model import GRID_UNKNOWN, GRID_UP
from gateway.schema import ConfigError, is_secret
from gateway.util import name_of

HELP = (
    "commands:",
    "  status                 one-screen summary",
    "  meters                 metering: grid power, voltage, frequency, phases",
    "  bus                    charger and inverter as last read over Modbus",
    "  safety                 permits and the safety state",
    "  mqtt                   broker link",
    "  config get [name]      all settings, one section, or one section.key",
    "  config set NAME VALUE  change a setting (says: applied now or at restart)",
    "  config save            write the settings to flash now",
    "  log [n]                the last n log lines (default 10)",
    "  help                   this list",
)


def run(con, words):
    cmd, args = words[0].lower(), words[1:]
    f = _COMMANDS.get(cmd)
    if f is None:
        return ("error: unknown command %r; type 'help' for the list" % cmd[:20],)
    try:
        return f(con.ctx, args)
    except ValueError as e:  # ConfigError and the sections' own validation errors
        return ("error: %s" % e,)
    except Exception as e:  # noqa: BLE001 - a console bug must not kill the console
        return ("error: %s: %s" % (type(e).__name__, e),)


def _link(cl):
    if cl is None or not cl.cfg["host"]:
        return "off"
    return "connected" if cl.connected else "down"


def _yn(b):
    return "yes" if b else "no"


def _age(now, rec, fresh):
    if not rec.t_ms and not fresh:
        return "never"
    return "%d ms ago" % ticks_diff(now, rec.t_ms)


def _name(table, code):
    s = name_of(table, code)
    return str(code) if s == code else "%s (%d)" % (s, code)


def _grid(p):
    return "unknown" if p.grid == GRID_UNKNOWN else "up" if p.grid == GRID_UP else "DOWN"


_STOP = ("none", "pending", "confirmed")  # Bus.stop_state (gateway.modbus.bus.STOP_*)


def _help(ctx, args):
    return HELP


def _status(ctx, args):
    c = ctx
    m, ch, inv, p, sp, n = c.meter, c.charger, c.inverter, c.permits, c.setpoints, c.counters
    ctl = c.config.data["control"]
    return (
        "grid    %+6d W   house %6d W   pv %6d W   meter %s" % (
            m.grid_w, m.house_w, inv.pv_w, "ok" if m.valid else "INVALID"),
        "car     %+6d W   setpoint %+6d W   soc %3d %%   plugged %s   session %s" % (
            ch.power_w, sp.ev_w, ch.soc_pct, _yn(ch.plugged), _yn(ch.session)),
        "battery %+6d W   soc %3d %%" % (inv.batt_w, inv.batt_soc_pct),
        "safety  %s   grid %s   export %s   discharge %s   island %s" % (
            _name(c.state_names, p.state), _grid(p), _yn(p.export), _yn(p.discharge),
            _yn(p.island)),
        "control mode %s   reserve %s %%   max %s %%   reason %s" % (
            ctl["mode"], ctl["soc_reserve_pct"], ctl["soc_max_pct"],
            _name(c.control_reasons, sp.reason)),
        "mqtt    %s   drops %d   modbus errors %d   loop lag max %d ms" % (
            _link(c.client), n.mqtt_drops, n.modbus_errors, c.lag.max_ms),
        _bus_line(c),
        "config  %s%s" % (c.config.source, "   ERROR " + c.config.error if c.config.error
                          else ""),
    ) + _plan(c)


def _bus_line(c):
    b = c.bus
    if b is None:
        return "bus     ERROR %s" % (c.bus_error or "no bus")
    st = b.stats()
    return "bus     transactions %d   errors %d   retries %d   stops %d" % (
        st["transactions"], st["errors"], st["retries"], st["stops"])


def _plan(c):
    pl = c.planner
    if pl is None:
        return ()
    m = pl.autonomy_min
    return ("plan    price %d mEUR/kWh   grid charge %d W   floor %d %%   v2h %s   backup "
            "%d h %02d min   car out today %d Wh   schedule %d" % (
                pl.price, pl.force_w, pl.floor_pct, _yn(pl.v2h), m // 60, m % 60, pl.thru_wh,
                pl.tariff.n if pl.tariff is not None else 0),)

def _meters(ctx, args):
    m = ctx.meter
    now = ctx.clock.now_ms()
    ph = "  ".join("L%d %+6d W %6d mA" % (i + 1, m.ph_w[i], m.ph_ma[i])
                   for i in range(len(m.ph_w)))
    return (
        "valid %s   window %d   updated %s   flags 0x%04x" % (
            _yn(m.valid), m.seq, _age(now, m, m.valid), m.flags),
        "grid %+d W   house %d W" % (m.grid_w, m.house_w),
        "voltage %d.%03d V   frequency %d.%03d Hz   rocof %d mHz/s" % (
            m.v_mv // 1000, m.v_mv % 1000, m.f_millihz // 1000, m.f_millihz % 1000, m.rocof_mhz_s),
        ph,
    )

def _bus(ctx, args):
    c = ctx
    ch, inv, n = c.charger, c.inverter, c.counters
    now = c.clock.now_ms()
    lines = [
        "charger  online %s   updated %s   state %d   fault %d" % (
            _yn(ch.online), _age(now, ch, ch.online), ch.state, ch.fault),
        "         power %+d W   setpoint %+d W   min %d W   max +%d/-%d W   grid ok %s" % (
            ch.power_w, ch.setpoint_w, ch.min_w, ch.max_charge_w, ch.max_discharge_w,
            _yn(ch.grid_ok)),
        "inverter online %s   updated %s   pv %d W   battery %+d W %d %%" % (
            _yn(inv.online), _age(now, inv, inv.online), inv.pv_w, inv.batt_w, inv.batt_soc_pct),
        "         export limit %d W   grid ok %s" % (inv.export_limit_w, _yn(inv.grid_ok)),
        "modbus   ok %d   errors %d" % (n.modbus_ok, n.modbus_errors),
        _bus_line(c),
    ]
    b = c.bus
    if b is not None:
        st = b.stats()
        lines.append("         stop %s   longest transaction %d us   longest step %d us" % (
            _STOP[st["stop_state"]], st["busy_us_max"], st["step_us_max"]))
    return lines

def _safety(ctx, args):
    p = ctx.permits
    out = (
        "state %s   reason %s   grid %s" % (_name(ctx.state_names, p.state),
                                            _name(ctx.safety_reasons, p.reason), _grid(p)),
        "export %s   discharge %s   charge %s   island %s   limit %d W" % (
            _yn(p.export), _yn(p.discharge), _yn(p.charge), _yn(p.island), p.limit_w),
    )
    fault = ctx.config.fault
    if fault:  # why FAULT/config is latched: fix the file, then restart
        out += ("config fault: %s" % fault,)
    return out

def _mqtt(ctx, args):
    cl = ctx.client
    if cl is None:
        return ("mqtt off",)
    return (
        "%s   broker %s:%d   connects %d   attempts %d" % (
            _link(cl), cl.cfg["host"] or "(no host set)",
            cl.cfg["port"], cl.connects, cl.attempts),
        "sent %d   received %d   queued %d   dropped %d" % (
            cl.sent, cl.received, cl.queued(), cl.drops),
        "last error: %s" % (cl.last_error or "none"),
    )

def _config(ctx, args):
    cfg = ctx.config
    sub = args[0].lower() if args else ""
    if sub == "get" and len(args) <= 2:
        return _config_get(ctx, cfg, args[1] if len(args) == 2 else None)
    if sub == "set" and len(args) >= 3:
        name = args[1]
        v = cfg.set(name, " ".join(args[2:]), text=True)
        sec, key, _ = cfg.spec(name)
        when = "applied now" if cfg.is_live(sec, key) else "applies at the next restart"
        return ("%s = %s (%s; saved to flash within seconds)" % (name, _fmt(v), when),)
    if sub == "save" and len(args) == 1:
        r = cfg.save()
        if r == "deferred":
            return ("deferred: island backup or the car discharging; saved once it ends",)
        return ("saved to %s" % cfg.path,)
    return ("usage: config get [name] | config set NAME VALUE | config save",)

def _config_get(ctx, cfg, name):
    if name is not None and "." in name:
        sec, key, _ = cfg.spec(name)
        return ("%s = %s" % (name, _show(key, cfg.data[sec][key])),)
    if name is not None and name not in cfg.data:
        raise ConfigError("%s: no such section; sections: %s" % (
            name, ", ".join(sorted(cfg.data))))
    out = []
    for sec in sorted(cfg.data) if name is None else (name,):
        d = cfg.data[sec]
        for k in sorted(d):
            out.append("%s.%s = %s" % (sec, k, _show(k, d[k])))
    return out

def _log(ctx, args):
    n = 10
    if args:
        try:
            n = int(args[0])
        except ValueError:
            raise ConfigError("log: expected a number of lines, got %r" % args[0][:20])
        if not 1 <= n <= 200:
            raise ConfigError("log: number of lines must be 1..200")
    log = ctx.log
    now = ctx.clock.now_ms()
    out = ["%8d ms ago  %s  %s" % (ticks_diff(now, t), lv, msg) for t, lv, msg in log.entries(n)]
    return out or ("log is empty",)


def _fmt(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return repr(v) if isinstance(v, str) else str(v)


def _show(key, v):
    return "***" if is_secret(key) and v else _fmt(v)


_COMMANDS = {
    "help": _help,
    "?": _help,
    "status": _status,
    "meters": _meters,
    "bus": _bus,
    "safety": _safety,
    "mqtt": _mqtt,
    "config": _config,
    "log": _log,
}
