"""Synthetic scenarios for the plant and benchmark tests (CPython)."""

import json
import os

from gwhost import paths
from gwhost import scenario as scn

SHARED = paths.SCENARIOS


def shared(name):
    return os.path.join(SHARED, name + ".json")


def load_json(path):
    with open(path) as f:
        return json.load(f)


def raw(duration_s=600, plugged=None, events=(), home_battery=None, soc=50):
    """A format-1 scenario dict with the shared scenarios' car and charger."""
    return {
        "format": 1, "name": "synthetic", "duration_s": duration_s,
        "ev": {"capacity_wh": 60000, "soc_start_pct": soc, "soc_reserve_pct": 30,
               "soc_max_pct": 90, "max_charge_w": 11000, "max_discharge_w": 10000,
               "plugged": plugged or [[0, duration_s]]},
        "charger": {"min_w": 150, "response_s": 1.0, "ramp_w_per_s": 3000,
                    "efficiency_pct": 94},
        "home_battery": home_battery,
        "grid": {"target_w": 0, "events": list(events)},
    }


def make(t, pv, load, **kw):
    return scn.from_dict(raw(**kw), (t, pv, load))
