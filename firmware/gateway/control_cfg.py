# Configuration of the control core (section "control"): SCHEMA per docs/conventions.md,
# {key: (default, lo, hi)}; ints are bounded, choices are (default, (options), None).
# Bounds keep every intermediate of Controller.step inside +/-2**30 (ESP32 small ints):
# powers <= 100 kW, ramps <= 50 kW/s, times <= 2**28 ms (~3 days, half the tick window).
from gateway.schema import ConfigError, section
from micropython import const

MODE_AUTO = const(0)  # charge from surplus, discharge to cover load (V2H)
MODE_V1G = const(1)  # charge from surplus only
MODE_OFF = const(2)  # car at 0 W, session closed
MODES = ("auto", "v1g", "off")

PRIO_CAR_DEEP_RESERVE = const(0)  # home battery covers load first, car charges first
PRIO_BATTERY_FIRST = const(1)  # home battery first both ways
PRIO_CAR_FIRST = const(2)  # car first both ways
PRIORITIES = ("car_deep_reserve", "battery_first", "car_first")

_T_MAX = const(1 << 28)

SCHEMA = {
    "mode": ("auto", MODES, None),
    "priority": ("car_deep_reserve", PRIORITIES, None),
    "period_ms": (200, 50, 5000),  # control cycle = metering window
    "min_w": (150, 0, 5000),  # charger minimum (the device's own value wins if larger)
    "max_charge_w": (11000, 0, 100000),
    "max_discharge_w": (10000, 0, 100000),
    "charge_target_w": (0, -1000, 1000),  # grid target while charging from surplus
    "grid_target_w": (30, 0, 1000),  # import bias while the car covers load (V2H)
    "deadband_w": (15, 0, 1000),  # smaller changes of the wanted power are not written
    "floor_margin_w": (10, 0, 1000),  # least import while discharging at min_w
    "ramp_up_w_s": (3000, 10, 50000),  # magnitude raise: match the charger's ramp
    "ramp_down_w_s": (20000, 10, 50000),  # magnitude cut: fast
    "ki_milli_s": (50, 0, 1000),  # integral gain, 1/1000 per s (50: ~20 s time constant)
    "i_max_w": (300, 0, 2000),  # integral clamp (anti-windup)
    "settle_w": (50, 0, 500),  # integrate only while |setpoint - measured| <= this
    "start_delay_ms": (10000, 0, _T_MAX),  # useful work this long before a session opens
    "stop_delay_ms": (3600000, 0, _T_MAX),  # nothing to do this long before it closes
    "min_on_ms": (300000, 0, _T_MAX),
    "min_off_ms": (120000, 0, _T_MAX),
    "soc_reserve_pct": (30, 0, 100),  # never discharge at or below (driving reserve)
    # the installer's floor: MQTT commands cannot set soc_reserve_pct below it (console and
    # config file can: docs/installer-guide.md)
    "soc_reserve_min_pct": (20, 0, 100),
    "soc_max_pct": (90, 0, 100),  # never charge at or above
    "meter_max_age_ms": (1000, 100, 60000),
    "device_max_age_ms": (5000, 100, 600000),
    "export_max_w": (30000, 0, 100000),  # inverter export limit while export is permitted
    "batt_soc_min_pct": (10, 0, 100),
    "batt_soc_max_pct": (95, 0, 100),
    "batt_max_w": (5000, 0, 100000),
    # main fuse / peak limit: per-phase current limit, A (0 = off); the car (balanced over
    # three phases) yields in the same cycle, V2H shaves the excess (docs/planning.md)
    "fuse_a": (0, 0, 200),
    "fuse_margin_ma": (1500, 0, 20000),  # regulate this far below the fuse
}


# Applied while running (Controller.apply_setting); period_ms (the control cycle and
# the metering window) takes effect at the next start.
LIVE = tuple(k for k in SCHEMA if k != "period_ms")


def rule(c):
    """Rules across keys of a complete section."""
    if c["soc_reserve_pct"] > c["soc_max_pct"]:
        raise ConfigError("control.soc_reserve_pct: %d must not exceed soc_max_pct (%d)"
                          % (c["soc_reserve_pct"], c["soc_max_pct"]))


def make_config(cfg=None):
    """Defaults + `cfg`, checked against SCHEMA and rule(); ConfigError names the key."""
    return section("control", SCHEMA, cfg, strict=True, rule=rule)


def mode_code(name):
    if name not in MODES:
        raise ConfigError("control.mode: %r is not one of %s" % (name, ", ".join(MODES)))
    return MODES.index(name)


def prio_code(name):
    if name not in PRIORITIES:
        raise ConfigError("control.priority: %r is not one of %s" % (name, ", ".join(PRIORITIES)))
    return PRIORITIES.index(name)
