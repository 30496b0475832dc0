"""tools/whatif: a user's own recording (plain CSV or a Home Assistant export) is replayed
against doing nothing, an AC PV charger, the gateway and the oracle; gaps are reported and
never bridged; malformed files are clear errors naming row and column, exit status 2."""

import datetime as dt
import json
import math
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "whatif")
T0 = dt.datetime(2026, 6, 21, 8, 0, tzinfo=dt.timezone.utc)


def sunny_morning(minutes=120):
    """(t, pv_w, load_w) each minute: a PV ramp over a steady house with a kettle."""
    out = []
    for m in range(minutes):
        pv = 3000 * math.sin(math.pi * (m + 30) / (2 * (minutes + 30)))
        load = 400 + (2000 if 40 <= m < 44 else 0)
        out.append((T0 + dt.timedelta(minutes=m), round(pv), load))
    return out


def run(*args):
    r = subprocess.run([TOOL, *args, "--json"], capture_output=True, text=True, check=False,
                       timeout=600)
    return r, (json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None)


def test_plain_csv_with_grid_column(tmp_path):
    f = tmp_path / "day.csv"
    f.write_text("time,pv_w,grid_w\n" + "".join(
        f"{int(t.timestamp())},{pv},{load - pv}\n" for t, pv, load in sunny_morning()))
    r, out = run(str(f), "--tz", "Europe/Amsterdam")
    assert r.returncode == 0, r.stderr
    c = out["controllers"]
    assert out["format"] == "csv" and out["gaps"] == [] and out["simulated_s"] == 119 * 60
    assert out["from"].startswith("2026-06-21T10:00:00+02:00")
    # the same recorded house under every controller
    assert all(m["pv_wh"] == pytest.approx(c["idle"]["pv_wh"]) for m in c.values())
    # the gateway puts the surplus into the car: it uses more of its own PV than doing
    # nothing or an AC charger with a 1.4 kW minimum, and saves money against idle
    assert c["gateway"]["self_consumption_pct"] > c["ac-pv"]["self_consumption_pct"]
    assert c["gateway"]["self_consumption_pct"] > c["idle"]["self_consumption_pct"] + 30
    assert c["gateway"]["ev_charge_wh"] > 1000 and c["gateway"]["saving_vs_idle_eur"] > 0
    assert c["gateway"]["ev_to_grid_wh"] <= 0.01 * max(1.0, c["gateway"]["ev_discharge_wh"]) + 1


def test_home_assistant_export_in_kw_with_a_gap(tmp_path):
    lines = ["entity_id,state,last_changed"]
    for i, (t, pv, load) in enumerate(sunny_morning()):
        ts = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(f"sensor.pv_power,{pv / 1000:.3f},{ts}")
        state = "unavailable" if 60 <= i < 75 else f"{load / 1000:.3f}"
        lines.append(f"sensor.house_load,{state},{ts}")
        lines.append(f"sensor.other,12,{ts}")
    f = tmp_path / "history.csv"
    f.write_text("\n".join(lines) + "\n")
    r, out = run(str(f), "--pv", "sensor.pv_power", "--load", "sensor.house_load",
                 "--unit", "kW", "--plugged", "09:00-23:00")
    assert r.returncode == 0, r.stderr
    assert out["format"] == "home-assistant" and out["segments"] == 2
    (gap,) = out["gaps"]
    assert gap["s"] == 15 * 60 and "load" in gap["why"]
    assert out["simulated_s"] == out["span_s"] - 15 * 60  # the gap was not bridged
    assert out["controllers"]["gateway"]["ev_charge_wh"] > 500


@pytest.mark.parametrize("text,args,words", [
    ("time,pv_w\n2026-06-21T08:00:00Z,100\n", [], ["line 1", "load_w or grid_w"]),
    ("time,pv_w,load_w\n2026-06-21T08:00:00Z,100,300\n2026-06-21T08:01:00Z,1OO,300\n", [],
     ["line 3", "column pv_w", "not a number"]),
    ("time,pv_w,load_w\nyesterday,100,300\n", [], ["line 2", "column time"]),
    ("time,pv_w,load_w\n2026-06-21T08:00:00Z,100,300\n2026-06-21T07:59:00Z,100,300\n", [],
     ["line 3", "not after"]),
    ("time,pv_w,load_w\n2026-06-21T08:00:00Z,-5,300\n", [], ["line 2", "negative"]),
    (("entity_id,state,last_changed\nsensor.pv,abc,2026-06-21T08:00:00Z\n"
     "sensor.load,1,2026-06-21T08:00:00Z\n"),
     ["--pv", "sensor.pv", "--load", "sensor.load"], ["line 2", "column state", "sensor.pv"]),
    ("entity_id,state,last_changed\nsensor.pv,1,2026-06-21T08:00:00Z\n",
     ["--pv", "sensor.pv", "--load", "sensor.load"], ["sensor.load", "no rows"]),
    ("entity_id,state\nsensor.pv,1\n", ["--pv", "sensor.pv", "--grid", "sensor.g"],
     ["line 1", "last_changed"]),
    ("time,pv_w,load_w\n2026-06-21T08:00:00Z,100,300\n2026-06-21T08:01:00Z,100,300\n", [],
     ["no stretch"]),
])
def test_malformed_files_are_clear_errors(tmp_path, text, args, words):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    r, _ = run(str(f), *args)
    assert r.returncode == 2, r.stdout + r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_missing_file_and_bad_options(tmp_path):
    r, _ = run(str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    f = tmp_path / "x.csv"
    f.write_text("time,pv_w,load_w\n")
    r, _ = run(str(f), "--tz", "Nowhere/Town")
    assert r.returncode == 2 and "--tz" in r.stderr
    r, _ = run(str(f), "--plugged", "18:00")
    assert r.returncode == 2
