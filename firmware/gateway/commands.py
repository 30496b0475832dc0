# Commands over MQTT: one topic, JSON objects, whitelisted keys, bounded values.
#
# A command is a JSON object such as {"id": 7, "mode": "v1g", "soc_reserve_pct": 40}.
# Every command gets one reply: {"id": 7, "result": "accepted", "applied": {...},
# "at_restart": []} (the applied keys that take effect only at the next start; every
# whitelisted key is live today) or {"id": 7, "result": "rejected", "reason":
# "soc_reserve_pct: 120 is above the maximum 100"}. All keys are checked before anything
# is applied (all or nothing). Types, bounds and the rules across keys come from the
# owning module's SCHEMA and rule (gateway.schema, the one validator), so the command
# path can never set a value the config file could not hold. Safety parameters are not in
# the whitelist and a whitelist entry that points into a read-only section is
# refused when the handler is built: they cannot be written over MQTT.
# Accepted changes go to the live config through the `apply` callback; actions
# (stop_now) through their own callbacks. This module never touches safety.
#
# Rate budgets (token buckets, docs/telemetry.md): every message is charged to the
# general budget, except a command that only says {"stop_now": true} (plus an id):
# that one has its own budget, so junk or other commands cannot exhaust it, and a
# stop that would still change something (mode not yet "off") is obeyed even then.
# Ages saturate: a bucket that is full forgets its time stamp, tick() refills it
# between commands, and a negative tick difference (6.2..12.4 idle days on the
# ESP32's 2**30 ms ticks) counts as "long ago", never as "just now".
import json

from gateway.clock import saturate_age, ticks_diff
from gateway.schema import ConfigError, check, check_changes
from micropython import const

SCHEMA = {
    "rate_burst": (5, 1, 50),  # commands accepted back to back
    "rate_interval_ms": (2000, 100, 60000),  # then one more per interval
    "stop_burst": (5, 1, 50),  # "stop now" commands back to back (their own budget)
    "stop_interval_ms": (1000, 100, 60000),  # then one more per interval
}
LIVE = tuple(SCHEMA)  # read from the live section at each command

MAX_PAYLOAD = const(256)  # bytes
_MAX_KEYS = const(8)
_MAX_ID = const(32)  # characters of a string id

# command key -> "section.key" of the setting it changes
WRITABLE = {
    "mode": "control.mode",
    "soc_reserve_pct": "control.soc_reserve_pct",
    "soc_max_pct": "control.soc_max_pct",
    "period_s": "telemetry.period_s",
    # the plan (docs/planning.md): daily departure (local minute of day, -1 = none), the
    # SoC wanted then, and cheap-hour grid charging
    "departure_min": "plan.departure_min",
    "departure_soc_pct": "plan.departure_soc_pct",
    "grid_charge": "plan.grid_charge",
}
ACTIONS = ("stop_now",)
READ_ONLY_SECTIONS = ("safety", "mqtt", "commands")
# installer settings: the console and the config file only, never MQTT
INSTALLER = ("control.soc_reserve_min_pct",)


