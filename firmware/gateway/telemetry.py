# Telemetry service: the state JSON, availability, HA discovery and the command topic.
#
# Reads the shared records (gateway/model.py) by reference and never writes
# them: one state message per period (default 5 s) is formatted from a
# snapshot taken without awaiting, so it is consistent. Publishing goes through
# the MQTT client's bounded queue (post() never blocks), so a dead broker only
# costs dropped messages, counted in Counters.mqtt_drops.
#
# Topics (root = <prefix>/<node_id>, e.g. energygw/gw1):
#   root/status     "online" / "offline", retained; "offline" is the last will
#   root/state      the state JSON (not retained)
#   root/cmd        commands in (JSON, gateway/commands.py)
#   root/cmd/reply  one reply per command
#   root/tariff     the price schedule in (JSON, retained; gateway/tariff.py); an empty
#                   payload clears it
#   <discovery_prefix>/<component>/<node_id>/<key>/config   HA discovery, retained
#   <discovery_prefix>/status       HA's birth message: "online" -> discovery again
import asyncio
import gc
import json

from gateway.clock import ticks_add, ticks_diff
from gateway.commands import Commands
from gateway.model import GRID_UNKNOWN, GRID_UP
from gateway.util import Topics, name_of, rand16, unload
from micropython import const

SCHEMA = {
    "node_id": ("", None, None),  # "" = the board's id; letters, digits, _ and - only
    "prefix": ("energygw", None, None),  # topic root is <prefix>/<node_id>
    "name": ("Energy gateway", None, None),  # device name in Home Assistant
    "period_s": (5, 1, 3600),  # state message period
    "qos": (0, 0, 1),  # QoS of state messages
    "discovery": (True, None, None),  # publish Home Assistant discovery configs
    "discovery_prefix": ("homeassistant", None, None),
}
LIVE = ("period_s", "qos")  # read from the live section at each use; the rest at start

_MAX_SLEEP_MS = const(250)
_mem_free = getattr(gc, "mem_free", lambda: -1)  # CPython (host tests) has no mem_free

_KEYS = (
    "up_s", "grid_w", "house_w", "pv_w", "batt_w", "batt_soc", "ev_w", "ev_set_w", "ev_soc",
    "plugged", "session", "ev_online", "inv_online", "v_mv", "f_millihz", "meter_ok", "meter_age_ms",
    "grid_up", "island", "export_ok", "discharge_ok", "charge_ok", "limit_w", "safety",
    "safety_code", "safety_reason", "reason", "reason_code", "mode", "soc_reserve_pct",
    "soc_max_pct", "import_wh", "export_wh", "ev_in_wh", "ev_out_wh", "pv_wh", "charger_starts",
    "modbus_errors", "modbus_ok", "mqtt_drops", "mqtt_connects", "lag_ms", "lag_max_ms",
    "heap_free", "heap_min", "cfg_err", "log_errors", "plan", "bus", "bus_err",
)
_TPL = "{" + ",".join('"%s":%%s' % k for k in _KEYS) + "}"


