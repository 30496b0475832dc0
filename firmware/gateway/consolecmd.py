# The serial console's commands (see gateway/console.py, which imports this
# module for each command line and unloads it afterwards to keep the heap free).
# Each command takes (console, args) and returns the lines to print.
from gateway.clock import ticks_diff
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
    "  config set NAME VALUE  change a live setting (validated, not yet saved)",
    "  config save            write the settings to flash",
    "  log [n]                the last n log lines (default 10)",
    "  help                   this list",
)


def run(con, words):
    cmd, args = words[0].lower(), words[1:]
    f = _COMMANDS.get(cmd)
    try:
        if f is None:
            from gateway import fieldcmd  # provisioning, time, network, updates

            r = fieldcmd.run(con.ctx, cmd, args)
            return r if r is not None else (
                "error: unknown command %r; type 'help' for the list" % cmd[:20],)
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


def _age(now, rec):
    if not getattr(rec, "t_ms", 0) and not getattr(rec, "valid", True):
        return "never"
    return "%d ms ago" % ticks_diff(now, rec.t_ms)


def _name(ctx, table, code):
    t = (getattr(ctx, "names", None) or {}).get(table)
    s = name_of(t, code)
    return str(code) if s == code else "%s (%d)" % (s, code)


def _help(ctx, args):
    from gateway.fieldcmd import HELP as FIELD

    return HELP[:-1] + FIELD + HELP[-1:]


def _status(ctx, args):
    c = ctx
    m, ch, inv, p, sp, n = c.meter, c.charger, c.inverter, c.permits, c.setpoints, c.counters
    ctl = c.config.data.get("control", {})
    cl = getattr(c, "client", None)
    lag = getattr(c, "lag", None)
    return (
        "grid    %+6d W   house %6d W   pv %6d W   meter %s" % (
            m.grid_w, m.house_w, inv.pv_w, "ok" if m.valid else "INVALID"),
        "car     %+6d W   setpoint %+6d W   soc %3d %%   plugged %s   session %s" % (
            ch.power_w, sp.ev_w, ch.soc_pct, _yn(ch.plugged), _yn(ch.session)),
        "battery %+6d W   soc %3d %%" % (inv.batt_w, inv.batt_soc_pct),
        "safety  %s   export %s   discharge %s   island %s" % (
            _name(ctx, "safety", p.state), _yn(p.export), _yn(p.discharge), _yn(p.island)),
        "control mode %s   reserve %s %%   max %s %%   reason %s" % (
            ctl.get("mode", "-"), ctl.get("soc_reserve_pct", "-"), ctl.get("soc_max_pct", "-"),
            _name(ctx, "reason", sp.reason)),
        "mqtt    %s   drops %d   modbus errors %d   loop lag max %s ms" % (
            _link(cl), n.mqtt_drops,
            n.modbus_errors, lag.max_ms if lag else "-"),
        "config  %s%s" % (c.config.source, "   ERROR " + c.config.error if c.config.error
                          else ""),
    ) + _plan(c)


def _plan(c):
    pl = getattr(c, "planner", None)
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
            _yn(m.valid), m.seq, _age(now, m), m.flags),
        "grid %+d W   house %d W" % (m.grid_w, m.house_w),
        "voltage %d.%03d V   frequency %d.%03d Hz   rocof %d mHz/s" % (
            m.v_mv // 1000, m.v_mv % 1000, m.f_mhz // 1000, m.f_mhz % 1000, m.rocof_mhz_s),
        ph,
    )

def _bus(ctx, args):
    c = ctx
    ch, inv, n = c.charger, c.inverter, c.counters
    now = c.clock.now_ms()
    lines = [
        "charger  online %s   updated %s   state %d   fault %d" % (
            _yn(ch.online), _age(now, ch), ch.state, ch.fault),
        "         power %+d W   setpoint %+d W   min %d W   max +%d/-%d W   grid ok %s" % (
            ch.power_w, ch.setpoint_w, ch.min_w, ch.max_charge_w, ch.max_discharge_w,
            _yn(ch.grid_ok)),
        "inverter online %s   updated %s   pv %d W   battery %+d W %d %%" % (
            _yn(inv.online), _age(now, inv), inv.pv_w, inv.batt_w, inv.batt_soc_pct),
        "         export limit %d W   grid ok %s" % (inv.export_limit_w, _yn(inv.grid_ok)),
        "modbus   ok %d   errors %d" % (n.modbus_ok, n.modbus_errors),
    ]
    bus = getattr(c, "bus", None)
    if bus is not None and hasattr(bus, "stats"):
        lines.extend(bus.stats())
    return lines

def _safety(ctx, args):
    p = ctx.permits
    return (
        "state %s   reason %s" % (_name(ctx, "safety", p.state),
                                  _name(ctx, "safety_reason", p.reason)),
        "export %s   discharge %s   charge %s   island %s   limit %d W" % (
            _yn(p.export), _yn(p.discharge), _yn(p.charge), _yn(p.island), p.limit_w),
    )

def _mqtt(ctx, args):
    cl = getattr(ctx, "client", None)
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
        return ("%s = %s (live; 'config save' keeps it after a restart)" % (name, _fmt(v)),)
    if sub == "save" and len(args) == 1:
        r = cfg.save()
        if r == "deferred":
            return ("deferred: export protection is active; saved once it ends",)
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
