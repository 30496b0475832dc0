"""The optional scenario keys of issue 9: price columns, departure, fuse and phase split,
each bad value a ScenarioError naming the key (bench-day: exit 2)."""

import json
import os
import subprocess

import pytest
from gwhost import paths
from gwhost import scenario as scn

BASE = {"format": 1, "name": "t", "duration_s": 60, "series": "s.csv",
        "ev": {"capacity_wh": 60000, "soc_start_pct": 50, "soc_reserve_pct": 30,
               "soc_max_pct": 90, "max_charge_w": 11000, "max_discharge_w": 10000,
               "plugged": [[0, 30], [40, 60]]},
        "charger": {"min_w": 150, "response_s": 1.0, "ramp_w_per_s": 3000,
                    "efficiency_pct": 94},
        "home_battery": None, "grid": {"target_w": 0, "events": []}}


def write(tmp, csv_text, **over):
    raw = json.loads(json.dumps(BASE))
    for k, v in over.items():
        sec, _, key = k.partition("__")
        if key:
            raw[sec][key] = v
        else:
            raw[sec] = v
    (tmp / "s.csv").write_text(csv_text)
    p = tmp / "s.json"
    p.write_text(json.dumps(raw))
    return str(p)


PRICED = "t_s,pv_w,load_w,import_eur_kwh,export_eur_kwh\n0,0,100,0.25,0.08\n30,500,100,0.1,-0.02\n"


def test_prices_departure_and_fuse_load(tmp_path):
    sc = scn.load(write(tmp_path, PRICED, ev__departure_soc_pct=70, grid__fuse_a=25,
                        grid__phase_split_pct=[50, 30, 20]))
    assert sc.has_prices and sc.import_eur_kwh == [0.25, 0.1]
    assert sc.export_eur_kwh == [0.08, -0.02]
    assert sc.departures() == [(0, 30.0)], "the window that runs to the end is no departure"
    assert sc.fuse_a == 25 and sc.phase_split == [0.5, 0.3, 0.2]
    plain = scn.load(write(tmp_path, "t_s,pv_w,load_w\n0,0,100\n"))
    assert not plain.has_prices and plain.departures() == [] and plain.fuse_a is None


@pytest.mark.parametrize("csv_text,over,key", [
    ("t_s,pv_w,load_w,import_eur_kwh\n0,0,1,0.2\n", {}, "export_eur_kwh"),
    ("t_s,pv_w,load_w,import_eur_kwh,export_eur_kwh\n0,0,1,x,0.1\n", {}, "line 2"),
    ("t_s,pv_w,load_w,import_eur_kwh,export_eur_kwh\n0,0,1,0.1,0.2\n", {}, "line 2"),
    (PRICED, {"ev__departure_soc_pct": 120}, "ev.departure_soc_pct"),
    (PRICED, {"grid__fuse_a": 0}, "grid.fuse_a"),
    (PRICED, {"grid__phase_split_pct": [50, 50]}, "grid.phase_split_pct"),
    (PRICED, {"gateway_config": [1]}, "gateway_config"),
])
def test_bad_values_name_the_key(tmp_path, csv_text, over, key):
    with pytest.raises(scn.ScenarioError) as e:
        scn.load(write(tmp_path, csv_text, **over))
    assert key in str(e.value)


def test_bench_day_rejects_a_bad_plan_section(tmp_path):
    path = write(tmp_path, PRICED, gateway_config={"plan": {"grid_charge": "yes"}})
    p = subprocess.run([os.path.join(paths.ROOT, "tools", "bench-day"), path, "--json"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 2
    assert "plan.grid_charge" in p.stderr
