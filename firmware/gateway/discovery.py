# Home Assistant MQTT discovery: one retained config message per entity.
#
# Follows HA's documented single-component discovery (integrations/mqtt,
# "Discovery messages"): topic <prefix>/<component>/<node_id>/<object_id>/config,
# a JSON payload with unique_id, a device block (identifiers, name, model,
# sw_version), an origin block, availability_topic (payloads online/offline,
# HA's defaults) and, per entity, device_class, unit_of_measurement,
# state_class and a value_template into the one state JSON. Single-component
# messages keep each payload small; messages() builds them one at a time so
# only one (~0.5 KB) exists at once.
# Controls send JSON to the one command topic (gateway/commands.py) through
# HA's command_template / payload_press.
import json

# One entity per line, "|"-separated (one string constant keeps the module small):
# sensor:  key|name|device_class|unit|state_class|entity_category[|value_template]
# binary:  key|name|device_class|entity_category
# Empty fields are left out of the payload; the template defaults to
# "{{ value_json.<key> }}". "m" = measurement, "t" = total_increasing, "d" = diagnostic.
SENSORS = """grid_w|Grid power|power|W|m|
house_w|House power|power|W|m|
pv_w|PV power|power|W|m|
batt_w|Home battery power|power|W|m|
batt_soc|Home battery|battery|%|m|
ev_w|Car power|power|W|m|
ev_set_w|Car setpoint|power|W|m|
ev_soc|Car battery|battery|%|m|
v|Grid voltage|voltage|V|m||{{ (value_json.v_mv / 1000) | round(1) }}
f|Grid frequency|frequency|Hz|m||{{ (value_json.f_millihz / 1000) | round(2) }}
import_wh|Grid import today|energy|Wh|t|
export_wh|Grid export today|energy|Wh|t|
ev_in_wh|Car charged today|energy|Wh|t|
ev_out_wh|Car discharged today|energy|Wh|t|
pv_wh|PV today|energy|Wh|t|
reason|Why not charging or discharging||||
safety|Safety state||||
charger_starts|Charger starts|||t|d
modbus_errors|Modbus errors|||t|d
mqtt_drops|MQTT messages dropped|||t|d
lag_ms|Event loop lag|duration|ms|m|d
heap_free|Free heap|data_size|B|m|d
up_s|Uptime|duration|s|m|d
cfg_err|Configuration error||||d|{{ value_json.cfg_err or 'none' }}
backup_h|Backup autonomy|duration|h|m||{{ ((value_json.plan or {}).backup_min or 0) / 60 }}
ev_thru_wh|Car discharged today (wear)|energy|Wh|t||{{ (value_json.plan or {}).thru_wh }}
price|Import price now||EUR/kWh|m||{{ ((value_json.plan or {}).price or 0) / 1000 }}
plan_force_w|Planned grid charging|power|W|m||{{ (value_json.plan or {}).force_w }}"""

BINARY = """grid_up|Grid present|power|
island|Island (backup) mode||
plugged|Car plugged in|plug|
export_ok|Export permitted||d"""

_SC = {"m": "measurement", "t": "total_increasing"}
_CAT = {"d": "diagnostic"}


class Ids:
    """What every message shares: topics, node id, names."""

    def __init__(self, topics, node_id, name, version, model="ESP32 energy gateway"):
        self.topics = topics
        self.node = node_id
        self.device = {
            "identifiers": [node_id],
            "name": name,
            "manufacturer": "energy-gateway project",
            "model": model,
            "sw_version": version,
        }
        self.origin = {"name": "energy-gateway", "sw_version": version}


def _base(ids, key, name, component):
    t = ids.topics
    d = {
        "name": name,
        "unique_id": ids.node + "_" + key,
        "availability_topic": t.status,
        "device": ids.device,
        "origin": ids.origin,
    }
    return "%s/%s/%s/%s/config" % (t.disc, component, ids.node, key), d


