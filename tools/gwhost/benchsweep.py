"""`tools/bench-sweep`: the control core over many generated houses and days.

Usage: tools/bench-sweep [--days N] [--seed S] [--jobs J] [--start S --duration S]
                         [--out DIR] [--plot FILE.png] [--json]

Draws N house-days (default 40) from the space of houses with a seeded generator: season
(the date), weather, PV size and orientation, annual consumption and occupants, the car's
schedule and arrival SoC, a home battery or none, the tariff (none, flat, time-of-use,
hourly dynamic) and sometimes a departure target or a tight fuse. Each day is written by
make-scenario (gwhost.makescen) into DIR/days and run by bench-day with the gateway, idle and
the oracles (no MicroPython replay: the sweep judges decisions, the step time is bench-day's).

Per-day rows come first; the last line of stdout is one JSON object:
`days, effectiveness_min, effectiveness_p10, effectiveness_median, saving_missed_max,
saving_missed_p90, ev_to_grid_pct_max, runtime_s` and `rows` (one object per day), where
- effectiveness is bench-day's (grid exchange against idle and the physical limit);
- saving_missed = (net_cost - net_cost_oracle) / (net_cost_idle - net_cost_oracle) on priced
  days whose possible saving is at least 0.05 EUR; the net cost is the energy cost less the
  net energy the car and the home battery took home (charged minus discharged, AC side)
  valued at the day's lowest import price,
  the value the oracle's plan gives the energy left at the end;
- ev_to_grid_pct = ev_to_grid_wh / ev_discharge_wh (days with at least 100 Wh discharged).
"""

import argparse
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import time

from gwhost import makescen, paths

BENCH_DAY = os.path.join(paths.ROOT, "tools", "bench-day")
DATES = ("2026-01-15", "2026-03-10", "2026-04-20", "2026-05-25", "2026-06-21", "2026-07-15",
         "2026-08-20", "2026-09-25", "2026-10-20", "2026-11-15", "2026-12-10")
TARIFFS = (None, "flat", "tou", "dynamic", "dynamic")
MIN_SAVING_EUR = 0.05


