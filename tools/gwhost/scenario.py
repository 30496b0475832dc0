"""Scenario files, format 1 (../shared/bench-contract.md): a JSON file and a CSV beside it.

`load(path)` returns a `Scenario` with checked fields and the series as three lists
(t_s, pv_w, load_w; zero-order hold), plus `import_eur_kwh` / `export_eur_kwh` lists when
the CSV has those columns (else None: no prices).

Optional keys this project adds (issue 9; absent = the old behaviour):
- `ev.departure_soc_pct`: the SoC the car must have when it leaves, i.e. at the end of
  every plugged window that ends before the scenario does (a window that runs to the
  end is not a departure).
- `grid.fuse_a`: the main fuse, A per phase (import and export current); `grid.voltage_v`
  (default 230); `grid.phase_split_pct`: how the house load splits over L1..L3 (three
  numbers summing to 100, default [34, 33, 33]). Car, PV and battery are balanced.
- `gateway_config`: sections of the gateway's config for this scenario (e.g. "plan").

A missing required key or a bad value raises
`ScenarioError` whose message names the key (e.g. "ev.capacity_wh: missing"); the
commands turn it into exit status 2. Unknown keys are ignored.
"""

import csv
import json
import math
import os


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message starts with the key at fault."""


def _get(d, key, path, kind=(int, float), lo=None, hi=None, required=True, default=None):
    name = path + key
    if not isinstance(d, dict):
        raise ScenarioError("{}: expected an object".format(path.rstrip(".")))
    if key not in d:
        if required:
            raise ScenarioError(f"{name}: missing")
        return default
    v = d[key]
    if kind is dict:
        if not isinstance(v, dict):
            raise ScenarioError(f"{name}: expected an object, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ScenarioError(f"{name}: bad value {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ScenarioError(f"{name}: bad value {v!r}")
    if lo is not None and v < lo:
        raise ScenarioError(f"{name}: {v!r} is below {lo!r}")
    if hi is not None and v > hi:
        raise ScenarioError(f"{name}: {v!r} is above {hi!r}")
    return v


class Scenario:
    """Checked scenario: plain attributes, powers in W, energies in Wh, times in s."""

    def __init__(self, raw, base_dir, series=None):
        self.raw = raw
        _get(raw, "format", "", int, 1, 1)
        self.name = _get(raw, "name", "", str)
        self.description = _get(raw, "description", "", str, required=False, default="")
        self.duration_s = _get(raw, "duration_s", "", (int, float), 1, 10 * 86400)
        name = _get(raw, "series", "", str) if series is None else "(in memory)"
        self.series_path = os.path.join(base_dir, name)
        ev = _get(raw, "ev", "", dict)
        self.ev_capacity_wh = _get(ev, "capacity_wh", "ev.", lo=1)
        self.ev_soc_start_pct = _get(ev, "soc_start_pct", "ev.", lo=0, hi=100)
        self.ev_soc_reserve_pct = _get(ev, "soc_reserve_pct", "ev.", lo=0, hi=100)
        self.ev_soc_max_pct = _get(ev, "soc_max_pct", "ev.", lo=0, hi=100)
        self.ev_max_charge_w = _get(ev, "max_charge_w", "ev.", lo=0)
        self.ev_max_discharge_w = _get(ev, "max_discharge_w", "ev.", lo=0)
        if self.ev_soc_reserve_pct > self.ev_soc_max_pct:
            raise ScenarioError("ev.soc_reserve_pct: above ev.soc_max_pct")
        self.plugged = self._plugged(_get(ev, "plugged", "ev.", list))
        self.departure_soc_pct = _get(ev, "departure_soc_pct", "ev.", lo=0, hi=100,
                                      required=False)
        ch = _get(raw, "charger", "", dict)
        self.charger_min_w = _get(ch, "min_w", "charger.", lo=0)
        self.charger_response_s = _get(ch, "response_s", "charger.", lo=0, hi=60)
        self.charger_ramp_w_per_s = _get(ch, "ramp_w_per_s", "charger.", lo=1)
        self.charger_efficiency_pct = _get(ch, "efficiency_pct", "charger.", lo=1, hi=100)
        hb = raw.get("home_battery", None) if isinstance(raw, dict) else None
        self.home_battery = None
        if hb is not None:
            if not isinstance(hb, dict):
                raise ScenarioError("home_battery: expected an object or null")
            p = "home_battery."
            self.home_battery = {
                "capacity_wh": _get(hb, "capacity_wh", p, lo=1),
                "soc_start_pct": _get(hb, "soc_start_pct", p, lo=0, hi=100),
                "soc_min_pct": _get(hb, "soc_min_pct", p, lo=0, hi=100),
                "soc_max_pct": _get(hb, "soc_max_pct", p, lo=0, hi=100),
                "max_charge_w": _get(hb, "max_charge_w", p, lo=0),
                "max_discharge_w": _get(hb, "max_discharge_w", p, lo=0),
                "efficiency_pct": _get(hb, "efficiency_pct", p, lo=1, hi=100),
            }
        grid = _get(raw, "grid", "", dict)
        self.grid_target_w = _get(grid, "target_w", "grid.", lo=-10000, hi=10000)
        self.events = self._events(_get(grid, "events", "grid.", list))
        self.fuse_a = _get(grid, "fuse_a", "grid.", lo=1, hi=1000, required=False)
        self.voltage_v = _get(grid, "voltage_v", "grid.", lo=100, hi=400, required=False,
                              default=230)
        split = _get(grid, "phase_split_pct", "grid.", list, required=False,
                     default=[34, 33, 33])
        if len(split) != 3 or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                  or x < 0 for x in split) or abs(sum(split) - 100) > 0.5:
            raise ScenarioError("grid.phase_split_pct: expected three numbers >= 0 summing"
                                " to 100")
        self.phase_split = [x / 100.0 for x in split]
        gc = raw.get("gateway_config", {}) if isinstance(raw, dict) else {}
        if not isinstance(gc, dict):
            raise ScenarioError("gateway_config: expected an object")
        self.gateway_config = gc
        self.import_eur_kwh = self.export_eur_kwh = None
        if series is None:
            self.t_s, self.pv_w, self.load_w = self._series(name)
        else:  # (t_s, pv_w, load_w[, import, export]) lists: synthetic scenarios for tests
            series = list(series)
            self.t_s, self.pv_w, self.load_w = (list(map(float, c)) for c in series[:3])
            if len(series) == 5:
                self.import_eur_kwh, self.export_eur_kwh = (list(map(float, c))
                                                            for c in series[3:])

    @property
    def has_prices(self):
        return self.import_eur_kwh is not None

    def departures(self):
        """[(window index, end_s)] of the windows that end before the scenario does."""
        if self.departure_soc_pct is None:
            return []
        return [(i, w[1]) for i, w in enumerate(self.plugged) if w[1] < self.duration_s]

    def _plugged(self, windows):
        out = []
        last_end = -1
        for i, w in enumerate(windows):
            name = f"ev.plugged[{i}]"
            if not isinstance(w, list) or len(w) not in (2, 3) or any(
                    isinstance(x, bool) or not isinstance(x, (int, float)) for x in w):
                raise ScenarioError(f"{name}: expected [start_s, end_s] or [start_s, end_s, soc]")
            if not (0 <= w[0] < w[1]) or w[0] < last_end:
                raise ScenarioError(f"{name}: windows must be ordered, start < end")
            if len(w) == 3 and not 0 <= w[2] <= 100:
                raise ScenarioError(f"{name}: arrival soc {w[2]!r} outside 0..100")
            last_end = w[1]
            out.append((float(w[0]), float(w[1]), float(w[2]) if len(w) == 3 else None))
        return out

    def _events(self, events):
        out = []
        for i, e in enumerate(events):
            p = f"grid.events[{i}]."
            t = _get(e, "t_s", p, lo=0)
            kind = _get(e, "type", p, str)
            dur = _get(e, "duration_s", p, lo=0)
            if kind == "outage":
                sw = _get(e, "switch", p, str)
                if sw not in ("island", "grid"):
                    raise ScenarioError(f"{p}switch: {sw!r} not 'island' or 'grid'")
            elif kind == "flicker":
                sw = "grid"
            else:
                raise ScenarioError(f"{p}type: {kind!r} not 'outage' or 'flicker'")
            out.append((float(t), float(t) + float(dur), sw == "island"))
        out.sort()
        return out

    def _series(self, series):
        if not os.path.isfile(self.series_path):
            raise ScenarioError(f"series: file {series!r} not found")
        ts, pv, load = [], [], []
        with open(self.series_path, newline="") as f:
            rd = csv.reader(f)
            head = [h.strip() for h in next(rd, [])]
            for col in ("t_s", "pv_w", "load_w"):
                if col not in head:
                    raise ScenarioError(f"series: column {col} missing in {series}")
            it, ip, il = head.index("t_s"), head.index("pv_w"), head.index("load_w")
            has_i, has_e = "import_eur_kwh" in head, "export_eur_kwh" in head
            if has_i != has_e:
                raise ScenarioError(f"series: {series} needs both import_eur_kwh and"
                                    " export_eur_kwh, or neither")
            if has_i:
                ii, ie = head.index("import_eur_kwh"), head.index("export_eur_kwh")
                self.import_eur_kwh, self.export_eur_kwh = imp, exp = [], []
            for n, row in enumerate(rd, 2):
                if not row:
                    continue
                try:
                    t, p, l = float(row[it]), float(row[ip]), float(row[il])
                except (ValueError, IndexError):
                    raise ScenarioError(f"series: {series} line {n}: not a number") from None
                if has_i:
                    try:
                        pi, pe = float(row[ii]), float(row[ie])
                    except (ValueError, IndexError):
                        raise ScenarioError(f"series: {series} line {n}: import_eur_kwh /"
                                            " export_eur_kwh not a number") from None
                    if not (math.isfinite(pi) and math.isfinite(pe) and -10 <= pe <= pi <= 10):
                        raise ScenarioError(f"series: {series} line {n}: prices must satisfy"
                                            " -10 <= export_eur_kwh <= import_eur_kwh <= 10")
                    imp.append(pi)
                    exp.append(pe)
                if not (math.isfinite(p) and math.isfinite(l)) or p < 0 or l < 0:
                    raise ScenarioError(f"series: {series} line {n}: pv_w and load_w must be >= 0")
                if ts and t <= ts[-1]:
                    raise ScenarioError(f"series: {series} line {n}: t_s not increasing")
                ts.append(t)
                pv.append(p)
                load.append(l)
        if not ts:
            raise ScenarioError(f"series: {series} has no rows")
        return ts, pv, load

    def arrival_soc(self, i, left_soc):
        w = self.plugged[i]
        if w[2] is not None:
            return w[2]
        return self.ev_soc_start_pct if i == 0 else left_soc


def from_dict(raw, series):
    """A scenario from a dict (format 1, without `series`) and (t_s, pv_w, load_w) lists."""
    raw = dict(raw, series=raw.get("series", "memory.csv"))
    return Scenario(raw, ".", series=series)


def load(path):
    """Read and check a scenario file; raises ScenarioError (message names the key)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as e:
        raise ScenarioError(f"scenario: cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise ScenarioError(f"scenario: {path} is not JSON ({e})")
    if not isinstance(raw, dict):
        raise ScenarioError("scenario: top level must be an object")
    return Scenario(raw, os.path.dirname(os.path.abspath(path)))
