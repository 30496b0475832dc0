"""`make sim`: the whole gateway, live, on a simulated house.

Plays the tour (scenarios/tour.json: a day in ten minutes) or any scenario with
the unmodified firmware on a MicroPython unix port (tools/sim-live does the
work), shows a live status line, then writes a PNG plot and a short report to
out/ and prints the metrics as one JSON object on its last line. The runtime is
the ESP32-like build (32-bit, float32, firmware frozen, 110 KB heap) when it is
built and current, else the 64-bit PyPI port (RUNTIME= / --runtime chooses).

    make sim [SCENARIO=file.json] [START=s] [DURATION=s] [RUNTIME=unix64|esp32like]
"""

import argparse
import json
import os
import sys
import time

from gwhost import paths
from gwhost.liveplot import plot, report
from gwhost.scenario import ScenarioError, load
from gwhost.simlive import (LiveRun, add_runtime_arguments, check_runtime, default_runtime,
                            write_trace)

TOUR = os.path.join(paths.ROOT, "scenarios", "tour.json")


def status_line(start_wall, total_s):
    tty = sys.stderr.isatty()

    def show(r):
        el = time.monotonic() - start_wall
        txt = ("%5.0f s/%.0f  grid %+6d W  PV %5d W  house %5d W  car %+6d W  SoC %5.1f %%  "
               "%-5s %s  %s" % (
                   el, total_s, r["grid_w"], r["pv_w"], r["load_w"], r["ev_w"],
                   r["ev_soc_pct"], "GRID" if r["grid_up"] else "OUT",
                   "island" if r["switch_island"] else "", r["safety"]))
        if tty:
            sys.stderr.write("\r" + txt[:150].ljust(150))
        elif int(el) % 10 == 0:
            sys.stderr.write(txt + "\n")
        sys.stderr.flush()
    return show


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=TOUR)
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of real time (default: the scenario to its end)")
    ap.add_argument("--out", default=os.path.join(paths.ROOT, "out"))
    add_runtime_arguments(ap)
    args = ap.parse_args(argv)
    runtime = args.runtime or default_runtime()
    err = check_runtime(runtime)
    if err:
        print("sim: error: %s" % err, file=sys.stderr)
        return 2
    try:
        scen = load(args.scenario)
    except (ScenarioError, OSError) as e:
        print("sim: error: %s" % e, file=sys.stderr)
        return 2
    duration = args.duration if args.duration else scen.duration_s - args.start
    if duration <= 0:
        print("sim: error: nothing to play: start %s is past the scenario's end (%s s)"
              % (args.start, scen.duration_s), file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    print("sim: %s from %.0f s for %.0f s of real time on %s (Ctrl-C stops it cleanly)"
          % (scen.name, args.start, duration, runtime), file=sys.stderr)
    run = LiveRun(scen, args.start, duration, warmup_s=0 if args.start == 0 else None,
                  status=status_line(time.monotonic(), duration), runtime=runtime)
    try:
        m = run.run()
    except KeyboardInterrupt:
        print("\nsim: stopped (Ctrl-C); everything it started has been stopped", file=sys.stderr)
        return 130
    sys.stderr.write("\n")
    base = os.path.join(args.out, "sim-%s" % scen.name)
    write_trace(run.trace, base + ".csv")
    with open(base + "-firmware.log", "w") as f:
        f.write("\n".join(run.fw_lines) + "\n")
    m["plot"] = os.path.relpath(base + ".png", paths.ROOT)
    m["report"] = os.path.relpath(base + ".md", paths.ROOT)
    m["trace"] = os.path.relpath(base + ".csv", paths.ROOT)
    if run.trace:
        plot(run.trace, base + ".png", "%s: the firmware live on the MicroPython unix port"
             % scen.name)
    report(m, run.trace, base + ".md", scen.name)
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
