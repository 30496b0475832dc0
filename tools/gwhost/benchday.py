"""`tools/bench-day`: the whole-day lockstep benchmark (../shared/bench-contract.md).

Usage: tools/bench-day SCENARIO.json [--controller NAME ...] [--trace DIR] [--plot FILE.png]
                       [--runtime cpython|micropython] [--start S] [--duration S]
                       [--set KEY=INT ...] [--jobs N] [--no-replay] [--json]

Runs the firmware control core (`gateway`) and the comparison controllers (idle, oracle,
oracle-free, oracle-grid, ac-pv, openevse) against the plant in virtual time, 200 ms steps, rows and
metrics at 1 s. The last line of stdout is the JSON object of the contract; without --json
a table comes before it. Effectiveness needs idle and oracle: they are run even when not
asked for (and then not listed). A bad scenario is exit status 2 with the key named.

`--runtime micropython` runs the core on the MicroPython unix port (one pipe round trip per
step). With the default CPython runtime the recorded step records are also replayed
through the core on the unix port afterwards, open loop, to report its median step time
there and to check that it decides exactly the same (`micropython_replay_equal`).
`--set KEY=INT` overrides a key of the control config (gateway/control_cfg.py SCHEMA).

Scenarios with prices (CSV columns import_eur_kwh / export_eur_kwh): every controller gets
`energy_cost_eur`; `oracle` is the cheapest plan with perfect knowledge (oracleplan.py) and
`effectiveness` is computed against `oracle-grid` (the physical limit of grid exchange).
Departures (ev.departure_soc_pct) add departure_soc_pct / departure_shortfall_pct /
departure_soc_met; a fuse (grid.fuse_a) adds the fuse_* metrics; max_phase_import_a always.
"""

import argparse
import concurrent.futures
import json
import os
import sys

from gwhost import baselines, fw, gwcore, lockstep
from gwhost import metrics as mx
from gwhost import scenario as scn

DEFAULT = ("gateway", "oracle", "idle", "ac-pv", "openevse")
NAMES = ("gateway", *baselines.BASELINES)
TABLE = (("effectiveness", "eff", ".3f"), ("energy_cost_eur", "EUR", ".3f"), ("grid_import_wh", "imp Wh", ".0f"),
         ("grid_export_wh", "exp Wh", ".0f"), ("ev_charge_wh", "chg Wh", ".0f"),
         ("ev_discharge_wh", "dis Wh", ".0f"), ("ev_to_grid_wh", "ev>grid", ".1f"),
         ("island_export_wh", "isl exp", ".2f"), ("setpoint_writes", "writes", "d"),
         ("charger_starts", "starts", "d"), ("max_abs_grid_w_during_v2h", "v2h |g|max", ".0f"),
         ("backup_unserved_wh", "bu unsrv", ".1f"), ("max_phase_import_a", "ph A max", ".1f"),
         ("step_us_median", "step us", ""))


def make_controller(name, runtime, overrides, replay=True):
    if name == "gateway":
        return gwcore.Gateway(runtime=runtime, overrides=overrides,
                              record=replay and runtime == "cpython")
    return baselines.BASELINES[name]()


def run_one(args):
    """One controller over the window (a process of its own when --jobs > 1)."""
    path, name, runtime, overrides, start, duration, trace_dir, quiet, replay = args
    sc = scn.load(path)
    ctl = make_controller(name, runtime, overrides, replay)
    label = "" if quiet else f"{sc.name} {name}"
    rows, m = lockstep.run(sc, ctl, start, duration, label=label if not quiet else "")
    if name == "gateway":
        m["runtime"] = runtime
        if runtime == "cpython" and replay:
            m.update(gwcore.replay_on_micropython(ctl))
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
        mx.write_trace(os.path.join(trace_dir, name + ".csv"), rows)
    return name, rows, m


def parse_set(items):
    out = {}
    for it in items or ():
        key, _, val = it.partition("=")
        try:
            out[key] = val if val in ("auto", "v1g", "off", "car_deep_reserve",
                                      "battery_first", "car_first") else int(val)
        except ValueError:
            raise SystemExit(f"bench-day: --set {it}: value must be an integer or a choice")
    return out


def table(res, order):
    head = f"{'controller':<12}" + "".join(f"{h:>12}" for _, h, _ in TABLE)
    lines = [head]
    for n in order:
        m = res[n]
        cells = []
        for key, _, fmt in TABLE:
            v = m.get(key)
            cells.append(f"{'-' if v is None else format(v, fmt):>12}")
        lines.append(f"{n:<12}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench-day", description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--controller", action="append", choices=NAMES)
    ap.add_argument("--trace", metavar="DIR")
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython")
    ap.add_argument("--start", type=float, default=0.0, help="window start, s")
    ap.add_argument("--duration", type=float, default=None, help="window length, s")
    ap.add_argument("--set", action="append", metavar="KEY=INT")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-replay", action="store_true",
                    help="skip the open-loop replay on the unix port (step time, equality)")
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args(argv)
    try:
        sc = scn.load(args.scenario)
        overrides = parse_set(args.set)
        fw.load("gateway.control_cfg").make_config(gwcore.gateway_config(sc, overrides))
        ps = gwcore.plan_setup(sc)
        if ps:  # the scenario's plan section and schedule, checked as the firmware does
            fw.load("gateway.plan").make_config(ps["plan"])
            if ps["tariff"]:
                fw.load("gateway.tariff").Tariff().load(ps["tariff"])
    except (scn.ScenarioError, ValueError) as e:
        print(f"bench-day: {e}", file=sys.stderr)
        return 2
    if not 0 <= args.start < sc.duration_s:
        print(f"bench-day: --start {args.start}: outside the scenario", file=sys.stderr)
        return 2
    duration = args.duration if args.duration else sc.duration_s - args.start
    asked = list(dict.fromkeys(args.controller or DEFAULT))
    # effectiveness is against the physical limit: with prices that is oracle-grid (the
    # `oracle` then is the cheapest plan, not the least grid exchange)
    ref = "oracle-grid" if sc.has_prices else "oracle"
    todo = asked + [n for n in ("idle", ref) if n not in asked]
    quiet = args.jobs > 1
    jobs = [(args.scenario, n, args.runtime, overrides, args.start, duration,
             args.trace if n in asked else None, quiet, not args.no_replay) for n in todo]
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as ex:
            done = list(ex.map(run_one, jobs))
    else:
        done = [run_one(j) for j in jobs]
    rows = {n: r for n, r, _ in done}
    res = {n: m for n, _, m in done}
    for n in todo:
        res[n]["effectiveness"] = mx.effectiveness(res[n], res["idle"], res[ref])
        if "oracle-free" in res:  # the same against the oracle that may export car energy
            res[n]["effectiveness_vs_oracle_free"] = mx.effectiveness(
                res[n], res["idle"], res["oracle-free"])
    if args.plot:
        from gwhost import plot

        plot.plot_day(args.plot, sc, {n: rows[n] for n in asked})
    out = {"scenario": sc.name, "start_s": args.start, "duration_s": duration,
           "controllers": {n: res[n] for n in asked}}
    if not args.json:
        print(f"{sc.name}: {sc.description}")
        print(table(res, asked))
    print(json.dumps(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
