# The field services of a running gateway, started by gateway/wiring.py (one call):
# network (netmgr), time (sntp + tz), persistent counters (persist), updates (ota),
# the provisioning hint, and their MQTT topics:
#   <root>/field       {"time": .., "net": .., "persist": .., "ota": ..} every 60 s
#   <root>/ota         each update outcome {"version", "result", "reason"} (retained)
#   <root>/ota/set     an http:// URL: start an update (QoS 1, not retained)
# It sets gw.net, gw.sntp, gw.tz, gw.persist, gw.ota and gw.wall() (UTC s since 2000 and
# the local time of day, or (-1, 0) before the first sync) for the plan service.
from gateway.clock import ticks_diff

HINT_PERIOD_MS = 60000


class HostTime:
    """The simulated board's clock: the host's, set from the start (the unix port's
    time.time() is the host clock). GATEWAY_NTP=host:port runs real SNTP instead."""

    synced = True
    syncs = 0
    failures = 0
    offset_ms = 0
    rtt_ms = 0
    last_error = None
    wake = False

    def __init__(self, cfg):
        self.cfg = cfg

    def now_s(self):
        import time

        from gateway.tariff import EPOCH_2000

        t = int(time.time())
        if time.gmtime(0)[0] == 1970:
            t -= EPOCH_2000
        return t

    @property
    def last_sync_s(self):
        return self.now_s()

    def state(self):
        return {"synced": True, "source": "host", "syncs": 0, "failures": 0, "offset_ms": 0,
                "rtt_ms": 0, "last_sync_s": self.now_s(), "error": None}


def _env(name):
    import os

    return os.getenv(name) if hasattr(os, "getenv") else None


def _network(gw):
    board = gw.board
    cfg = gw.config.data["net"]
    if board.spec.get("port") != "esp32":
        from gateway.ports import sim_net

        return sim_net.open_link(board, cfg)
    from gateway.netmgr import NetManager
    from gateway.ports import esp32_net

    link = None
    if cfg["mode"] != "none":
        try:
            link = esp32_net.open_link(board, cfg)
        except (ValueError, OSError) as e:
            gw.log.error("net: %s" % e)
    if link is None:
        return None
    nm = NetManager(cfg, link, gw.clock, gw.log, busy=gw.flash_busy)
    gw.extra_services.append(("net", nm.run))
    return nm


def _time(gw, net):
    from gateway.tz import TZ, TZError

    data = gw.config.data["time"]
    try:
        gw.tz = TZ(data["tz"])
    except TZError as e:
        gw.log.error("config: %s; local time = UTC" % e)
        gw.tz = TZ("UTC0")
    ntp = _env("GATEWAY_NTP")
    if gw.board.spec.get("port") == "sim" and not ntp:
        gw.sntp = HostTime(data)
        return
    from gateway.sntp import Sntp

    if ntp:  # tests: a real NTP server on the host
        host, _, port = ntp.rpartition(":")
        data["server"], data["port"] = host, int(port)
    gw.sntp = Sntp(data, gw.clock, net, log=gw.log)
    if net is not None and hasattr(net, "want"):
        net.want(data["server"], data["port"])
    gw.extra_services.append(("time", gw.sntp.run))


def local_day(gw):
    """The local day number (days since 2000) or -1 before the first sync."""
    t = gw.sntp.now_s()
    if t < 0:
        return -1
    return gw.tz.local(t) // 86400


def wall(gw):
    """(UTC s since 2000, local time of day s), or (-1, 0) before the first sync."""
    t = gw.sntp.now_s()
    if t < 0:
        return -1, 0
    return t, gw.tz.local(t) % 86400


