"""Metering accuracy and cost benchmark: the firmware's own code over reference cases.

Usage: tools/bench-metering [--json] [--quick] [--runtime micropython|cpython] [--cases FILE]

Builds a grid of reference cases (power factor 1 / 0.5 lagging / 0.5 leading, import and
export, 0.1 A to the CT's full scale of 100 A, 3rd and 5th current harmonics of 10-30 %,
voltage harmonics, DC offsets, noise, 49.5-50.5 Hz, frequency drift) and runs them through
tools/mpybench/metering.py on the MicroPython unix port (the firmware's metering core and
the simulated ADC, virtual time). Each case warms up for 2 windows (offset tracking,
zero-crossing lock) and then checks 3 windows of both CT channels against the truth.
Prints one JSON object on its last line:
  cases, windows, power_spec_violations (cases with a real-power error > 1 % of reading +
  5 W, or an invalid window), max_power_error_pct, max_power_error_w, max_power_error_ratio
  (error / allowance), sign_errors, max_vrms_error_pct, max_freq_error_mhz,
  invalid_windows, us_per_window_unix (metering core only), sim_us_per_window_unix,
  realtime_load_pct (core + synthesis per 200 ms), max_hold_us, alloc_bytes_per_window,
  noise_sweep_sigma_uv_to_w ({ADC noise sigma uV: [power error sigma W, max W]} at 0.1 A:
  the noise floor; the reference grid uses sigma 0.6 mV and 0.8 mV, about one ADC step).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from gwhost import paths

SCRIPT = os.path.join(paths.ROOT, "tools", "mpybench", "metering.py")
CT_FULL_SCALE_A = 100
CHANNELS = [{"role": "grid", "pin": 39}, {"role": "house", "pin": 34}]
NOMINAL = {"noise_uv": 1500}  # triangular +/-1.5 mV: sigma 0.61 mV (0.8 ADC step)
HARSH = {"noise_uv": 2000,  # sigma 0.82 mV
          "v_offset_uv": 60000, "i_offset_uv": 90000, "skew_us": 60}
HARMONICS = {
    "none": {},
    "h3_10": {"i_h3_pct": 10},
    "h3_30": {"i_h3_pct": 30, "i_h3_deg": 30},
    "h5_20": {"i_h5_pct": 20, "i_h5_deg": -45},
    "h3_30_h5_20": {"i_h3_pct": 30, "i_h5_pct": 20, "v_h3_pct": 3, "v_h5_pct": 5},
}
PF = {"pf1": (1.0, 0.0), "lag05": (0.5, 1.0), "lead05": (0.5, -1.0)}


def make_cases(quick=False):
    currents = [0.1, 2, 40, CT_FULL_SCALE_A] if quick else [0.1, 0.5, 2, 10, 40,
                                                            CT_FULL_SCALE_A]
    freqs = [49500, 50500] if quick else [49500, 50000, 50500]
    harms = ["none", "h3_30_h5_20"] if quick else list(HARMONICS)
    imps = {"nominal": NOMINAL} if quick else {"nominal": NOMINAL, "harsh": HARSH}
    cases = []
    v_mv = 230000
    for amps in currents:
        for pfk, (pf, qs) in PF.items():
            for sign in (1, -1):
                for hk in harms:
                    for fi, f in enumerate(freqs):
                        for ik, imp in imps.items():
                            s_va = v_mv / 1000 * amps
                            p = round(sign * s_va * pf)
                            q = round(qs * s_va * (1 - pf * pf) ** 0.5)
                            # house CT: half the current, PF 0.8 lagging, always import
                            ph = round(s_va / 2 * 0.8)
                            qh = round(s_va / 2 * 0.6)
                            sim = dict(imp)
                            sim.update(HARMONICS[hk])
                            sim["seed"] = 1 + len(cases)
                            if fi == 0 and ik == "nominal":
                                sim.update({"drift_mhz": 200, "drift_s": 20})
                            cases.append({
                                "id": "%gA-%s-%s-%s-%d-%s" % (amps, pfk, "imp" if sign > 0
                                                              else "exp", hk, f, ik),
                                "channels": CHANNELS, "sim": sim, "v_mv": v_mv,
                                "f_millihz": f, "w": [p, ph], "var": [q, qh],
                                "start_us": 7919 * len(cases) % 20000,
                                "gap_us": 200 + 97 * len(cases) % 2500,
                            })
    return cases


def sweep_cases():
    """Noise floor: 0.1 A at PF 1 for rising ADC noise (not part of the spec count)."""
    out = []
    for amp in (1000, 2000, 4000, 8000):
        out.append({"id": "sweep-%d" % amp, "channels": CHANNELS, "v_mv": 230000,
                    "f_millihz": 50000, "w": [23, 0], "var": [0, 0], "windows": 30,
                    "sim": {"noise_uv": amp, "seed": amp}, "gap_us": 700})
    return out


def noise_sweep(results):
    """{noise sigma uV: [sigma of the power error W, max error W]} over the sweep cases."""
    out = {}
    for r in results:
        amp = int(r["id"].split("-")[1])
        errs = [w[0] - 23 for w in r["w"]]
        mean = sum(errs) / len(errs)
        sd = (sum((e - mean) ** 2 for e in errs) / len(errs)) ** 0.5
        out["%d" % round(amp / 6 ** 0.5)] = [round(sd, 2), max(abs(e) for e in errs)]
    return out


def run(cases, runtime):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")
        path = f.name
    try:
        if runtime == "cpython":
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([os.path.join(paths.ROOT, "host_tests",
                                                              "cpython"), paths.FIRMWARE])
            cmd = [sys.executable, SCRIPT, path]
        else:
            env = paths.micropython_env()
            cmd = [paths.MICROPYTHON, "-X", "heapsize=" + paths.HEAP, SCRIPT, path]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=paths.ROOT,
                           timeout=1800, check=False)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
        raise SystemExit("bench-metering: the %s run failed (exit %d)" % (runtime, p.returncode))
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return [x for x in lines if not x.get("summary")], lines[-1]


def evaluate(cases, results, summary):
    by_id = {c["id"]: c for c in cases}
    sweep = [r for r in results if r["id"].startswith("sweep-")]
    results = [r for r in results if not r["id"].startswith("sweep-")]
    out = {"cases": len(results), "windows": 0, "power_spec_violations": 0,
           "max_power_error_pct": 0.0, "max_power_error_w": 0.0, "max_power_error_ratio": 0.0,
           "sign_errors": 0, "max_vrms_error_pct": 0.0, "max_freq_error_mhz": 0,
           "invalid_windows": 0}
    worst = []
    for r in results:
        c = by_id[r["id"]]
        bad = False
        for k, ws in enumerate(r["w"]):
            out["windows"] += 1
            if not r["valid"][k]:
                out["invalid_windows"] += 1
                bad = True
            for ch, truth in enumerate(c["w"]):
                err = abs(ws[ch] - truth)
                allow = 0.01 * abs(truth) + 5
                out["max_power_error_w"] = max(out["max_power_error_w"], err)
                if truth:
                    out["max_power_error_pct"] = max(out["max_power_error_pct"],
                                                     100.0 * err / abs(truth))
                ratio = err / allow
                if ratio > out["max_power_error_ratio"]:
                    out["max_power_error_ratio"] = ratio
                    worst = [r["id"], ch, ws[ch], truth]
                if err > allow:
                    bad = True
                if ws[ch] * truth < 0:
                    out["sign_errors"] += 1
            verr = 100.0 * abs(r["v_mv"][k] - c["v_mv"]) / c["v_mv"]
            out["max_vrms_error_pct"] = max(out["max_vrms_error_pct"], verr)
            ferr = abs(r["f_millihz"][k] - r["f_true"][k])
            out["max_freq_error_mhz"] = max(out["max_freq_error_mhz"], ferr)
        out["power_spec_violations"] += 1 if bad else 0
    for k in ("max_power_error_pct", "max_power_error_w", "max_power_error_ratio",
              "max_vrms_error_pct"):
        out[k] = round(out[k], 3)
    out["worst_case"] = worst
    out["noise_sweep_sigma_uv_to_w"] = noise_sweep(sweep)
    out["us_per_window_unix"] = summary["us_per_window"]
    out["sim_us_per_window_unix"] = summary["sim_us_per_window"]
    out["realtime_load_pct"] = round(100.0 * (summary["us_per_window"]
                                              + summary["sim_us_per_window"]) / 200000, 2)
    out["max_hold_us"] = summary["max_hold_us"]
    out["alloc_bytes_per_window"] = summary["alloc_bytes_per_window"]
    out["runtime"] = summary["runtime"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="metering accuracy benchmark (firmware code)")
    ap.add_argument("--json", action="store_true", help="only the JSON summary")
    ap.add_argument("--quick", action="store_true", help="a smaller grid")
    ap.add_argument("--runtime", choices=("micropython", "cpython"), default="micropython")
    ap.add_argument("--cases", help="write the generated cases to this file")
    args = ap.parse_args(argv)
    cases = make_cases(args.quick)
    if args.cases:
        with open(args.cases, "w") as f:
            json.dump(cases, f, indent=1)
    results, summary = run(cases + sweep_cases(), args.runtime)
    out = evaluate(cases, results, summary)
    if not args.json:
        for k, v in out.items():
            print("%-28s %s" % (k, v))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