def sensor(ids, line, expire_s):
    f = line.split("|", 6)  # a template may hold "|" itself: it is the last field
    key, name, dc, unit, sc, cat = f[:6]
    tpl = f[6] if len(f) > 6 else None
    sc = _SC.get(sc)
    cat = _CAT.get(cat)
    topic, d = _base(ids, key, name, "sensor")
    d["state_topic"] = ids.topics.state
    d["value_template"] = tpl or "{{ value_json.%s }}" % key
    d["expire_after"] = expire_s
    if dc:
        d["device_class"] = dc
    if unit:
        d["unit_of_measurement"] = unit
    if sc:
        d["state_class"] = sc
    if cat:
        d["entity_category"] = cat
    return topic, json.dumps(d)


def binary(ids, line, expire_s):
    key, name, dc, cat = line.split("|")
    cat = _CAT.get(cat)
    topic, d = _base(ids, key, name, "binary_sensor")
    d["state_topic"] = ids.topics.state
    d["value_template"] = "{{ 'ON' if value_json.%s else 'OFF' }}" % key
    d["payload_on"] = "ON"
    d["payload_off"] = "OFF"
    d["expire_after"] = expire_s
    if dc:
        d["device_class"] = dc
    if cat:
        d["entity_category"] = cat
    return topic, json.dumps(d)


def select(ids, key, name, options):
    topic, d = _base(ids, key, name, "select")
    d["command_topic"] = ids.topics.cmd
    d["command_template"] = '{"%s": "{{ value }}"}' % key
    d["state_topic"] = ids.topics.state
    d["value_template"] = "{{ value_json.%s }}" % key
    d["options"] = list(options)
    d["entity_category"] = "config"
    return topic, json.dumps(d)


def number(ids, key, name, lo, hi, unit):
    topic, d = _base(ids, key, name, "number")
    d["command_topic"] = ids.topics.cmd
    d["command_template"] = '{"%s": {{ value | int }}}' % key
    d["state_topic"] = ids.topics.state
    d["value_template"] = "{{ value_json.%s }}" % key
    d["min"] = lo
    d["max"] = hi
    d["step"] = 1
    d["mode"] = "box"
    d["unit_of_measurement"] = unit
    d["entity_category"] = "config"
    return topic, json.dumps(d)


def button(ids, key, name, payload):
    topic, d = _base(ids, key, name, "button")
    d["command_topic"] = ids.topics.cmd
    d["payload_press"] = payload
    return topic, json.dumps(d)


def messages(ids, control_schema, period_s, can_stop=True):
    """Yield (topic, payload) one at a time. control_schema supplies the mode
    options and the SoC bounds; controls whose setting is absent are left out."""
    expire = period_s * 3 if period_s * 3 > 30 else 30
    for line in SENSORS.split("\n"):
        yield sensor(ids, line, expire)
    for line in BINARY.split("\n"):
        yield binary(ids, line, expire)
    cs = control_schema or {}
    if "mode" in cs and isinstance(cs["mode"][1], tuple):
        yield select(ids, "mode", "Mode", cs["mode"][1])
    for key, name in (("soc_reserve_pct", "Car reserve SoC"), ("soc_max_pct", "Car max SoC")):
        if key in cs:
            _, lo, hi = cs[key]
            yield number(ids, key, name, lo, hi, "%")
    if can_stop:
        yield button(ids, "stop_now", "Stop now", '{"stop_now": true}')


def count(control_schema, can_stop=True):
    """How many messages messages() yields (for tests and the log)."""
    cs = control_schema or {}
    n = SENSORS.count("\n") + BINARY.count("\n") + 2 + (1 if can_stop else 0)
    n += 1 if "mode" in cs and isinstance(cs["mode"][1], tuple) else 0
    return n + sum(1 for k in ("soc_reserve_pct", "soc_max_pct") if k in cs)
