"""`tools/whatif`: what would the gateway have done on my day?

Usage: tools/whatif FILE [--pv ENTITY (--load ENTITY | --grid ENTITY) [--price ENTITY]
                          [--export-price-entity ENTITY] [--unit W|kW]]
                         [--tz ZONE] [--plugged HH:MM-HH:MM ...] [--ev-kwh KWH]
                         [--soc-start PCT] [--import-price EUR --export-price EUR]
                         [--max-gap-s S] [--plot F.png] [--keep DIR] [--json]

Two input forms:
- a plain CSV with a header `time,pv_w,load_w` or `time,pv_w,grid_w` (grid: + import), and
  optionally `import_eur_kwh,export_eur_kwh`; time as ISO 8601 or epoch seconds, one row per
  sample, rows in time order;
- a Home Assistant history export, the long format `entity_id,state,last_changed`; `--pv`
  and `--load` (or `--grid`) name the entities, `--price` an import price entity
  (EUR/kWh), power states in `--unit` (default W).

Resampling is honest: each value holds until the next sample (as Home Assistant records a
state until it changes); nothing is interpolated. A gap is a state that is `unavailable` or
`unknown` (Home Assistant), or a jump between rows longer than `--max-gap-s` (plain CSV): it is
reported and left out of the simulation, never bridged; the stretches between gaps are run
one after the other and summed (stretches under 10 minutes are reported and skipped). With
`--grid` the household load is grid + PV: the recording must not contain a car or battery of
its own. Without price data, the flat `--import-price` / `--export-price` apply (said in the
output).

The stretches are written as a scenario (format 1) and run by `tools/bench-day` with the
controllers `idle` (doing nothing with the car), `ac-pv` (an AC PV-surplus charger), `gateway`
(this firmware's control core) and `oracle` (the best plan with perfect knowledge). The last
line of stdout is one JSON object: data coverage, gaps, and per controller the cost,
self-consumption and the car's energy; `saving_vs_idle_eur` per controller.

A bad file is a clear error naming the row and column, exit status 2.
"""

import argparse
import csv
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DAY = os.path.join(os.path.dirname(HERE), "bench-day")
CONTROLLERS = ("idle", "ac-pv", "gateway", "oracle")
MIN_SEGMENT_S = 600
MAX_SPAN_S = 10 * 86400
MISSING = ("unavailable", "unknown", "none", "")


class InputError(ValueError):
    """A file or option that cannot be used; the message names the row and column."""


def parse_time(text, tz, where):
    """ISO 8601 (with or without an offset; without = local in tz) or epoch seconds -> UTC
    epoch seconds (float)."""
    s = text.strip()
    try:
        return float(s) if s.replace(".", "", 1).isdigit() else _iso(s, tz)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a time (ISO 8601 or epoch seconds)") \
            from None


def _iso(s, tz):
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return t.timestamp()


def parse_number(text, where, scale=1.0):
    try:
        v = float(text) * scale
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{where}: {text!r} is not a finite number")
    return v