def _persist(gw):
    from gateway.persist import FileRtc, Persist

    st = gw.board.storage
    base = (st + "/") if st else ""
    rtc = None
    if gw.board.spec.get("port") == "esp32":
        from gateway.ports.esp32_ota import RtcMemory

        rtc = RtcMemory()
    elif st:
        rtc = FileRtc(base + "rtcmem.bin")
    p = Persist(gw.config.data["persist"], gw.counters, base + "state.json", rtc=rtc,
                busy=gw.flash_busy, log=gw.log)
    try:
        src = p.load()
    except (OSError, ValueError) as e:
        src = None
        p.error = str(e)
    if p.error:
        gw.log.warning("persist: %s" % p.error)
    if src:
        gw.log.info("persist: counters from %s (restored at the first time sync)" % src)
    gw.persist = p

    async def run():
        await p.run(gw.clock, lambda: local_day(gw))

    gw.extra_services.append(("persist", run))


def _topics(gw):
    from gateway.util import Topics

    t = gw.config.data["telemetry"]
    return Topics(t["prefix"], t["node_id"] or gw.board.name, t["discovery_prefix"]).root


def field_json(gw):
    import json

    r = {"time": gw.sntp.state(), "net": gw.net.state_record() if gw.net else None,
         "persist": gw.persist.state()}
    up = gw.ota
    if up is not None:
        r["ota"] = up.state_record()
    t = gw.sntp.now_s()
    if t >= 0:
        r["time"]["local_offset_min"] = gw.tz.offset_s(t) // 60
        r["time"]["zone"] = gw.tz.name(t)
    return json.dumps(r)


def attach(gw):
    """Start the field services on `gw` (after wiring built the bus and telemetry) and
    show them to the console and telemetry through gw.view."""
    gw.net = _network(gw)
    _time(gw, gw.net)
    gw.wall = lambda: wall(gw)
    _persist(gw)

    def on_change(changes):  # a new time zone applies at once (console `tz`)
        from gateway.tz import TZ

        for sec, key, value in changes:
            if sec == "time" and key == "tz":
                gw.tz = gw.view.tz = TZ(value)

    gw.config.listeners.append(on_change)
    root = _topics(gw)
    client = gw.client

    def publish(rec):
        if client is not None:
            import json

            client.post(root + "/ota", json.dumps(rec), True, 1)

    gw.ota = None
    if gw.board.spec.get("port") == "esp32" or _env("GATEWAY_OTA_DIR"):
        from gateway import ota  # only where there are slots: its objects cost heap

        ota.attach(gw, gw.persist, publish)
    v = gw.view
    v.net, v.sntp, v.tz, v.ota, v.persist = gw.net, gw.sntp, gw.tz, gw.ota, gw.persist
    # the MQTT client calls its on_message for every topic: route <root>/ota/set here and
    # the rest to telemetry (test stand-ins without the attribute get no OTA topic)
    if client is not None and hasattr(client, "on_message"):
        set_topic = root + "/ota/set"
        client.subscribe(set_topic, 1)
        inner = client.on_message

        def on_message(topic, payload, retained):
            if topic == set_topic:
                if retained or gw.ota is None:
                    return  # a retained URL would update again after every boot
                err = gw.ota.start(bytes(payload).decode())
                gw.log.add(2 if err else 1, "ota command: %s" % (err or "started"))
                return
            if inner is not None:
                inner(topic, payload, retained)

        client.on_message = on_message

    async def field_service():
        import asyncio

        from gateway.fieldcmd import unprovisioned_hint

        clock = gw.clock
        show_hint = gw.board.spec.get("port") == "esp32" or _env("GATEWAY_HINT") == "1"
        last_pub = last_hint = clock.now_ms() - HINT_PERIOD_MS
        while True:
            now = clock.now_ms()
            if ticks_diff(now, last_hint) >= HINT_PERIOD_MS:
                last_hint = now
                hint = unprovisioned_hint(gw.config) if show_hint else None
                if hint:
                    gw.out(hint)
            if client is not None and ticks_diff(now, last_pub) >= 60000:
                last_pub = now
                client.post(root + "/field", field_json(gw), False, 0)
            await asyncio.sleep_ms(1000)

    gw.extra_services.append(("field", field_service))
