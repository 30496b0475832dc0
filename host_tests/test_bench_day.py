"""tools/bench-day as a user runs it: the JSON contract, traces that balance and reproduce
the metrics, the plot, bad input (exit 2 naming the key), and the MicroPython runtime
deciding exactly as CPython (equal traces). Short windows of the shared scenarios keep it
fast; whole days are the benchmark's job."""

import json
import os
import shutil
import subprocess

import pytest
from gwhost import metrics as mx
from gwhost import paths
from plant_rig import SHARED, load_json, shared

BENCH = os.path.join(paths.ROOT, "tools", "bench-day")
KEYS = ("pv_wh", "load_wh", "grid_import_wh", "grid_export_wh", "ev_charge_wh",
        "ev_discharge_wh", "ev_to_grid_wh", "island_export_wh", "self_consumption_pct",
        "effectiveness", "setpoint_writes", "charger_starts", "max_abs_grid_w_during_v2h",
        "backup_unserved_wh")


def bench(*args):
    p = subprocess.run([BENCH, *map(str, args)], capture_output=True, text=True,
                       cwd=paths.ROOT, timeout=300, check=False)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def july_window(tmp_path_factory):
    """The island outage of nl-july-outage (starts at 70200 s), 20 minutes, every
    default controller, with traces and a plot."""
    d = tmp_path_factory.mktemp("bench")
    rc, out, err = bench(shared("nl-july-outage"), "--start", 69600, "--duration", 1200,
                         "--trace", d / "trace", "--plot", d / "day.png")
    assert rc == 0, err
    return d, out


def test_json_last_line_has_every_metric(july_window):
    _, out = july_window
    res = json.loads(out.strip().splitlines()[-1])
    assert res["scenario"] == "nl-july-outage"
    ctl = res["controllers"]
    assert set(ctl) == {"gateway", "oracle", "idle", "ac-pv", "openevse"}
    for name, m in ctl.items():
        missing = [k for k in KEYS if k not in m]
        assert not missing, (name, missing)
        assert m["island_export_wh"] == 0, name
    assert res["safety"] == "firmware" and res["oracle"] == "highs"
    # against the bound (the least exchange any controller could reach) nobody is above 1;
    # the executed oracle (zero latency, the car only) is close to it
    assert all(m["effectiveness"] <= 1.0 for m in ctl.values())
    assert 0.9 < ctl["oracle"]["effectiveness"] <= 1.0
    assert ctl["idle"]["effectiveness"] == pytest.approx(0.0)
    g = ctl["gateway"]
    assert g["backup_unserved_wh"] < 1.0, "the car backs the house up within a second"
    assert ctl["idle"]["backup_unserved_wh"] > 50
    assert g["step_us_median"] > 0 and g["step_us_median_micropython"] > 0
    assert g["micropython_replay_equal"] is True
    assert "controller" in out.splitlines()[1], "a table precedes the JSON"


def test_trace_balances_and_reproduces_the_metrics(july_window):
    d, out = july_window
    res = json.loads(out.strip().splitlines()[-1])["controllers"]
    for name, m in res.items():
        path = d / "trace" / (name + ".csv")
        with open(path) as f:
            assert f.readline().strip() == ",".join(mx.HEADER)
        rows = mx.read_trace(path)
        assert len(rows) == 1200 and rows[0][mx.T] == 69600
        for r in rows:
            rhs = (r[mx.LOAD] - r[mx.UNSERVED]) - (r[mx.PV] - r[mx.CURT]) + r[mx.EV] + r[mx.BATT]
            scale = max(abs(r[mx.LOAD]), abs(r[mx.PV]), abs(r[mx.EV]), abs(r[mx.GRID]), 1.0)
            assert abs(r[mx.GRID] - rhs) <= 0.001 * scale, (name, r)
        again = mx.metrics(rows)
        for k in KEYS:
            if again.get(k) is not None:
                assert again[k] == pytest.approx(m[k], rel=1e-9, abs=1e-9), (name, k)


def test_plot_is_a_png(july_window):
    d, _ = july_window
    with open(d / "day.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(d / "day.png") > 20000


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["ev"].pop("capacity_wh"), "ev.capacity_wh"),
    (lambda r: r["grid"].update(events=[{"t_s": 5, "type": "storm", "duration_s": 1}]),
     "grid.events[0].type"),
])
def test_bad_scenario_exit_2_names_the_key(tmp_path, edit, key):
    raw = load_json(shared("nl-june-clear"))
    edit(raw)
    shutil.copy(os.path.join(SHARED, raw["series"]), tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    rc, out, err = bench(tmp_path / "bad.json", "--json")
    assert rc == 2
    assert key in err and out == ""


def test_bad_config_override_exit_2():
    rc, _, err = bench(shared("nl-june-clear"), "--set", "deadband_w=-5", "--json")
    assert rc == 2 and "control.deadband_w" in err


@pytest.mark.parametrize("start, duration", [
    (70000, 400),  # V2H into the islanded outage: backup, grid-forming
    (75560, 200),  # the outage with the switch at grid, then the reconnection delay
])
def test_micropython_runtime_trace_equals_cpython(tmp_path, start, duration):
    traces = {}
    for rt in ("cpython", "micropython"):
        rc, out, err = bench(shared("nl-july-outage"), "--controller", "gateway",
                             "--runtime", rt, "--start", start, "--duration", duration,
                             "--trace", tmp_path / rt, "--json")
        assert rc == 0, err
        m = json.loads(out.strip().splitlines()[-1])["controllers"]["gateway"]
        assert m["runtime"] == rt and m["step_us_median"] > 0
        traces[rt] = (tmp_path / rt / "gateway.csv").read_text()
    assert len(traces["cpython"].splitlines()) == duration + 1
    assert traces["micropython"] == traces["cpython"]


def test_every_controller_obeys_the_firmware_safety_after_an_outage(tmp_path):
    # The 90 s outage with the switch at grid (75600 s): the firmware's safety module blanks
    # every permit for the 60 s reconnection delay after the grid is back (the old stand-in
    # let the car charge then), then limit_w ramps up at 10 % of 11 kW per minute.
    rc, out, err = bench(shared("nl-july-outage"), "--start", 75000, "--duration", 900,
                         "--controller", "gateway", "--controller", "ac-pv",
                         "--controller", "oracle", "--trace", tmp_path, "--json")
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["safety"] == "firmware"
    for name in ("gateway", "ac-pv", "oracle"):
        rows = mx.read_trace(tmp_path / (name + ".csv"))
        for r in rows:
            t = r[mx.T]
            if 75600 <= t < 75750:
                assert r[mx.EV] <= 0.0, (name, t, r[mx.EV])  # outage, then the delay
                if t >= 75692:  # the charger's own response to the block is over
                    assert abs(r[mx.EV]) < 1.0, (name, t, r[mx.EV])
            elif 75750 <= t < 75810 and name != "ac-pv":  # the re-arm ramp, 18 W/s
                # (ac-pv is an AC wallbox's own logic: it knows the permits, not limit_w)
                assert abs(r[mx.EV]) <= 18.4 * (t - 75750 + 2) + 150, (name, t, r[mx.EV])
