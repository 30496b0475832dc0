"""Build the project's price scenarios (scenarios/nl-*-dynamic*.json + CSV) from the shared
days (scenarios/nl-*.json, copies of the public ones): the same PV and load rows, plus hourly Dutch day-ahead-shaped prices.

Prices (EUR/kWh): export = the day-ahead price (a dynamic contract without net metering),
import = (day-ahead + 0.0205 supplier margin + 0.1016 energy tax) * 1.21 VAT. The shapes
follow typical 2024 EPEX NL days: cheap night, a morning bump, negative midday prices on a
sunny June day, an evening peak. `extra` adds appliance loads (W) to the house series.

Usage: tools/_py gwhost.pricescen   (rewrites the files; data, no network)
"""

import csv
import json
import os

from gwhost import paths

SHARED = OUT = paths.SCENARIOS  # the public days are in scenarios/ too

SPOT_JUNE = (0.080, 0.075, 0.070, 0.068, 0.070, 0.075, 0.090, 0.110, 0.100, 0.060, 0.020,
             -0.010, -0.030, -0.045, -0.020, 0.010, 0.050, 0.090, 0.130, 0.170, 0.190, 0.160,
             0.120, 0.100)
SPOT_DEC = (0.100, 0.090, 0.085, 0.080, 0.082, 0.090, 0.110, 0.150, 0.170, 0.150, 0.130,
            0.120, 0.115, 0.120, 0.130, 0.150, 0.190, 0.240, 0.260, 0.220, 0.180, 0.150,
            0.130, 0.110)


def import_price(spot):
    return round((spot + 0.0205 + 0.1016) * 1.21, 4)


EV = {"max_charge_w": 11000, "max_discharge_w": 10000}
CHARGER = {"min_w": 150, "response_s": 1.0, "ramp_w_per_s": 3000, "efficiency_pct": 94}

SCENARIOS = {
    "nl-june-dynamic": {
        "base": "nl-june-clear", "spot": SPOT_JUNE, "extra": (),
        "description": "nl-june-clear with day-ahead prices (negative at midday); the car "
                       "leaves at 08:00 and must have 60 %, comes back at 13:00 with 45 %.",
        "ev": {"capacity_wh": 60000, "soc_start_pct": 40, "soc_reserve_pct": 30,
               "soc_max_pct": 90, "departure_soc_pct": 60,
               "plugged": [[0, 28800], [46800, 86400, 45]]},
        "grid": {"target_w": 0, "events": [], "fuse_a": 25, "phase_split_pct": [40, 35, 25]},
        "plan": {"grid_charge": False},
    },
    "nl-december-dynamic": {
        "base": "nl-december-v2h", "spot": SPOT_DEC, "extra": (),
        "description": "nl-december-v2h with day-ahead prices; the car leaves at 07:30 and "
                       "must have 85 %; evening vehicle-to-home at the price peak; cheap-hour "
                       "charging allowed.",
        "ev": {"capacity_wh": 77000, "soc_start_pct": 80, "soc_reserve_pct": 40,
               "soc_max_pct": 90, "departure_soc_pct": 85,
               "plugged": [[0, 27000], [61200, 86400, 70]]},
        "grid": {"target_w": 0, "events": [], "fuse_a": 25, "phase_split_pct": [40, 35, 25]},
        "plan": {"grid_charge": True},
    },
    "nl-december-fuse": {
        "base": "nl-december-v2h", "spot": SPOT_DEC,
        # a 4.5 kW water heater at night while the car charges; 6 kW and 11 kW evening peaks
        "extra": ((7200, 12600, 4500), (66600, 69000, 6000), (70200, 70800, 11000)),
        "description": "Tight 3 x 25 A fuse: the car comes home nearly empty the evening "
                       "before (25 %) and needs 80 % at 07:30, while a 4.5 kW water heater runs "
                       "at night (L1 carries half the house); 6 and 11 kW evening peaks.",
        "ev": {"capacity_wh": 77000, "soc_start_pct": 25, "soc_reserve_pct": 20,
               "soc_max_pct": 90, "departure_soc_pct": 80,
               "plugged": [[0, 27000], [61200, 86400, 45]]},
        "grid": {"target_w": 0, "events": [], "fuse_a": 25, "phase_split_pct": [50, 30, 20]},
        "plan": {"grid_charge": False},
    },
}


def build(name, spec):
    with open(os.path.join(SHARED, spec["base"] + ".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    out = os.path.join(OUT, name + ".csv")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("t_s", "pv_w", "load_w", "import_eur_kwh", "export_eur_kwh"))
        for r in rows:
            t = float(r["t_s"])
            load = float(r["load_w"])
            for a, b, p in spec["extra"]:
                if a <= t < b:
                    load += p
            spot = spec["spot"][int(t // 3600) % 24]
            w.writerow((r["t_s"], r["pv_w"], round(load), import_price(spot), spot))
    ev = dict(spec["ev"], **EV)
    doc = {"format": 1, "name": name, "description": spec["description"],
           "duration_s": 86400, "series": name + ".csv", "ev": ev, "charger": CHARGER,
           "home_battery": None, "grid": spec["grid"],
           "gateway_config": {"plan": spec["plan"]}}
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main():
    for name, spec in SCENARIOS.items():
        build(name, spec)
        print("wrote", os.path.join(OUT, name + ".json"))


if __name__ == "__main__":
    main()
