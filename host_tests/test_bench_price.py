"""Issue 9 acceptance on the project's price scenarios, as a user runs tools/bench-day:
the firmware's plan costs within 10 % of the cheapest plan with perfect knowledge and
less than the AC PV-mode baseline, the car leaves with its target SoC, no car energy
leaves through the grid, the cost recomputes from the trace; and on the tight-fuse
scenario the car yields to the house in the same control cycle and V2H shaves the
house's own peak. Whole day for the cost (about 40 s on 2 cores), windows for the fuse."""

import json
import os
import subprocess

import pytest
from gwhost import metrics as mx
from gwhost import paths
from gwhost import scenario as scn

BENCH = os.path.join(paths.ROOT, "tools", "bench-day")
SCEN = os.path.join(paths.ROOT, "scenarios")


def bench(*args):
    p = subprocess.run([BENCH, *map(str, args), "--json", "--jobs", "2"], capture_output=True,
                       text=True, cwd=paths.ROOT, timeout=600, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])["controllers"]


@pytest.fixture(scope="module")
def june(tmp_path_factory):
    d = tmp_path_factory.mktemp("price")
    res = bench(os.path.join(SCEN, "nl-june-dynamic.json"), "--controller", "gateway",
                "--controller", "oracle", "--controller", "ac-pv", "--trace", d)
    return d, res


def test_cost_within_ten_percent_of_the_oracle_and_below_ac_pv(june):
    _, res = june
    g, o, a = (res[n]["energy_cost_eur"] for n in ("gateway", "oracle", "ac-pv"))
    assert o > 0
    assert g <= o * 1.10, (g, o)
    assert g < a, (g, a)
    assert o <= g + 1e-9, "the oracle is the cheapest plan"


def test_departure_reached_and_no_car_export(june):
    _, res = june
    g = res["gateway"]
    assert g["departure_soc_met"] is True, g["departure_soc_pct"]
    assert res["oracle"]["departure_soc_met"] is True
    assert g["ev_to_grid_wh"] <= 0.01 * g["ev_discharge_wh"]
    assert g["island_export_wh"] == 0
    assert g["fuse_overload_cycles"] == 0
    assert g["micropython_replay_equal"] is True


def test_cost_recomputes_from_the_trace(june):
    d, res = june
    sc = scn.load(os.path.join(SCEN, "nl-june-dynamic.json"))
    rows = mx.read_trace(d / "gateway.csv")
    assert mx.energy_cost_eur(rows, sc) == pytest.approx(res["gateway"]["energy_cost_eur"])


def test_fuse_yield_at_night():
    # 02:00-03:30 a 4.5 kW heater (half of the house on L1) while the plan charges
    res = bench(os.path.join(SCEN, "nl-december-fuse.json"), "--start", 9600, "--duration",
                3000, "--controller", "gateway", "--controller", "oracle")
    g = res["gateway"]
    assert g["ev_charge_wh"] > 5000, "the plan charges in this window"
    assert g["fuse_unyielded_run_max_cycles"] <= 1, "the decision yields in the same cycle"
    # what the physics allows: the charger's 1 s dead time plus its ramp, at most 2 s
    assert g["fuse_overload_run_max_cycles"] <= 10
    assert g["max_phase_import_a"] <= 25 * 1.05


def test_v2h_shaves_the_evening_peak():
    # 19:30-19:40 11 kW extra: the house alone takes 26+ A on L1
    res = bench(os.path.join(SCEN, "nl-december-fuse.json"), "--start", 69900, "--duration",
                1200, "--controller", "gateway", "--controller", "idle")
    assert res["idle"]["max_phase_import_a"] > 25
    assert res["idle"]["fuse_overload_cycles"] > 1000
    g = res["gateway"]
    # the step is 11 kW at once: the charger needs its 1 s dead time and ~3 s of ramp to
    # take it; the decision is immediate and the overload lasts seconds, not 10 minutes
    assert g["fuse_unyielded_run_max_cycles"] <= 1
    assert g["fuse_overload_run_max_cycles"] <= 20, g["fuse_overload_run_max_cycles"]
    assert g["max_phase_import_a"] <= 25 * 1.05, g["max_phase_import_a"]
