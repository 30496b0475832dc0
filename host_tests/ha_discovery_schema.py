"""Home Assistant's documented MQTT discovery keys, for checking our configs.

From home-assistant.io: integrations/mqtt ("Discovery messages", device and
origin blocks, availability) and the per-platform pages sensor.mqtt,
binary_sensor.mqtt, select.mqtt, number.mqtt, button.mqtt (configuration
variables, required ones marked), plus the sensor device classes and their units.
"""

COMMON = {"name", "unique_id", "object_id", "default_entity_id", "availability",
          "availability_topic", "availability_mode", "availability_template",
          "payload_available", "payload_not_available", "device", "origin",
          "entity_category", "enabled_by_default", "icon", "json_attributes_topic",
          "json_attributes_template", "qos", "encoding", "entity_picture", "platform"}

PLATFORMS = {
    # platform: (required keys, optional keys)
    "sensor": ({"state_topic"}, {"value_template", "device_class", "unit_of_measurement",
                                 "state_class", "expire_after", "force_update",
                                 "suggested_display_precision", "last_reset_value_template",
                                 "options"}),
    "binary_sensor": ({"state_topic"}, {"value_template", "payload_on", "payload_off",
                                        "device_class", "expire_after", "force_update",
                                        "off_delay"}),
    "select": ({"command_topic", "options"}, {"command_template", "state_topic",
                                             "value_template", "optimistic", "retain"}),
    "number": ({"command_topic"}, {"command_template", "state_topic", "value_template",
                                   "min", "max", "step", "mode", "unit_of_measurement",
                                   "device_class", "optimistic", "payload_reset", "retain"}),
    "button": ({"command_topic"}, {"payload_press", "command_template", "device_class",
                                   "retain"}),
}

DEVICE = {"identifiers", "connections", "name", "manufacturer", "model", "model_id",
          "hw_version", "sw_version", "serial_number", "suggested_area", "configuration_url",
          "via_device"}
ORIGIN = {"name", "sw_version", "support_url"}

# sensor device_class -> accepted units (subset: the classes we use)
SENSOR_UNITS = {
    "power": {"W", "kW", "MW", "mW", "GW", "TW", "BTU/h"},
    "energy": {"Wh", "kWh", "MWh", "mWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ", "cal", "kcal",
               "Mcal", "Gcal"},
    "battery": {"%"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "data_size": {"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "KiB", "MiB",
                  "GiB"},
}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
BINARY_CLASSES = {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity",
                  "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion",
                  "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
                  "running", "safety", "smoke", "sound", "tamper", "update", "vibration",
                  "window"}
ENTITY_CATEGORIES = {"config", "diagnostic"}


def problems(topic, cfg):
    """Everything wrong with one discovery config (empty list = valid)."""
    out = []
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[-1] != "config":
        return ["topic %s is not <prefix>/<component>/[<node_id>/]<object_id>/config" % topic]
    plat = parts[1]
    if plat not in PLATFORMS:
        return ["unknown platform %s" % plat]
    for p in parts[2:-1]:
        if not p or any(not (c.isalnum() or c in "_-") for c in p):
            out.append("id %r outside [a-zA-Z0-9_-]" % p)
    req, opt = PLATFORMS[plat]
    for k in req - set(cfg):
        out.append("%s: required key %s missing" % (plat, k))
    for k in set(cfg) - req - opt - COMMON:
        out.append("%s: key %s is not documented" % (plat, k))
    if "availability" in cfg and "availability_topic" in cfg:
        out.append("availability and availability_topic must not be used together")
    dev = cfg.get("device")
    if not isinstance(dev, dict) or not (dev.get("identifiers") or dev.get("connections")):
        out.append("device needs identifiers or connections")
    elif set(dev) - DEVICE:
        out.append("device keys not documented: %s" % sorted(set(dev) - DEVICE))
    org = cfg.get("origin")
    if org is not None and (not isinstance(org, dict) or "name" not in org or set(org) - ORIGIN):
        out.append("origin must have a name and only %s" % sorted(ORIGIN))
    if "unique_id" not in cfg:
        out.append("no unique_id (entities without one are not restored after a restart)")
    cat = cfg.get("entity_category")
    if cat is not None and cat not in ENTITY_CATEGORIES:
        out.append("entity_category %r" % cat)
    dc = cfg.get("device_class")
    if plat == "sensor":
        sc = cfg.get("state_class")
        if sc is not None and sc not in STATE_CLASSES:
            out.append("state_class %r" % sc)
        if dc is not None:
            units = SENSOR_UNITS.get(dc)
            if units is None:
                out.append("device_class %r not in the table of this check" % dc)
            elif cfg.get("unit_of_measurement") not in units:
                out.append("unit %r not valid for %s" % (cfg.get("unit_of_measurement"), dc))
            if dc == "energy" and sc not in ("total", "total_increasing"):
                out.append("energy needs state_class total or total_increasing")
    if plat == "binary_sensor" and dc is not None and dc not in BINARY_CLASSES:
        out.append("binary_sensor device_class %r" % dc)
    if plat == "number":
        if cfg.get("mode", "auto") not in ("auto", "box", "slider"):
            out.append("number mode %r" % cfg.get("mode"))
        if not cfg.get("min", 1) < cfg.get("max", 100):
            out.append("number min must be below max")
    if plat == "select" and (not isinstance(cfg.get("options"), list) or not cfg["options"]):
        out.append("select options must be a non-empty list")
    return out
