# Commands over MQTT: one topic, JSON objects, whitelisted keys, bounded values.
#
# A command is a JSON object such as {"id": 7, "mode": "v1g", "soc_reserve_pct": 40}.
# Every command gets one reply: {"id": 7, "result": "accepted", "applied": {...}}
# or {"id": 7, "result": "rejected", "reason": "soc_reserve_pct: 120 is above the
# maximum 100"}. All keys are checked before anything is applied (all or nothing).
# Types and bounds come from the owning module's SCHEMA, so the command path can
# never set a value the config file could not hold. Safety parameters are not in
# the whitelist and a whitelist entry that points into a read-only section is
# refused when the handler is built: they cannot be written over MQTT.
# Accepted changes go to the live config through the `apply` callback; actions
# (stop_now) through their own callbacks. This module never touches safety.
import json

from gateway.clock import ticks_diff
from gateway.schema import ConfigError, check
from micropython import const

SCHEMA = {
    "rate_burst": (5, 1, 50),  # commands accepted back to back
    "rate_interval_ms": (2000, 100, 60000),  # then one more per interval
}

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


class Commands:
    """cfg: the validated "commands" section. schemas: {section: SCHEMA}.
    data: the live config {section: dict} (for cross-checks and current values).
    apply(changes): applies a list of validated (section, key, value).
    actions: {"stop_now": fn} - a missing action is rejected as unsupported.
    """

    def __init__(self, cfg, schemas, data, apply, actions=None, writable=None, log=None):
        self.cfg = cfg
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
        self._budget = cfg["rate_burst"] * cfg["rate_interval_ms"]
        self._t = None
        self._cid = None  # id of the command being handled, echoed in the reply
        self.accepted = 0
        self.rejected = 0

    def _rate_ok(self, now_ms):
        iv = self.cfg["rate_interval_ms"]
        cap = self.cfg["rate_burst"] * iv
        if self._t is not None:
            el = ticks_diff(now_ms, self._t)
            if el > 0:
                self._budget = self._budget + el if self._budget + el < cap else cap
        self._t = now_ms
        if self._budget >= iv:
            self._budget -= iv
            return True
        return False

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
            reply = {"result": "accepted", "applied": applied}
            ok = True
        if self._cid is not None:
            reply["id"] = self._cid
        return ok, json.dumps(reply)

    def _handle(self, payload, now_ms, retained):
        if retained:
            raise ConfigError("retained command ignored: publish commands without retain")
        if payload is None or len(payload) > MAX_PAYLOAD:
            raise ConfigError("payload longer than %d bytes" % MAX_PAYLOAD)
        if not self._rate_ok(now_ms):
            raise ConfigError("rate limited: at most %d commands, then one per %d ms"
                              % (self.cfg["rate_burst"], self.cfg["rate_interval_ms"]))
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
        return self._check_apply(obj, sorted(k for k in obj if k != "id"))

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
                ro = self._read_only(k)
                if ro:
                    raise ConfigError("%s: %s parameter, read-only over MQTT" % (k, ro))
                raise ConfigError("%s: unknown key; known: %s" % (_short(k), ", ".join(self._known())))
            sec, _, key = target.partition(".")
            sch = self.schemas.get(sec)
            if sch is None or key not in sch:
                raise ConfigError("%s: not supported by this firmware" % k)
            changes.append((sec, key, check(k, v, sch[key])))
        self._cross_check(changes)
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

    def _cross_check(self, changes):
        """soc_reserve_pct may not exceed soc_max_pct (new or current values)."""
        ctl = self.data.get("control")
        if ctl is None:
            return
        res = ctl.get("soc_reserve_pct")
        mx = ctl.get("soc_max_pct")
        for sec, key, v in changes:
            if sec == "control" and key == "soc_reserve_pct":
                res = v
            elif sec == "control" and key == "soc_max_pct":
                mx = v
        if res is not None and mx is not None and res > mx:
            raise ConfigError("soc_reserve_pct (%d) must not exceed soc_max_pct (%d)" % (res, mx))

    def _known(self):
        return sorted(list(self.writable) + [a for a in ACTIONS if a in self.actions])


def _short(k):
    return repr(k) if len(k) <= 24 else repr(k[:24]) + "..."
