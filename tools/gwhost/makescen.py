"""`tools/make-scenario`: one day of one house, written in the scenario format (format 1).

Usage: tools/make-scenario OUT.json [--date YYYY-MM-DD] [--lat DEG --lon DEG] [--tz ZONE]
         [--pv-kwp KWP --tilt DEG --azimuth DEG --inverter-kw KW] [--weather KIND]
         [--annual-kwh KWH --occupants N --load richardson|bdew]
         [--car commuter|home|weekend|evening|none --arrival-soc PCT --ev-kwh KWH
          --departure-soc PCT] [--charger-min-w W --charger-response-s S]
         [--battery-kwh KWH] [--tariff flat|tou|dynamic|FILE.csv] [--fuse-a A]
         [--outage HH:MM+S:island|grid ...] [--step-s S] [--seed N] [--json]

What each part comes from (all offline, deterministic for a given seed):
- PV: pvlib. Clear-sky irradiance (Ineichen, Linke turbidity 3) at the site, times a
  clear-sky index drawn for the weather kind (`clear`, `haze`, `cumulus`: broken clouds as a
  two-state process with cloud-edge enhancement, `overcast`, `mixed`: clouds building during
  the day), split into beam and diffuse (Erbs), transposed to the plane (isotropic), cell
  temperature (Faiman), PVWatts DC and inverter models.
- Household load: the day's energy from the BDEW 2025 household standard profile (demandlib
  `H25`, by date and annual consumption); its shape from richardsonpy's stochastic 1-minute
  appliance and lighting model for the number of occupants (`--load richardson`, default), or
  the 15-minute BDEW shape itself (`--load bdew`). Appliance switching stays visible: the
  1-minute steps are held, never smoothed.
- Car: the schedule kind gives the plugged windows (a commuter is home evenings and nights,
  `evening` arrives at dusk only, `weekend` makes a midday trip, `home` stays plugged), times
  jittered by the seed; `--departure-soc` adds a departure target.
- Tariff: `flat` (0.30 / 0.08 EUR/kWh), `tou` (night, day and evening-peak prices), `dynamic`
  (an hourly day-ahead shape for the season: night trough, morning and evening peaks, a midday
  dip that deepens with the PV of the season, noise from the seed; the export price is the spot
  price, the import price adds taxes and VAT), or a CSV `hour,import_eur_kwh,export_eur_kwh`
  (24 rows) of the user's own prices.

A bad argument is a clear message and exit status 2.
"""

import argparse
import csv
import datetime as dt
import json
import math
import os
import random
import sys
import warnings


class MakeError(ValueError):
    """A house or day that cannot be made; the message names the option."""


WEATHER = ("clear", "haze", "cumulus", "overcast", "mixed")
CARS = ("commuter", "home", "weekend", "evening", "none")
LOADS = ("richardson", "bdew")


def _hm(s):
    """'HH:MM' -> seconds of the day."""
    try:
        h, m = s.split(":")
        v = int(h) * 3600 + int(m) * 60
    except ValueError:
        raise MakeError(f"expected HH:MM, got {s!r}") from None
    if not 0 <= v < 86400:
        raise MakeError(f"time {s!r} outside the day")
    return v


def house_defaults():
    return {
        "date": "2026-06-21", "lat": 52.1, "lon": 5.1, "tz": "Europe/Amsterdam",
        "pv_kwp": 5.0, "tilt": 35.0, "azimuth": 180.0, "inverter_kw": None,
        "weather": "clear", "annual_kwh": 3500.0, "occupants": 3, "load": "richardson",
        "car": "home", "arrival_soc": None, "ev_kwh": 60.0, "departure_soc": None,
        "ev_max_charge_w": 11000, "ev_max_discharge_w": 10000,
        "soc_start": 50.0, "soc_reserve": 30.0, "soc_max": 90.0,
        "charger_min_w": 150, "charger_response_s": 1.0,
        "battery_kwh": 0.0, "tariff": None, "fuse_a": None, "outages": [],
        "step_s": 5, "seed": 1,
    }


