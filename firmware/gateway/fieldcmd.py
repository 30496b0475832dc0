# Console commands for a board in the field: provisioning (Wi-Fi, MQTT, time zone),
# network and time status, updates. gateway/consolecmd.py hands every command it does
# not know to run() here. Each takes (ctx, args) and returns the lines to print.
# Settings are applied live and saved at once: config.json atomically (gateway/config.py)
# and secrets.json the same way (write .tmp, read back, old file to .bak, .tmp into
# place); secrets are never printed, only masked.
import json

HELP = (
    "  wifi SSID PASSWORD     join a Wi-Fi network (saved; password masked)",
    "  wifi                   network state, address, signal",
    "  broker HOST [PORT [USER [PASSWORD]]]  the MQTT broker (saved; restart to connect)",
    "  tz POSIX_TZ            time zone, e.g. CET-1CEST,M3.5.0,M10.5.0/3 (saved)",
    "  time [sync]            clock state; 'sync' asks the NTP server now",
    "  ota URL | ota          update from an http:// URL (signed bundle) | update state",
    "  counters               today's and lifetime energy, saves to flash",
)


def mask(s):
    return "(not set)" if not s else "*" * 8 + " (%d characters)" % len(s)


def save_secret(cfg, sec, key, value):
    """Set one secret live and write secrets.json atomically."""
    fs = cfg.fs
    path = cfg.secrets_path
    cur = {}
    for p in (path, path + ".tmp", path + ".bak"):
        if fs.exists(p):
            try:
                cur = json.loads(fs.read(p))
                if isinstance(cur, dict):
                    break
            except (OSError, ValueError):
                cur = {}
    if not isinstance(cur.get(sec), dict):
        cur[sec] = {}
    cur[sec][key] = value
    data = json.dumps(cur).encode() + b"\n"
    tmp, bak = path + ".tmp", path + ".bak"
    fs.remove(tmp)
    fs.write(tmp, data)
    if fs.read(tmp) != data:
        fs.remove(tmp)
        raise OSError(5, "%s: read-back differs after write" % tmp)
    if fs.exists(path):
        fs.remove(bak)
        fs.rename(path, bak)
    fs.rename(tmp, path)
    cfg.data[sec][key] = value
    for fn in cfg.listeners:
        fn(((sec, key, value),))


def _save(cfg):
    r = cfg.save()
    return "saved" if r == "saved" else "save waits: export protection active"


def _wifi(ctx, args):
    cfg = ctx.config
    net = ctx.net
    if not args:
        if net is None:
            return ("network: handled by the host (simulated board)",)
        return tuple(net.status_lines())
    if len(args) < 2:
        return ("error: wifi SSID PASSWORD (an SSID with spaces: use tools/provision)",)
    ssid, pw = args[0], " ".join(args[1:])
    if not 1 <= len(ssid) <= 32:
        return ("error: SSID must be 1-32 characters",)
    if not 8 <= len(pw) <= 63:
        return ("error: a WPA2 password has 8-63 characters",)
    cfg.set("net.ssid", ssid)
    if cfg.data["net"]["mode"] == "none":
        cfg.set("net.mode", "wifi")
    save_secret(cfg, "net", "password", pw)
    return ("wifi: ssid %s, password %s; config %s; connecting" % (ssid, mask(pw), _save(cfg)),)


def _mqtt(ctx, args):
    cfg = ctx.config
    if not args:
        return ("error: broker HOST [PORT [USER [PASSWORD]]]",)
    cfg.set("mqtt.host", args[0])
    if len(args) > 1:
        cfg.set("mqtt.port", args[1], True)
    if len(args) > 2:
        cfg.set("mqtt.user", args[2])
    if len(args) > 3:
        save_secret(cfg, "mqtt", "password", " ".join(args[3:]))
    d = cfg.data["mqtt"]
    return ("mqtt: %s:%d user %s password %s; config %s (restart to connect)" % (
        d["host"], d["port"], d["user"] or "(none)", mask(d["password"]), _save(cfg)),)


