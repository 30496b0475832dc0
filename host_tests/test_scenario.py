"""Scenario files (format 1): the public and price days in scenarios/ load; bad ones name the key at fault."""

import json
import os
import shutil

import pytest
from gwhost import paths
from gwhost import scenario as scn
from plant_rig import SHARED, load_json, shared

NAMES = sorted(paths.PUBLIC_DAYS + paths.PRICE_DAYS)


@pytest.mark.parametrize("name", NAMES)
def test_shared_scenarios_load(name):
    sc = scn.load(shared(name))
    assert sc.name == name
    assert len(sc.t_s) > 1000 and sc.t_s[0] == 0
    assert min(sc.pv_w) >= 0 and min(sc.load_w) >= 0


def broken(tmp_path, edit):
    raw = load_json(shared("nl-july-outage"))
    shutil.copy(os.path.join(SHARED, raw["series"]), tmp_path / raw["series"])
    edit(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    return str(path)


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["ev"].pop("capacity_wh"), "ev.capacity_wh"),
    (lambda r: r.pop("charger"), "charger"),
    (lambda r: r["charger"].update(min_w="150"), "charger.min_w"),
    (lambda r: r["ev"].update(soc_start_pct=120), "ev.soc_start_pct"),
    (lambda r: r["ev"].update(plugged=[[10, 5]]), "ev.plugged[0]"),
    (lambda r: r["grid"]["events"][0].update(switch="maybe"), "grid.events[0].switch"),
    (lambda r: r["grid"]["events"][1].pop("duration_s"), "grid.events[1].duration_s"),
    (lambda r: r.update(format=2), "format"),
    (lambda r: r.update(series="nope.csv"), "series"),
])
def test_bad_scenario_names_the_key(tmp_path, edit, key):
    with pytest.raises(scn.ScenarioError) as e:
        scn.load(broken(tmp_path, edit))
    assert str(e.value).startswith(key + ":"), str(e.value)


def test_bad_series_rows(tmp_path):
    (tmp_path / "s.csv").write_text("t_s,pv_w,load_w\n0,0,100\n5,-3,100\n")
    raw = load_json(shared("nl-june-clear"))
    raw["series"] = "s.csv"
    (tmp_path / "s.json").write_text(json.dumps(raw))
    with pytest.raises(scn.ScenarioError, match=r"series: s.csv line 3"):
        scn.load(str(tmp_path / "s.json"))