class Commands:
    """cfg: the validated "commands" section. schemas: {section: SCHEMA}.
    data: the live config {section: dict} (for cross-checks and current values).
    apply(changes): applies a list of validated (section, key, value).
    actions: {"stop_now": fn} - a missing action is rejected as unsupported.
    """

    def __init__(self, cfg, schemas, data, apply, actions=None, writable=None, log=None,
                 rules=None, live=None):
        self.cfg = cfg
        if rules is None:
            from gateway.control_cfg import rule

            rules = {"control": rule}
        self.rules = rules  # {section: rule(d)} (Config.rules)
        self.live = live  # {section: LIVE keys} (Config.live); None: all live
        self.schemas = schemas
        self.data = data
        self.apply = apply
        self.actions = actions or {}
        self.log = log
        self.writable = {}
        for k, target in (writable or WRITABLE).items():
            sec = target.partition(".")[0]
            if sec in READ_ONLY_SECTIONS:
                raise ValueError("command %s -> %s: section is read-only over MQTT" % (k, target))
            self.writable[k] = target
        # token buckets in ms of budget: [level, time stamp or None when full]
        self._gen = [cfg["rate_burst"] * cfg["rate_interval_ms"], None]
        self._stop = [self._c("stop_burst") * self._c("stop_interval_ms"), None]
        self._cid = None  # id of the command being handled, echoed in the reply
        self._restart = []
        self.accepted = 0
        self.rejected = 0
        self.limited = 0  # refused by a rate budget
        self.retained = 0  # retained commands ignored

    def _c(self, key):
        """A setting of this section; its default where a caller's dict lacks it."""
        v = self.cfg.get(key)
        return SCHEMA[key][0] if v is None else v

    def _refill(self, b, now_ms, burst, iv):
        cap = burst * iv
        if b[1] is not None:
            # the one saturating age (gateway.clock): a stamp from before the 2**30 ms
            # tick wrap reads as "long ago", never as fresh (cap < 2**29)
            el = ticks_diff(now_ms, saturate_age(now_ms, b[1], cap))
            b[0] = b[0] + el if el < cap - b[0] else cap
            b[1] = now_ms
        if b[0] >= cap:
            b[0] = cap
            b[1] = None  # full: no time stamp left to wrap
        return iv

    def _take(self, b, now_ms, burst, iv):
        self._refill(b, now_ms, burst, iv)
        if b[0] >= iv:
            b[0] -= iv
            if b[1] is None:
                b[1] = now_ms
            return True
        return False

    def tick(self, now_ms):
        """Refill the budgets; call at least once a day (telemetry does, every period)
        so that no time stamp is ever older than half the tick window."""
        c = self.cfg
        self._refill(self._gen, now_ms, c["rate_burst"], c["rate_interval_ms"])
        self._refill(self._stop, now_ms, self._c("stop_burst"), self._c("stop_interval_ms"))

    def _rate_ok(self, now_ms):
        c = self.cfg
        return self._take(self._gen, now_ms, c["rate_burst"], c["rate_interval_ms"])

    def _limited(self):
        self.limited += 1
        return ConfigError("rate limited: at most %d commands, then one per %d ms"
                           % (self.cfg["rate_burst"], self.cfg["rate_interval_ms"]))

    def handle(self, payload, now_ms, retained=False):
        """Validate and apply one command. Returns (accepted, reply JSON text)."""
        self._cid = None
        try:
            applied = self._handle(payload, now_ms, retained)
        except ConfigError as e:
            self.rejected += 1
            reply = {"result": "rejected", "reason": str(e)}
            ok = False
        else:
            self.accepted += 1
            reply = {"result": "accepted", "applied": applied, "at_restart": self._restart}
            ok = True
        if self._cid is not None:
            reply["id"] = self._cid
        return ok, json.dumps(reply)

    def _handle(self, payload, now_ms, retained):
        if retained:  # MQTT 3.3.1.3: only a stored message arrives with retain set
            self.retained += 1
            raise ConfigError("retained command ignored: publish commands without retain")
        # Only a payload that may be a stop is parsed before it is charged: other junk
        # costs the general budget first, and never the stop budget.
        maybe_stop = payload is not None and b"stop_now" in payload
        if not maybe_stop and not self._rate_ok(now_ms):
            raise self._limited()
        try:
            obj = self._parse(payload)
        except ConfigError:
            if maybe_stop and not self._rate_ok(now_ms):
                raise self._limited()
            raise
        keys = sorted(k for k in obj if k != "id")
        if maybe_stop:
            if keys == ["stop_now"] and obj["stop_now"] is True and "stop_now" in self.actions:
                if not self._stop_ok(now_ms):
                    raise ConfigError("rate limited: stop_now already in effect; at most %d "
                                      "stops, then one per %d ms" % (
                                          self._c("stop_burst"), self._c("stop_interval_ms")))
            elif not self._rate_ok(now_ms):
                raise self._limited()
        return self._check_apply(obj, keys)

    def _stop_ok(self, now_ms):
        """A stop within its own budget, or one that still changes something, is obeyed."""
        if self._take(self._stop, now_ms, self._c("stop_burst"), self._c("stop_interval_ms")):
            return True
        ctl = self.data.get("control")
        if ctl is None or ctl.get("mode") != "off":
            return True
        self.limited += 1
        return False

    def _parse(self, payload):
        """The command object (id checked and remembered), or ConfigError."""
        if payload is None or len(payload) > MAX_PAYLOAD:
            raise ConfigError("payload longer than %d bytes" % MAX_PAYLOAD)
        try:
            text = bytes(payload).decode()
        except UnicodeError:
            raise ConfigError("payload is not UTF-8 text")
        try:
            obj = json.loads(text)
        except Exception:  # noqa: BLE001 - ValueError on both runtimes; be sure
            raise ConfigError("payload is not valid JSON")
        if not isinstance(obj, dict):
            raise ConfigError("expected a JSON object like {\"mode\": \"v1g\"}")
        for k in obj:  # MicroPython's parser also takes {1: 2} and {"a" 1}: check, never trust
            if not isinstance(k, str):
                raise ConfigError("keys must be strings, got %s" % _short(repr(k)))
        cid = obj.get("id")
        if cid is not None:
            if not ((type(cid) is int and -(2**30) < cid < 2**30)
                    or (isinstance(cid, str) and len(cid) <= _MAX_ID)):
                raise ConfigError("id: expected an integer or a string of at most %d characters"
                                  % _MAX_ID)
        self._cid = cid
        return obj

    def _check_apply(self, obj, keys):
        if not keys:
            raise ConfigError("no command keys; known: " + ", ".join(self._known()))
        if len(keys) > _MAX_KEYS:
            raise ConfigError("more than %d keys in one command" % _MAX_KEYS)
        changes = []
        acts = []
        for k in keys:
            v = obj[k]
            if k in ACTIONS:
                if v is not True:
                    raise ConfigError("%s: expected true" % k)
                if k not in self.actions:
                    raise ConfigError("%s: not supported by this gateway" % k)
                acts.append(k)
                continue
            target = self.writable.get(k)
            if target is None:
                for t in INSTALLER:
                    if k == t or k == t.partition(".")[2]:
                        raise ConfigError("%s: installer setting, console or config file only"
                                          % k)
                ro = self._read_only(k)
                if ro:
                    raise ConfigError("%s: %s parameter, read-only over MQTT" % (k, ro))
                raise ConfigError("%s: unknown key; known: %s" % (_short(k), ", ".join(self._known())))
            sec, _, key = target.partition(".")
            sch = self.schemas.get(sec)
            if sch is None or key not in sch:
                raise ConfigError("%s: not supported by this firmware" % k)
            changes.append((sec, key, check(k, v, sch[key])))
        self._floor_check(changes)
        check_changes(self.data, self.rules, changes)
        rs = []
        if self.live is not None:
            for sec, key, _ in changes:
                if key not in self.live.get(sec, ()):
                    rs.append(key)
        self._restart = rs
        if changes:
            self.apply(changes)
        for k in acts:
            self.actions[k]()
        out = {}
        for sec, key, v in changes:
            out[key] = v
        for k in acts:
            out[k] = True
        return out

    def _read_only(self, k):
        """The read-only section a key belongs to ("safety"), or None."""
        sec, dot, key = k.partition(".")
        for s in READ_ONLY_SECTIONS:
            if (dot and sec == s) or k == s:
                return s
            sch = self.schemas.get(s)
            if sch is not None and (k in sch or (dot and key in sch)):
                return s
        return None

    def _floor_check(self, changes):
        """Over MQTT soc_reserve_pct may not go below the installer's floor
        control.soc_reserve_min_pct (the console and the config file may)."""
        ctl = self.data.get("control")
        floor = ctl.get("soc_reserve_min_pct") if ctl is not None else None
        if floor is None:
            return
        for sec, key, v in changes:
            if sec == "control" and key == "soc_reserve_pct" and v < floor:
                raise ConfigError("soc_reserve_pct: %d is below the installer's floor %d "
                                  "(control.soc_reserve_min_pct)" % (v, floor))

    def _known(self):
        return sorted(list(self.writable) + [a for a in ACTIONS if a in self.actions])


def _short(k):
    return repr(k) if len(k) <= 24 else repr(k[:24]) + "..."