def _tz(ctx, args):
    from gateway.tz import TZ

    cfg = ctx.config
    if len(args) != 1:
        return ("time zone now: %s" % cfg.data["time"]["tz"],
                "usage: tz CET-1CEST,M3.5.0,M10.5.0/3 (UK: GMT0BST,M3.5.0/1,M10.5.0)")
    z = TZ(args[0])  # TZError (a ValueError) names the problem
    cfg.set("time.tz", args[0])  # the gateway's listener applies it (gateway/fieldwire.py)
    return ("time zone %s (standard %s %+d min%s); config %s" % (
        args[0], z.std_name, z.std_off // 60,
        (", daylight %s %+d min" % (z.dst_name, z.dst_off // 60)) if z.dst_name else "",
        _save(cfg)),)


def _time(ctx, args):
    s = ctx.sntp
    if s is None:
        return ("time: no clock service",)
    if args and args[0] == "sync":
        s.wake = True
        return ("time: sync requested from %s" % s.cfg["server"],)
    t = s.now_s()
    lines = ["time: %s; server %s; syncs %d, failures %d; last offset %d ms, rtt %d ms" % (
        "synced" if s.synced else "NOT SET (waiting for the first sync)", s.cfg["server"],
        s.syncs, s.failures, s.offset_ms, s.rtt_ms)]
    if t >= 0:
        from gateway.tz import civil_from_days

        z = ctx.tz
        lt = z.local(t) if z is not None else t
        y, mo, d = civil_from_days(lt // 86400)
        sec = lt % 86400
        lines.append("local %04d-%02d-%02d %02d:%02d:%02d %s" % (
            y, mo, d, sec // 3600, sec // 60 % 60, sec % 60, z.name(t) if z else "UTC"))
    if s.last_error:
        lines.append("last error: %s" % s.last_error)
    return tuple(lines)


def _ota(ctx, args):
    up = ctx.ota
    if up is None:
        return ("ota: this board has no update slots",)
    if args:
        err = up.start(args[0])
        if err:
            return ("error: %s" % err,)
        return ("ota: downloading %s in the background ('ota' shows progress)" % args[0],)
    lines = ["ota: %s, %d bytes; last: %s %s %s" % (
        up.state, up.progress, up.version or "-", up.result or "-", up.reason or "")]
    g = up.gate
    if g is not None and g.state == "pending":
        lines.append("on trial: %s" % (g.why or "healthy so far"))
    p = ctx.persist
    if p is not None:
        for o in p.ota:
            lines.append("  %s %s %s" % (o["v"], o["result"], o["reason"]))
    return tuple(lines)


def _counters(ctx, args):
    p = ctx.persist
    if p is None:
        return ("counters: not kept on this board",)
    c = ctx.counters
    lines = ["%-10s %10s %12s" % ("Wh", "today", "lifetime")]
    for k in ("import_wh", "export_wh", "ev_in_wh", "ev_out_wh", "pv_wh"):
        lines.append("%-10s %10d %12d" % (k[:-3], getattr(c, k), p.lifetime(k)))
    lines.append("charger starts %d; %s; flash saves %d (+%d deferred), every %d s%s" % (
        p.charger_starts(), "restored" if p.restored else "waiting for the clock",
        p.saves, p.deferred, p.cfg["interval_s"], ("; " + p.error) if p.error else ""))
    return tuple(lines)


COMMANDS = {"counters": _counters, "wifi": _wifi, "broker": _mqtt, "tz": _tz, "time": _time, "ota": _ota}


def run(ctx, cmd, args):
    """The lines for `cmd`, or None when it is not a field command."""
    f = COMMANDS.get(cmd)
    if f is None:
        return None
    return f(ctx, args)


def unprovisioned_hint(cfg):
    """What to type on a board without network settings (None when it has them)."""
    n = cfg.data.get("net")
    if n is None or n["mode"] == "eth" or (n["mode"] == "wifi" and n["ssid"]):
        return None
    return ("not provisioned: type  wifi YOUR-SSID YOUR-PASSWORD  then  broker BROKER-IP  and  "
            "tz CET-1CEST,M3.5.0,M10.5.0/3  (or run tools/provision on a PC)")