def draw_houses(n, seed):
    """n house-days, the same for the same (n, seed); each covers the space evenly-ish:
    the categorical choices cycle through their values, the numbers are drawn."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        h = makescen.house_defaults()
        h.update(
            date=DATES[(i * 7 + rnd.randrange(3)) % len(DATES)],
            lat=round(rnd.uniform(47.0, 55.0), 2), lon=round(rnd.uniform(-2.0, 15.0), 2),
            weather=makescen.WEATHER[i % len(makescen.WEATHER)],
            pv_kwp=round(rnd.choice((2.5, 4.0, 5.5, 7.0, 9.0)) * rnd.uniform(0.9, 1.1), 1),
            tilt=rnd.choice((15, 30, 35, 45)), azimuth=rnd.choice((90, 135, 180, 225, 270)),
            annual_kwh=rnd.choice((1800, 2800, 3500, 4500, 6000)),
            occupants=1 + i % 5,
            car=("commuter", "home", "weekend", "evening")[(i // 2) % 4],
            arrival_soc=rnd.choice((None, 25, 40, 60)),
            soc_start=rnd.choice((40, 55, 70)),
            ev_kwh=rnd.choice((40, 60, 77)),
            battery_kwh=(0, 0, 5, 10)[(i // 3) % 4],
            tariff=TARIFFS[(i // 5) % len(TARIFFS) if i % 3 else i % len(TARIFFS)],
            seed=rnd.randrange(1, 10**6))
        if h["tariff"] in ("tou", "dynamic") and rnd.random() < 0.5 and h["car"] != "home":
            h["departure_soc"] = rnd.choice((60, 75, 85))
        if rnd.random() < 0.2:
            h["fuse_a"] = rnd.choice((16, 20, 25))
        out.append(h)
    return out


def make_day(h, folder, i):
    name = "sweep-%02d-%s-%s-%s-%s" % (i, h["date"][5:], h["weather"], h["car"],
                                        h["tariff"] or "none")
    path = os.path.join(folder, name + ".json")
    key = json.dumps(h, sort_keys=True)
    if os.path.exists(path):  # generated before from the same house: reuse
        with open(path) as f:
            if json.dumps(json.load(f).get("house"), sort_keys=True) == key:
                return path
    raw, rows = makescen.make(h, name)
    makescen.write(raw, rows, path)
    return path


def bench(args):
    path, start, duration = args
    cmd = [BENCH_DAY, path, "--json", "--no-replay"]
    for c in ("gateway", "ac-pv", "idle", "oracle"):
        cmd += ["--controller", c]
    if start:
        cmd += ["--start", str(start)]
    if duration:
        cmd += ["--duration", str(duration)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return path, None, r.stderr.strip()[-800:], time.monotonic() - t0
    return path, json.loads(r.stdout.strip().splitlines()[-1]), "", time.monotonic() - t0


def net_cost(m, value):
    """Energy cost less what the car and the home battery took home (AC side) at `value`."""
    stored = (m["ev_charge_wh"] - m["ev_discharge_wh"] + m.get("battery_charge_wh", 0.0)
              - m.get("battery_discharge_wh", 0.0))
    return m["energy_cost_eur"] - value * stored / 1000.0


def day_row(path, res):
    from gwhost import scenario as scn

    sc = scn.load(path)
    c = res["controllers"]
    g = c["gateway"]
    r4 = lambda x: None if x is None else round(x, 4)  # noqa: E731 (None: nothing to gain)
    row = {"day": sc.name, "effectiveness": r4(g["effectiveness"]),
           "effectiveness_ac_pv": r4(c["ac-pv"]["effectiveness"]),
           "ev_charge_wh": round(g["ev_charge_wh"]), "ev_discharge_wh": round(g["ev_discharge_wh"]),
           "ev_to_grid_pct": (round(100.0 * g["ev_to_grid_wh"] / g["ev_discharge_wh"], 3)
                              if g["ev_discharge_wh"] >= 100 else 0.0),
           "island_export_wh": g["island_export_wh"], "saving_missed": None}
    if sc.has_prices:
        value = min(sc.import_eur_kwh)
        best, idle = net_cost(c["oracle"], value), net_cost(c["idle"], value)
        row.update(cost_eur=round(net_cost(g, value), 3), cost_oracle_eur=round(best, 3),
                   cost_idle_eur=round(idle, 3))
        if idle - best >= MIN_SAVING_EUR:
            row["saving_missed"] = round((net_cost(g, value) - best) / (idle - best), 4)
    return row


def pct(values, q):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(rows, runtime_s):
    eff = [r["effectiveness"] for r in rows if r["effectiveness"] is not None]
    sm = [r["saving_missed"] for r in rows if r["saving_missed"] is not None]
    r4 = lambda x: None if x is None else round(x, 4)  # noqa: E731
    return {"days": len(rows), "days_with_room": len(eff),
            "effectiveness_min": r4(min(eff) if eff else None),
            "effectiveness_p10": r4(pct(eff, 0.1)), "effectiveness_median": r4(pct(eff, 0.5)),
            "priced_days": len(sm), "saving_missed_max": r4(max(sm) if sm else None),
            "saving_missed_p90": r4(pct(sm, 0.9)),
            "ev_to_grid_pct_max": r4(max(r["ev_to_grid_pct"] for r in rows)),
            "island_export_wh_max": max(r["island_export_wh"] for r in rows),
            "runtime_s": round(runtime_s, 1)}


def plot(path, rows):
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    eff = sorted(r["effectiveness"] for r in rows if r["effectiveness"] is not None)
    ac = sorted(r["effectiveness_ac_pv"] for r in rows if r["effectiveness_ac_pv"] is not None)
    a.plot(range(1, len(eff) + 1), eff, "o-", label="gateway")
    a.plot(range(1, len(ac) + 1), ac, "s-", alpha=0.6, label="ac-pv baseline")
    a.axhline(0.95, color="grey", ls="--", lw=0.8)
    a.set_xlabel("days, sorted")
    a.set_ylabel("effectiveness (1 = physical limit)")
    a.set_title("grid exchange avoided, %d generated days" % len(rows))
    a.legend()
    sm = sorted(r["saving_missed"] for r in rows if r["saving_missed"] is not None)
    b.plot(range(1, len(sm) + 1), sm, "o-", color="tab:red")
    b.axhline(0.05, color="grey", ls="--", lw=0.8)
    b.set_xlabel("priced days, sorted")
    b.set_ylabel("share of the possible saving missed")
    b.set_title("against the oracle's cost")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench-sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--out", default=os.path.join(paths.ROOT, "out", "sweep"))
    ap.add_argument("--plot", default=None, help="default: OUT/sweep.png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.days <= 500:
        print("bench-sweep: --days must be 1..500", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    folder = os.path.join(args.out, "days")
    os.makedirs(folder, exist_ok=True)
    houses = draw_houses(args.days, args.seed)
    paths_ = [make_day(h, folder, i) for i, h in enumerate(houses)]
    rows, failed = [], []
    jobs = [(p, args.start, args.duration) for p in paths_]
    with concurrent.futures.ProcessPoolExecutor(max(1, args.jobs)) as ex:
        for path, res, err, secs in ex.map(bench, jobs):
            if res is None:
                failed.append((path, err))
                print(f"FAILED {os.path.basename(path)}: {err}", flush=True)
                continue
            row = day_row(path, res)
            row["runtime_s"] = round(secs, 1)
            rows.append(row)
            sm = row["saving_missed"]
            f3 = lambda x: "-" if x is None else format(x, ".3f")  # noqa: E731
            print(f"{row['day']:<44} eff {f3(row['effectiveness'])}"
                  f" (ac-pv {f3(row['effectiveness_ac_pv'])})"
                  f"  missed {'-' if sm is None else format(sm, '.3f'):>6}"
                  f"  ev>grid {row['ev_to_grid_pct']:.2f} %  {secs:.0f} s", flush=True)
    if not rows:
        print("bench-sweep: no day ran", file=sys.stderr)
        return 1
    out = summary(rows, time.monotonic() - t0)
    out["failed"] = len(failed)
    plot(args.plot or os.path.join(args.out, "sweep.png"), rows)
    out["rows"] = rows
    print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
