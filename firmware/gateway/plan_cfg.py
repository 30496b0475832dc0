# Configuration of the planner (section "plan", docs/planning.md): SCHEMA per
# docs/conventions.md, its check, and the wall clock for the plan service.
from gateway.schema import section

SCHEMA = {
    "ev_capacity_wh": (60000, 1000, 200000),  # the car's usable battery (for SoC <-> Wh)
    "efficiency_pct": (92, 50, 100),  # charger one-way efficiency
    "plan_w": (7000, 500, 100000),  # charge power the plan counts on (headroom below max)
    "departure_min": (-1, -1, 1439),  # daily departure, local minutes after midnight
    "departure_soc_pct": (0, 0, 100),  # SoC wanted at departure; 0 = no departure plan
    "grid_charge": (False, None, None),  # cheap-hour grid charging for later V2H
    "min_spread_meur": (30, 0, 5000),  # least spread (milli-EUR/kWh) to cycle for money
    # daily discharge throughput budget, Wh; 0 = no limit. 10 kWh: why, docs/planning.md
    "wear_wh_day": (10000, 0, 500000),
    "batt_capacity_wh": (0, 0, 200000),  # home battery usable energy (backup autonomy)
    "load_tau_s": (900, 10, 86400),  # averaging time of the recent house load
    "utc_offset_min": (60, -720, 840),  # local time = UTC + this (no DST rule: set it)
}


LIVE = tuple(SCHEMA)  # every key applies at once (Planner.apply_setting)


def wall_s(offset_min):
    """(seconds since 2000 UTC, local time of day s) from the board's clock, or (-1, 0)
    while it is not set (before 2024). The unix port counts from 1970, the ESP32 from
    2000. For the service around the planner, never for the core."""
    import time

    from gateway.tariff import EPOCH_2000

    t = int(time.time())  # a float on the unix port
    if time.gmtime(0)[0] == 1970:
        t -= EPOCH_2000
    if t < 24 * 365 * 86400:
        return -1, 0
    return t, (t + offset_min * 60) % 86400


def make_config(cfg=None):
    """Defaults + `cfg`, checked against SCHEMA; gateway.schema.ConfigError names the key."""
    return section("plan", SCHEMA, cfg, strict=True)