def check_house(h):
    """Bounds of every option, with messages that name it."""
    def rng(key, lo, hi):
        v = h[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise MakeError(f"--{key.replace('_', '-')}: {v!r} outside {lo}..{hi}")
    try:
        dt.date.fromisoformat(h["date"])
    except (TypeError, ValueError):
        raise MakeError(f"--date: {h['date']!r} is not YYYY-MM-DD") from None
    rng("lat", -66, 66)
    rng("lon", -180, 180)
    rng("pv_kwp", 0, 100)
    rng("tilt", 0, 90)
    rng("azimuth", 0, 360)
    rng("annual_kwh", 300, 30000)
    rng("occupants", 1, 5)
    rng("ev_kwh", 5, 200)
    rng("battery_kwh", 0, 100)
    rng("step_s", 1, 60)
    rng("charger_min_w", 0, 11000)
    rng("charger_response_s", 0, 60)
    for key in ("arrival_soc", "departure_soc"):
        if h[key] is not None:
            rng(key, 0, 100)
    if h["fuse_a"] is not None:
        rng("fuse_a", 6, 200)
    if h["inverter_kw"] is not None:
        rng("inverter_kw", 0.1, 100)
    for key, choices in (("weather", WEATHER), ("car", CARS), ("load", LOADS)):
        if h[key] not in choices:
            raise MakeError(f"--{key}: {h[key]!r} not one of {', '.join(choices)}")
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(h["tz"])
    except Exception:  # noqa: BLE001 - any failure is an unknown zone to the user
        raise MakeError(f"--tz: unknown time zone {h['tz']!r}") from None


# --- PV ------------------------------------------------------------------------------------
def clear_sky_index(kind, n, step_s, rnd):
    """Clear-sky index per step for a weather kind (1 = clear sky)."""
    out = [1.0] * n
    if kind == "clear":
        return [0.98 + 0.02 * rnd.random() for _ in range(n)]
    if kind == "haze":
        level = 0.75
        for i in range(n):
            level += (0.75 - level) * 0.01 + rnd.gauss(0, 0.004)
            out[i] = min(0.95, max(0.5, level))
        return out
    if kind == "overcast":
        level = 0.25
        for i in range(n):
            level += (0.25 - level) * 0.005 + rnd.gauss(0, 0.006)
            out[i] = min(0.5, max(0.08, level))
        return out
    # cumulus / mixed: two states with exponential dwell times; "mixed" clouds build up
    shaded = False
    left = 0.0
    for i in range(n):
        frac = i / max(1, n - 1)
        p_cloud = 0.45 if kind == "cumulus" else 0.15 + 0.7 * frac
        if left <= 0:
            shaded = rnd.random() < p_cloud
            mean = (90 if shaded else 150) if kind == "cumulus" else (240 if shaded else 200)
            left = rnd.expovariate(1.0 / mean)
            depth = rnd.uniform(0.2, 0.45)
        left -= step_s
        out[i] = depth if shaded else (1.0 + 0.12 * rnd.random() if kind == "cumulus"
                                       else 1.0)
    return out


def pv_series(h, times, rnd):
    """AC power of the PV inverter in W at each time (pandas DatetimeIndex, local)."""
    import numpy as np
    import pvlib

    if h["pv_kwp"] <= 0:
        return [0.0] * len(times)
    loc = pvlib.location.Location(h["lat"], h["lon"], tz=h["tz"])
    sol = loc.get_solarposition(times)
    cs = loc.get_clearsky(times, model="ineichen", solar_position=sol, linke_turbidity=3.0)
    kc = np.array(clear_sky_index(h["weather"], len(times), h["step_s"], rnd))
    ghi = cs["ghi"].to_numpy() * kc
    doy = times.day_of_year
    split = pvlib.irradiance.erbs(ghi, sol["zenith"].to_numpy(), doy)
    poa = pvlib.irradiance.get_total_irradiance(
        h["tilt"], h["azimuth"], sol["apparent_zenith"].to_numpy(), sol["azimuth"].to_numpy(),
        split["dni"], ghi, split["dhi"], model="isotropic")["poa_global"]
    poa = np.nan_to_num(np.asarray(poa, dtype=float), nan=0.0)
    month = times[0].month
    t_air = 10.0 + 8.0 * math.cos((month - 7) / 12.0 * 2 * math.pi) * (1 if h["lat"] >= 0
                                                                           else -1)
    t_cell = pvlib.temperature.faiman(poa, t_air, 2.0)
    pdc = pvlib.pvsystem.pvwatts_dc(poa, t_cell, h["pv_kwp"] * 1000.0, -0.0037)
    inv_w = (h["inverter_kw"] or h["pv_kwp"]) * 1000.0
    pac = pvlib.inverter.pvwatts(pdc, inv_w / 0.96, eta_inv_nom=0.96)
    return [max(0.0, float(x)) for x in np.nan_to_num(np.asarray(pac, dtype=float))]


# --- household load --------------------------------------------------------------------------
def day_energy_and_shape(h, date):
    """The day's energy in Wh and its 96 quarter-hour weights from BDEW H25."""
    import pandas as pd
    from demandlib import bdew

    year = date.year
    idx = pd.date_range(f"{year}-01-01", periods=(366 if year % 4 == 0 else 365) * 96,
                        freq="15min")
    with warnings.catch_warnings():  # demandlib on pandas 3 warns of a coming deprecation
        warnings.simplefilter("ignore")
        prof = bdew.H25(idx)
    day = prof.loc[date.isoformat()]
    frac = float(day.sum()) / float(prof.sum())
    return h["annual_kwh"] * 1000.0 * frac, [float(x) for x in day]


def load_minutes(h, date, rnd):
    """1440 values in W: the household without the car."""
    energy_wh, quarter = day_energy_and_shape(h, date)
    if h["load"] == "bdew":
        minutes = [quarter[m // 15] for m in range(1440)]
    else:
        minutes = richardson_day(h, date, rnd)
    total = sum(minutes) / 60.0  # Wh
    scale = energy_wh / total if total > 0 else 0.0
    return [max(20.0, m * scale) for m in minutes]


def richardson_day(h, date, rnd):
    """One day of richardsonpy's stochastic appliance and lighting model (1 min)."""
    import numpy as np
    import richardsonpy
    import richardsonpy.classes.appliance as app_model
    import richardsonpy.classes.lighting as light_model
    import richardsonpy.classes.occupancy as occ
    import richardsonpy.classes.stochastic_el_load_wrapper as wrapper

    # richardsonpy draws from the global generators: seed both from ours
    seed = rnd.randrange(2**31)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    weekday = date.isoweekday()  # 1..7 = Mon..Sun, as its initial_day
    inputs = os.path.join(os.path.dirname(richardsonpy.__file__), "inputs")
    o = occ.Occupancy(number_occupants=h["occupants"], initial_day=weekday, nb_days=1)
    apps = app_model.Appliances(os.path.join(inputs, "Appliances.csv"),
                                annual_consumption=0.91 * h["annual_kwh"],
                                randomize_appliances=True)
    lights = light_model.load_lighting_profile(
        filename=os.path.join(inputs, "LightBulbs.csv"), index=0)
    w = wrapper.ElectricityProfile(apps, lights)
    # lighting needs outdoor irradiance (W/m2 -> kW/m2 as the model wants): a clear day shape
    doy = date.timetuple().tm_yday
    irr = np.array([max(0.0, math.sin(math.pi * (m / 1440.0 - 0.25) * 2)) * 0.6
                    for m in range(1440)])
    el, _light, _app = w.power_sim(irradiation=irr, weekend=weekday >= 6, day=doy - 1,
                                   occupancy=o.occupancy[:144])
    return [float(x) for x in el]


# --- car, battery, tariff --------------------------------------------------------------------
def car_windows(h, rnd):
    kind = h["car"]
    arr_soc = h["arrival_soc"]
    if arr_soc is None:
        arr_soc = round(rnd.uniform(30, 55))

    def jit(t, s):
        return int(t + rnd.uniform(-s, s)) // 60 * 60

    if kind == "none":
        return []
    if kind == "home":
        return [[0, 86400]]
    if kind == "commuter":
        return [[0, jit(27000, 1800)], [jit(63000, 2700), 86400, arr_soc]]
    if kind == "evening":
        return [[jit(70200, 2700), 86400, arr_soc]]
    return [[0, jit(36000, 1800)], [jit(57600, 3600), 86400, arr_soc]]  # weekend trip


def battery(h):
    kwh = h["battery_kwh"]
    if kwh <= 0:
        return None
    p = int(min(10000, max(1000, kwh * 500)))  # 0.5 C, as most home batteries
    return {"capacity_wh": int(kwh * 1000), "soc_start_pct": 50, "soc_min_pct": 10,
            "soc_max_pct": 95, "max_charge_w": p, "max_discharge_w": p, "efficiency_pct": 95}


def tariff_hours(h, date, rnd):
    """24 (import, export) prices in EUR/kWh, or None for an unpriced day."""
    t = h["tariff"]
    if t is None:
        return None
    if t == "flat":
        return [(0.30, 0.08)] * 24
    if t == "tou":
        out = []
        for hr in range(24):
            imp = 0.22 if (hr >= 23 or hr < 7) else (0.40 if 17 <= hr < 21 else 0.30)
            out.append((imp, 0.07))
        return out
    if t == "dynamic":
        summer = math.cos((date.month - 6.5) / 12.0 * 2 * math.pi)  # +1 mid-year, -1 winter
        out = []
        base = rnd.uniform(0.07, 0.11)
        for hr in range(24):
            shape = (0.035 * math.exp(-((hr - 8) / 1.5) ** 2)
                     + 0.07 * math.exp(-((hr - 19) / 2.0) ** 2)
                     - 0.03 * (hr < 6)
                     - (0.05 + 0.06 * max(0.0, summer)) * math.exp(-((hr - 13.5) / 2.5) ** 2))
            spot = base + shape + rnd.gauss(0, 0.012)
            imp = round((spot + 0.13) * 1.21, 4)
            out.append((imp, round(min(spot, imp), 4)))
        return out
    return read_tariff_csv(t)


def read_tariff_csv(path):
    """`hour,import_eur_kwh,export_eur_kwh` with hours 0..23, each once."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise MakeError(f"--tariff: cannot read {path}: {e.strerror}") from None
    if not rows or [c.strip() for c in rows[0]] != ["hour", "import_eur_kwh", "export_eur_kwh"]:
        raise MakeError(f"--tariff: {path} line 1: header must be"
                        " hour,import_eur_kwh,export_eur_kwh")
    prices = {}
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            hr, imp, exp = int(row[0]), float(row[1]), float(row[2])
        except (ValueError, IndexError):
            raise MakeError(f"--tariff: {path} line {n}: expected an hour and two prices") \
                from None
        if not 0 <= hr <= 23 or hr in prices:
            raise MakeError(f"--tariff: {path} line {n}: hour {hr} out of 0..23 or repeated")
        if not (math.isfinite(imp) and math.isfinite(exp) and -10 <= exp <= imp <= 10):
            raise MakeError(f"--tariff: {path} line {n}: prices must satisfy"
                            " -10 <= export <= import <= 10")
        prices[hr] = (imp, exp)
    if len(prices) != 24:
        raise MakeError(f"--tariff: {path}: {len(prices)} hours given, 24 needed")
    return [prices[hr] for hr in range(24)]


def outages(h):
    out = []
    for spec in h["outages"]:
        try:
            at, rest = spec.split("+")
            dur, sw = rest.split(":")
            dur = float(dur)
        except ValueError:
            raise MakeError(f"--outage: expected HH:MM+SECONDS:island|grid, got {spec!r}") \
                from None
        if sw not in ("island", "grid") or not 0 < dur <= 86400:
            raise MakeError(f"--outage: expected HH:MM+SECONDS:island|grid, got {spec!r}")
        try:
            t_s = _hm(at)
        except MakeError as e:
            raise MakeError(f"--outage: {e}") from None
        out.append({"t_s": t_s, "type": "outage", "duration_s": dur, "switch": sw})
    return out


# --- the day ---------------------------------------------------------------------------------
def make(h, name):
    """(scenario dict, rows) for a house; rows are (t_s, pv_w, load_w[, imp, exp])."""
    import pandas as pd

    check_house(h)
    rnd = random.Random(h["seed"])
    date = dt.date.fromisoformat(h["date"])
    step = int(h["step_s"])
    n = 86400 // step
    times = pd.date_range(date.isoformat(), periods=n, freq=f"{step}s", tz=h["tz"])
    pv = pv_series(h, times, random.Random(rnd.randrange(2**31)))
    load_min = load_minutes(h, date, random.Random(rnd.randrange(2**31)))
    prices = tariff_hours(h, date, random.Random(rnd.randrange(2**31)))
    plugged = car_windows(h, random.Random(rnd.randrange(2**31)))
    rows = []
    for i in range(n):
        t = i * step
        row = [t, round(pv[i]), round(load_min[t // 60])]
        if prices is not None:
            row += list(prices[t // 3600])
        rows.append(row)
    ev = {"capacity_wh": int(h["ev_kwh"] * 1000), "soc_start_pct": h["soc_start"],
          "soc_reserve_pct": h["soc_reserve"], "soc_max_pct": h["soc_max"],
          "max_charge_w": h["ev_max_charge_w"], "max_discharge_w": h["ev_max_discharge_w"],
          "plugged": plugged or [[0, 1, h["soc_start"]]]}
    if h["departure_soc"] is not None:
        ev["departure_soc_pct"] = h["departure_soc"]
    grid = {"target_w": 0, "events": outages(h)}
    if h["fuse_a"] is not None:
        grid["fuse_a"] = h["fuse_a"]
    desc = ("Generated by tools/make-scenario: %s at %.2f,%.2f; PV %.1f kWp tilt %g az %g, %s;"
            " %g kWh/a, %d occupants (%s); car %s; battery %g kWh; tariff %s; seed %d." % (
                h["date"], h["lat"], h["lon"], h["pv_kwp"], h["tilt"], h["azimuth"],
                h["weather"], h["annual_kwh"], h["occupants"], h["load"], h["car"],
                h["battery_kwh"], h["tariff"] or "none", h["seed"]))
    raw = {"format": 1, "name": name, "description": desc, "duration_s": 86400,
           "series": name + ".csv", "ev": ev,
           "charger": {"min_w": h["charger_min_w"], "response_s": h["charger_response_s"],
                       "ramp_w_per_s": 3000, "efficiency_pct": 94},
           "home_battery": battery(h), "grid": grid, "house": dict(h)}
    if prices is not None and h["departure_soc"] is not None:
        raw["gateway_config"] = {"plan": {"grid_charge": True}}
    return raw, rows


def write(raw, rows, out_json):
    folder = os.path.dirname(os.path.abspath(out_json))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, raw["series"]), "w", newline="") as f:
        w = csv.writer(f)
        head = ["t_s", "pv_w", "load_w"]
        if len(rows[0]) == 5:
            head += ["import_eur_kwh", "export_eur_kwh"]
        w.writerow(head)
        w.writerows(rows)
    with open(out_json, "w") as f:
        json.dump(raw, f, indent=1)
        f.write("\n")


def summary(raw, rows, step_s):
    e = step_s / 3600.0
    return {"scenario": raw["name"], "pv_kwh": round(sum(r[1] for r in rows) * e / 1000, 2),
            "load_kwh": round(sum(r[2] for r in rows) * e / 1000, 2),
            "load_peak_w": max(r[2] for r in rows), "pv_peak_w": max(r[1] for r in rows),
            "plugged": raw["ev"]["plugged"], "priced": len(rows[0]) == 5}


def parse_args(argv):
    d = house_defaults()
    ap = argparse.ArgumentParser(prog="make-scenario", description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the scenario JSON to write (its CSV goes beside it)")
    for key, val in d.items():
        if key in ("outages",):
            continue
        flag = "--" + key.replace("_", "-")
        kind = type(val) if val is not None else (str if key == "tariff" else float)
        if kind is bool:
            kind = int
        ap.add_argument(flag, type=kind, default=val)
    ap.add_argument("--outage", action="append", default=[], dest="outages",
                    help="HH:MM+SECONDS:island|grid (repeatable)")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    h = {k: getattr(args, k) for k in house_defaults()}
    name = os.path.splitext(os.path.basename(args.out))[0]
    try:
        raw, rows = make(h, name)
    except MakeError as e:
        print(f"make-scenario: {e}", file=sys.stderr)
        return 2
    write(raw, rows, args.out)
    s = summary(raw, rows, h["step_s"])
    if not args.json:
        print(f"wrote {args.out}: PV {s['pv_kwh']} kWh, load {s['load_kwh']} kWh,"
              f" plugged {s['plugged']}")
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