def _j(v):
    """JSON text for a value that is not a plain int."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return json.dumps(v)


class Telemetry:
    """ctx: the gateway's gateway.model.View (built by gateway.wiring.build()): the
    records, config, log, clock, lag, name tables, bus, planner, tariff and actions.
    default_node: the board's id, used when telemetry.node_id is "".
    client: the MQTT client; by default a gateway.mqtt.MQTTClient built from the
    "mqtt" section with the availability topic as its will.
    """

    def __init__(self, ctx, default_node="gw", version="dev", client=None):
        self.ctx = ctx
        self.version = version
        self.actions = ctx.actions
        data = ctx.config.data
        self.tcfg = t = data["telemetry"]
        self.node = t["node_id"] or default_node
        self.topics = tp = Topics(t["prefix"], self.node, t["discovery_prefix"])
        if client is None:  # the real one; tests hand in a stand-in with post()/subscribe()
            from gateway.mqtt import MQTTClient

            m = data["mqtt"]
            client = MQTTClient(m, m["client_id"] or "energygw-" + self.node, tp.status,
                                on_message=self.on_message, on_connect=self.on_connect,
                                log=ctx.log, counters=ctx.counters, clock=ctx.clock)
        self.client = client
        self.client.subscribe(tp.cmd, 1)
        self.tariff_topic = tp.root + "/tariff"
        if ctx.tariff is not None:
            self.client.subscribe(self.tariff_topic, 1)
        if t["discovery"]:
            self.client.subscribe(tp.ha_status, 0)
        cf = ctx.config
        self.commands = Commands(data["commands"], cf.schemas, data, cf.apply, self.actions,
                                 log=ctx.log, rules=cf.rules, live=cf.live)
        self._tlast = ctx.clock.now_ms()
        self._up_s = 0
        self._up_ms = 0
        self._disc_at = None
        self._state_now = False
        self._day = None
        self.heap_min = _mem_free()
        self.states = 0
        self.discovered = 0
        self.mem_errors = 0

    # ---- callbacks from the MQTT client (its task; never block) ----
    def on_connect(self):
        if self.tcfg["discovery"]:
            self._disc_at = ticks_add(self.ctx.clock.now_ms(), rand16() % 500)
        self._state_now = True

    def on_message(self, topic, payload, retained):
        now = self.ctx.clock.now_ms()
        if topic == self.topics.cmd:
            ok, reply = self.commands.handle(payload, now, retained)
            self.client.post(self.topics.reply, reply)
            self.ctx.log.add(1 if ok else 2, "command " + reply)
            if ok:
                self._state_now = True
        elif topic == self.tariff_topic:
            self._tariff(payload)
        elif topic == self.topics.ha_status and payload == b"online" and not retained:
            if self.tcfg["discovery"]:  # HA restarted: resend, jittered as HA asks
                self._disc_at = ticks_add(now, rand16() % 3000)

    def _tariff(self, payload):
        t = self.ctx.tariff
        if payload is not None and not payload:  # an empty payload clears; None is a
            t.clear()  # message too large to receive, rejected below like any bad one
            self.ctx.log.add(1, "tariff: cleared")
            return
        try:
            n = t.load_json(payload)
        except ValueError as e:  # TariffError: the old schedule stays
            self.ctx.log.add(2, "tariff rejected: %s" % e)
        else:
            self.ctx.log.add(1, "tariff: %d intervals of %d min" % (n, t.slot_s // 60))
        self._state_now = True

    # ---- the state message ----
    def _grid_up(self):
        g = self.ctx.permits.grid  # safety's judgement at its last tick
        return None if g == GRID_UNKNOWN else g == GRID_UP

    def _bus(self):
        b = self.ctx.bus
        if b is None:
            return "null"
        st = b.stats()
        return '{"tx":%d,"err":%d,"retries":%d,"stops":%d,"stop_state":%d,"step_us_max":%d}' % (
            st["transactions"], st["errors"], st["retries"], st["stops"], st["stop_state"],
            st["step_us_max"])

    def state_json(self, now):
        """The state JSON from one snapshot (no await in here)."""
        c = self.ctx
        m, ch, inv, p, sp, n = c.meter, c.charger, c.inverter, c.permits, c.setpoints, c.counters
        ctl = c.config.data["control"]
        lag = c.lag
        free = _mem_free()
        self.heap_min = min(self.heap_min, free)
        err = c.config.error
        return _TPL % (
            self._up_s, m.grid_w, m.house_w, inv.pv_w, inv.batt_w, inv.batt_soc_pct, ch.power_w,
            sp.ev_w, ch.soc_pct, _j(ch.plugged), _j(ch.session), _j(ch.online), _j(inv.online),
            m.v_mv, m.f_millihz, _j(m.valid), ticks_diff(now, m.t_ms) if m.valid else -1,
            _j(self._grid_up()), _j(p.island), _j(p.export), _j(p.discharge), _j(p.charge),
            p.limit_w, _j(name_of(c.state_names, p.state)), p.state,
            _j(name_of(c.safety_reasons, p.reason)), _j(name_of(c.control_reasons, sp.reason)),
            sp.reason, _j(ctl.get("mode")), _j(ctl.get("soc_reserve_pct")),
            _j(ctl.get("soc_max_pct")), n.import_wh, n.export_wh, n.ev_in_wh, n.ev_out_wh,
            n.pv_wh, n.charger_starts, n.modbus_errors, n.modbus_ok, n.mqtt_drops,
            self.client.connects, lag.take_window(), lag.max_ms,
            free, self.heap_min, _j(err[:80] if err else None), c.log.errors,
            c.planner.json() if c.planner is not None else "null", self._bus(),
            _j(c.bus_error),
        )

    def _roll_day(self, now):
        import time

        lt = time.localtime()
        day = lt[0] * 366 + lt[7] if lt[0] >= 2024 else self._up_s // 86400  # no RTC: uptime days
        if self._day is None:
            self._day = self.ctx.counters.day = day
        elif day != self._day:
            self._day = day
            self.ctx.counters.new_day(day)

    def tick(self, now):
        """One period: roll the day over, queue one state message."""
        el = ticks_diff(now, self._tlast)  # uptime by increments: survives the tick wrap
        self._tlast = now
        if el > 0:
            self._up_ms += el
            q = self._up_ms // 1000
            self._up_s += q
            self._up_ms -= q * 1000
        self._roll_day(now)
        self.commands.tick(now)  # the rate budgets refill between commands (tick wrap)
        self.client.post(self.topics.state, self.state_json(now), False, self.tcfg["qos"])
        self.states += 1

    async def _discover(self):
        # Imported for the few seconds it runs, then unloaded: its tables and code
        # (~6 KB on the unix port) stay out of the heap the rest of the time. If the
        # heap is too fragmented to load it, discovery waits for the next connect.
        gc.collect()
        try:
            from gateway import discovery
        except MemoryError:
            self.ctx.log.add(3, "discovery: no memory to load it; retried on reconnect")
            return

        d = self.ctx.config.schemas.get("control")
        ids = discovery.Ids(self.topics, self.node, self.tcfg["name"], self.version)
        n = 0
        try:
            for topic, payload in discovery.messages(ids, d, self.tcfg["period_s"],
                                                     "stop_now" in self.actions):
                if not await self.client.publish(topic, payload, True, 1):
                    self.ctx.log.add(2, "discovery interrupted after %d messages" % n)
                    return
                n += 1
            self.discovered += 1
            self.ctx.log.add(1, "discovery: %d configs published" % n)
        finally:
            discovery = ids = None
            unload("gateway.discovery")
            gc.collect()

    async def run(self):
        """Start the MQTT client and publish until cancelled."""
        clock = self.ctx.clock
        if not self.ctx.config.data["mqtt"]["host"]:
            self.ctx.log.add(1, "telemetry off: mqtt.host not set")
            return
        self._client_task = asyncio.create_task(self.client.run())
        nxt = clock.now_ms()
        while True:
            now = clock.now_ms()
            if (self._disc_at is not None and self.client.connected
                    and ticks_diff(now, self._disc_at) >= 0):
                self._disc_at = None
                await self._discover()
                self._state_now = True
                now = clock.now_ms()
            due = ticks_diff(now, nxt) >= 0
            if self._state_now or due:
                self._state_now = False  # extra states (connect, command) keep the schedule
                try:
                    self.tick(now)
                except MemoryError:  # skip one state rather than lose the service
                    self.mem_errors += 1
                    gc.collect()
            if due:
                per = self.tcfg["period_s"] * 1000
                nxt = ticks_add(nxt, per)
                if ticks_diff(now, nxt) >= 0 or ticks_diff(nxt, now) > per:
                    nxt = ticks_add(now, per)  # fell behind, or the period got shorter
            d = ticks_diff(nxt, clock.now_ms())
            await asyncio.sleep_ms(d if 0 < d < _MAX_SLEEP_MS else (_MAX_SLEEP_MS if d > 0 else 1))