# --- readers: each returns {"pv": [(t, v|None)], "load"|"grid": [...], "price"?: [...]} -----
def read_plain(path, tz, reader):
    head = [h.strip() for h in next(reader, [])]
    if "time" not in head or "pv_w" not in head or not ({"load_w", "grid_w"} & set(head)):
        raise InputError(f"{path} line 1: header must have time,pv_w and load_w or grid_w"
                         f" (got {','.join(head)})")
    if "load_w" in head and "grid_w" in head:
        raise InputError(f"{path} line 1: give load_w or grid_w, not both")
    has_i, has_e = "import_eur_kwh" in head, "export_eur_kwh" in head
    if has_i != has_e:
        raise InputError(f"{path} line 1: import_eur_kwh and export_eur_kwh go together")
    cols = {"pv": "pv_w", ("load" if "load_w" in head else "grid"):
            ("load_w" if "load_w" in head else "grid_w")}
    if has_i:
        cols.update(price="import_eur_kwh", export_price="export_eur_kwh")
    idx = {k: head.index(c) for k, c in cols.items()}
    it = head.index("time")
    out = {k: [] for k in cols}
    last = None
    for n, row in enumerate(reader, 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < len(head):
            raise InputError(f"{path} line {n}: {len(row)} columns, the header has {len(head)}")
        t = parse_time(row[it], tz, f"{path} line {n} column time")
        if last is not None and t <= last:
            raise InputError(f"{path} line {n} column time: not after the row before")
        last = t
        for k, c in cols.items():
            v = parse_number(row[idx[k]], f"{path} line {n} column {c}")
            if k in ("pv", "load") and v < 0:
                raise InputError(f"{path} line {n} column {c}: {v:g} is negative")
            out[k].append((t, v))
    if not out["pv"]:
        raise InputError(f"{path}: no data rows")
    return out


def read_ha(path, tz, reader, entities, unit_scale):
    head = [h.strip() for h in next(reader, [])]
    need = ("entity_id", "state", "last_changed")
    if any(c not in head for c in need):
        raise InputError(f"{path} line 1: a Home Assistant export needs the columns"
                         f" entity_id,state,last_changed (got {','.join(head)})")
    ie, isv, it = (head.index(c) for c in need)
    by_entity = {e: k for k, e in entities.items()}
    out = {k: [] for k in entities}
    for n, row in enumerate(reader, 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < len(head):
            raise InputError(f"{path} line {n}: {len(row)} columns, the header has {len(head)}")
        k = by_entity.get(row[ie].strip())
        if k is None:
            continue
        t = parse_time(row[it], tz, f"{path} line {n} column last_changed")
        st = row[isv].strip()
        if st.lower() in MISSING:
            out[k].append((t, None))
            continue
        scale = 1.0 if k in ("price", "export_price") else unit_scale
        v = parse_number(st, f"{path} line {n} column state ({row[ie].strip()})", scale)
        if k in ("pv", "load") and v < 0:
            raise InputError(f"{path} line {n} column state ({row[ie].strip()}):"
                             f" {v:g} is negative")
        out[k].append((t, v))
    for k, e in entities.items():
        if not out[k]:
            raise InputError(f"{path}: no rows for entity {e!r} (--{k.replace('_', '-')})")
        out[k].sort(key=lambda p: p[0])
    return out


def read(path, args, tz):
    try:
        f = open(path, newline="")  # noqa: SIM115 - closed below
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        reader = csv.reader(f)
        if args.pv:
            ents = {"pv": args.pv}
            if bool(args.load) == bool(args.grid):
                raise InputError("--load or --grid: give exactly one with --pv")
            ents["load" if args.load else "grid"] = args.load or args.grid
            if args.price:
                ents["price"] = args.price
            if args.export_price_entity:
                ents["export_price"] = args.export_price_entity
            return "home-assistant", read_ha(path, tz, reader, ents,
                                             1000.0 if args.unit == "kW" else 1.0)
        return "csv", read_plain(path, tz, reader)


# --- honest resampling -------------------------------------------------------------------------
def merge(series, max_gap_s, fmt):
    """Zero-order hold of every series on the union of sample times.

    Returns (rows, gaps): rows are (t, {key: value}) where every key has a value; gaps are
    (start, end, why) stretches with no usable data (never bridged)."""
    times = sorted({t for s in series.values() for t, _ in s})
    pos = dict.fromkeys(series, 0)
    cur = dict.fromkeys(series)
    started = dict.fromkeys(series, False)
    rows, gaps = [], []
    gap_start = None
    why = ""
    prev_t = None
    for t in times:
        for k, s in series.items():
            i = pos[k]
            while i < len(s) and s[i][0] <= t:
                cur[k] = s[i][1]
                started[k] = True
                i += 1
            pos[k] = i
        jump = fmt == "csv" and prev_t is not None and t - prev_t > max_gap_s
        prev_t = t
        missing = [k for k in series if cur[k] is None]
        if jump and gap_start is None and rows:
            gaps.append((rows[-1][0], t, "no rows for %d s" % (t - rows[-1][0])))
            rows.append((None, rows[-1][0]))  # a break: the stretch ends at its last row
        if missing:
            if gap_start is None:
                gap_start = t
                why = ("no value yet for " if not all(started[k] for k in missing)
                       else "unavailable: ") + ",".join(missing)
            continue
        if gap_start is not None:
            if rows:  # before the first complete row is not a gap, just the start
                gaps.append((gap_start, t, why))
                rows.append((None, gap_start))  # the last values held until the gap
            gap_start = None
        rows.append((t, dict(cur)))
    return rows, gaps


class Stretch:
    """Consecutive rows between breaks: `rows` [(t, values)], from `start` to `end` (the
    last row's values hold until the next break, or end with the data)."""

    def __init__(self, rows, end):
        self.rows = rows
        self.start = rows[0][0]
        self.end = end

    @property
    def length(self):
        return self.end - self.start


def segments(rows):
    out, cur = [], []
    for t, v in rows:
        if t is None:  # a break; v is when the stretch before it ends
            if cur:
                out.append(Stretch(cur, v))
            cur = []
        else:
            cur.append((t, v))
    if cur:
        out.append(Stretch(cur, cur[-1][0]))
    return out


# --- scenario ------------------------------------------------------------------------------
def plugged_windows(specs, day0, n_days):
    """Daily HH:MM-HH:MM windows (may wrap past midnight) over the span, in scenario s."""
    if not specs:
        return [[0, n_days * 86400]]
    spans = []
    for spec in specs:
        try:
            a, b = spec.split("-")
            sa, sb = (int(x.split(":")[0]) * 3600 + int(x.split(":")[1]) * 60 for x in (a, b))
        except (ValueError, IndexError):
            raise InputError(f"--plugged: expected HH:MM-HH:MM, got {spec!r}") from None
        if not (0 <= sa < 86400 and 0 <= sb <= 86400) or sa == sb:
            raise InputError(f"--plugged: {spec!r} is not a window of the day")
        for d in range(-1, n_days + 1):
            s0 = d * 86400 + sa
            s1 = d * 86400 + sb + (86400 if sb <= sa else 0)
            s0, s1 = max(0, s0), min(n_days * 86400, s1)
            if s0 < s1:
                spans.append([s0, s1])
    spans.sort()
    merged = []
    for s in spans:
        if merged and s[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s[1])
        else:
            merged.append(s)
    return merged


def build_scenario(rows_all, segs, args, tz, folder, has_prices):
    t_first = segs[0].start
    local0 = dt.datetime.fromtimestamp(t_first, tz)
    midnight = local0.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    t_end = segs[-1].end + 1
    n_days = math.ceil((t_end - midnight) / 86400.0)
    series = []
    for seg in segs:
        for t, v in seg.rows:
            load = v["load"] if "load" in v else max(0.0, v["grid"] + v["pv"])
            imp = v.get("price", args.import_price)
            exp = v.get("export_price", min(args.export_price, imp))
            series.append((round(t - midnight, 3), max(0.0, v["pv"]), load, imp, min(exp, imp)))
    name = "whatif"
    with open(os.path.join(folder, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "pv_w", "load_w", "import_eur_kwh", "export_eur_kwh"])
        w.writerows(series)
    raw = {"format": 1, "name": name,
           "description": "what-if from %s (%s)" % (os.path.basename(args.file), tz.key),
           "duration_s": n_days * 86400, "series": name + ".csv",
           "ev": {"capacity_wh": int(args.ev_kwh * 1000), "soc_start_pct": args.soc_start,
                  "soc_reserve_pct": 30, "soc_max_pct": 90, "max_charge_w": 11000,
                  "max_discharge_w": 10000,
                  "plugged": plugged_windows(args.plugged, midnight, n_days)},
           "charger": {"min_w": 150, "response_s": 1.0, "ramp_w_per_s": 3000,
                       "efficiency_pct": 94},
           "home_battery": None, "grid": {"target_w": 0, "events": []}}
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        json.dump(raw, f, indent=1)
    return path, midnight


def bench(scen, start, duration, plot=None):
    cmd = [BENCH_DAY, scen, "--start", str(start), "--duration", str(duration), "--json"]
    for c in CONTROLLERS:
        cmd += ["--controller", c]
    if plot:
        cmd += ["--plot", plot]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError("bench-day failed: " + r.stderr.strip()[-500:])
    return json.loads(r.stdout.strip().splitlines()[-1])["controllers"]


SUMMED = ("pv_wh", "load_wh", "grid_import_wh", "grid_export_wh", "ev_charge_wh",
          "ev_discharge_wh", "ev_to_grid_wh", "energy_cost_eur")


def summarise(per_segment, car_value):
    """Totals over the stretches. `net_cost_eur` is the grid cost less the energy the car
    took home (charged minus discharged, AC side) valued at `car_value` EUR/kWh: without it,
    charging the car from PV would look like a loss of export revenue."""
    out = {}
    for c in CONTROLLERS:
        tot = dict.fromkeys(SUMMED, 0.0)
        for seg in per_segment:
            for k in SUMMED:
                tot[k] += seg[c].get(k) or 0.0
        pv = tot["pv_wh"]
        used = pv - tot["grid_export_wh"]
        tot["self_consumption_pct"] = 100.0 * used / pv if pv > 0 else None
        tot["net_cost_eur"] = tot["energy_cost_eur"] - car_value * (
            tot["ev_charge_wh"] - tot["ev_discharge_wh"]) / 1000.0
        out[c] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in tot.items()}
    idle = out["idle"]["net_cost_eur"]
    for c in CONTROLLERS:
        out[c]["saving_vs_idle_eur"] = round(idle - out[c]["net_cost_eur"], 3)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="whatif", description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--pv")
    ap.add_argument("--load")
    ap.add_argument("--grid")
    ap.add_argument("--price")
    ap.add_argument("--export-price-entity")
    ap.add_argument("--unit", choices=("W", "kW"), default="W")
    ap.add_argument("--tz", default="UTC")
    ap.add_argument("--plugged", action="append", default=[])
    ap.add_argument("--ev-kwh", type=float, default=60.0)
    ap.add_argument("--soc-start", type=float, default=50.0)
    ap.add_argument("--import-price", type=float, default=0.30)
    ap.add_argument("--export-price", type=float, default=0.08)
    ap.add_argument("--car-value", type=float, default=None,
                    help="EUR/kWh of energy the car takes home (default: the lowest import"
                         " price in the data)")
    ap.add_argument("--max-gap-s", type=float, default=900.0)
    ap.add_argument("--plot")
    ap.add_argument("--keep", help="keep the generated scenario in this folder")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def run(args):
    import zoneinfo

    try:
        tz = zoneinfo.ZoneInfo(args.tz)
    except Exception:  # noqa: BLE001
        raise InputError(f"--tz: unknown time zone {args.tz!r}") from None
    if (args.load or args.grid or args.price) and not args.pv:
        raise InputError("--pv: needed with --load/--grid/--price (Home Assistant export)")
    if not (0 <= args.soc_start <= 100 and 5 <= args.ev_kwh <= 200):
        raise InputError("--soc-start 0..100 and --ev-kwh 5..200")
    fmt, series = read(args.file, args, tz)
    rows, gaps = merge(series, args.max_gap_s, fmt)
    segs = segments(rows)
    skipped = [s for s in segs if s.length < MIN_SEGMENT_S]
    segs = [s for s in segs if s.length >= MIN_SEGMENT_S]
    if not segs:
        raise InputError(f"{args.file}: no stretch of at least {MIN_SEGMENT_S} s with every"
                         " series present")
    if segs[-1].end - segs[0].start > MAX_SPAN_S:
        raise InputError(f"{args.file}: spans more than 10 days; cut it into shorter files")
    has_prices = "price" in series
    value = args.car_value if args.car_value is not None else (
        min(v for _, v in series["price"] if v is not None) if has_prices else args.import_price)
    folder = args.keep or tempfile.mkdtemp(prefix="whatif-")
    os.makedirs(folder, exist_ok=True)
    scen, midnight = build_scenario(rows, segs, args, tz, folder, has_prices)
    longest = max(range(len(segs)), key=lambda i: segs[i].length)
    per = [bench(scen, s.start - midnight, s.length, args.plot if i == longest else None)
           for i, s in enumerate(segs)]
    iso = lambda t: dt.datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")  # noqa: E731
    span = segs[-1].end - segs[0].start
    simulated = sum(s.length for s in segs)
    return {"file": os.path.basename(args.file), "format": fmt, "tz": args.tz,
            "from": iso(segs[0].start), "to": iso(segs[-1].end),
            "span_s": round(span, 1), "simulated_s": round(simulated, 1),
            "gaps": [{"from": iso(a), "to": iso(b), "s": round(b - a, 1), "why": w}
                     for a, b, w in gaps],
            "gap_s": round(sum(b - a for a, b, _ in gaps), 1),
            "skipped_short_stretches": len(skipped), "segments": len(segs),
            "prices": "data" if has_prices else "flat %.3f / %.3f EUR/kWh" % (
                args.import_price, args.export_price),
            "plugged": args.plugged or ["always"],
            "car_value_eur_kwh": round(value, 4),
            "controllers": summarise(per, value)}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = run(args)
    except InputError as e:
        print(f"whatif: {e}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"{out['file']} ({out['format']}): {out['from']} .. {out['to']},"
              f" {out['simulated_s'] / 3600:.1f} h simulated, {len(out['gaps'])} gaps"
              f" ({out['gap_s'] / 60:.0f} min left out); prices: {out['prices']}")
        print(f"car energy valued at {out['car_value_eur_kwh']:.3f} EUR/kWh")
        print(f"{'controller':<10}{'grid EUR':>10}{'net EUR':>10}{'saved EUR':>11}{'self-use %':>12}"
              f"{'car in kWh':>12}{'car out kWh':>13}")
        for c, m in out["controllers"].items():
            sc = m["self_consumption_pct"]
            print(f"{c:<10}{m['energy_cost_eur']:>10.2f}{m['net_cost_eur']:>10.2f}"
                  f"{m['saving_vs_idle_eur']:>11.2f}"
                  f"{'-' if sc is None else format(sc, '.1f'):>12}"
                  f"{m['ev_charge_wh'] / 1000:>12.2f}{m['ev_discharge_wh'] / 1000:>13.2f}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
