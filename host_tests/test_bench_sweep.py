"""tools/bench-sweep on a small subset (the whole sweep is a benchmark, not a test): the
generated days run, every metric of the contract is printed, and the safety invariant holds."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sweep_subset_prints_the_contract(tmp_path):
    r = subprocess.run([os.path.join(ROOT, "tools", "bench-sweep"), "--days", "2",
                        "--seed", "7", "--start", "43200", "--duration", "1800",
                        "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, check=False, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("days", "effectiveness_min", "effectiveness_p10", "effectiveness_median",
                "saving_missed_max", "saving_missed_p90", "ev_to_grid_pct_max", "runtime_s"):
        assert key in out
    assert out["days"] == 2 and out["failed"] == 0 and len(out["rows"]) == 2
    assert out["island_export_wh_max"] == 0
    assert (tmp_path / "sweep.png").stat().st_size > 10000
    for row in out["rows"]:
        assert row["effectiveness"] is None or row["effectiveness"] <= 1.0 + 1e-9


def test_the_same_seed_draws_the_same_houses():
    import sys

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from gwhost import benchsweep

    a, b = benchsweep.draw_houses(40, 1), benchsweep.draw_houses(40, 1)
    assert a == b and a != benchsweep.draw_houses(40, 2)
    assert {h["weather"] for h in a} == {"clear", "haze", "cumulus", "overcast", "mixed"}
    assert {h["car"] for h in a} == {"commuter", "home", "weekend", "evening"}
    assert {h["tariff"] for h in a} == {None, "flat", "tou", "dynamic"}
    assert {h["battery_kwh"] > 0 for h in a} == {True, False}
