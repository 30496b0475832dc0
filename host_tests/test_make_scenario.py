"""tools/make-scenario: generated days load as scenarios, follow their inputs, are
deterministic for a seed, and bad options are clear errors with exit status 2."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
from gwhost import makescen  # noqa: E402
from gwhost import scenario as scn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def day(tmp_path, name, **kw):
    h = makescen.house_defaults()
    h.update(kw)
    raw, rows = makescen.make(h, name)
    out = tmp_path / (name + ".json")
    makescen.write(raw, rows, str(out))
    return scn.load(str(out)), rows


def energy_kwh(values, step_s=5):
    return sum(values) * step_s / 3.6e6


def test_a_generated_day_loads_and_follows_its_house(tmp_path):
    sc, _ = day(tmp_path, "june", date="2026-06-21", weather="clear", pv_kwp=6.0,
                   annual_kwh=4000, car="commuter", tariff="dynamic", battery_kwh=10,
                   departure_soc=70, fuse_a=25)
    assert sc.duration_s == 86400 and len(sc.t_s) == 86400 // 5
    # PV: nothing at night, a clear June day in the Netherlands gives ~6-7 kWh per kWp
    assert sc.pv_w[0] == 0 and sc.pv_w[-1] == 0
    assert 4.5 * 6 < energy_kwh(sc.pv_w) < 8 * 6
    assert max(sc.pv_w) <= 6000
    # load: the BDEW share of 4000 kWh for a June Sunday, a few kWh to 15 kWh
    assert 6 < energy_kwh(sc.load_w) < 15
    # the commuter leaves in the morning and comes back in the evening with its own SoC
    (s0, e0, _), (s1, _e1, soc1) = sc.plugged
    assert s0 == 0 and 5 * 3600 < e0 < 9 * 3600 and 16 * 3600 < s1 < 20 * 3600
    assert soc1 is not None and sc.departure_soc_pct == 70
    assert sc.has_prices and sc.home_battery["capacity_wh"] == 10000 and sc.fuse_a == 25
    assert all(e <= i for i, e in zip(sc.import_eur_kwh, sc.export_eur_kwh))


def test_weather_and_season_change_the_pv(tmp_path):
    clear, _ = day(tmp_path, "c", weather="clear")
    cloudy, _ = day(tmp_path, "o", weather="overcast")
    winter, _ = day(tmp_path, "w", weather="clear", date="2026-12-21")
    assert energy_kwh(cloudy.pv_w) < 0.5 * energy_kwh(clear.pv_w)
    assert energy_kwh(winter.pv_w) < 0.4 * energy_kwh(clear.pv_w)
    broken, _ = day(tmp_path, "b", weather="cumulus")
    steps = [abs(a - b) for a, b in zip(broken.pv_w, broken.pv_w[1:])]
    assert max(steps) > 1500  # cloud edges are steps, not ramps


def test_same_seed_same_day_other_seed_other_day(tmp_path):
    _, a = day(tmp_path, "a", weather="cumulus", seed=7)
    _, b = day(tmp_path, "b", weather="cumulus", seed=7)
    _, c = day(tmp_path, "c", weather="cumulus", seed=8)
    assert a == b and a != c


def test_tariff_from_the_users_csv(tmp_path):
    f = tmp_path / "prices.csv"
    f.write_text("hour,import_eur_kwh,export_eur_kwh\n" +
                 "".join(f"{h},{0.2 + h / 100:.2f},0.05\n" for h in range(24)))
    sc, _ = day(tmp_path, "p", tariff=str(f))
    assert sc.import_eur_kwh[0] == 0.2 and sc.import_eur_kwh[-1] == pytest.approx(0.43)


def run_tool(*args):
    return subprocess.run([os.path.join(ROOT, "tools", "make-scenario"), *args],
                          check=False, capture_output=True, text=True, timeout=300)


def test_command_writes_json_and_csv(tmp_path):
    out = tmp_path / "x.json"
    r = run_tool(str(out), "--weather", "haze", "--car", "evening", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["scenario"] == "x" and (tmp_path / "x.csv").exists()
    assert scn.load(str(out)).plugged[0][0] > 15 * 3600


@pytest.mark.parametrize("args,word", [
    (["--weather", "sunny"], "--weather"),
    (["--date", "2026-02-30"], "--date"),
    (["--pv-kwp", "-1"], "--pv-kwp"),
    (["--tz", "Mars/Olympus"], "--tz"),
    (["--outage", "25:00+10:island"], "--outage"),
    (["--tariff", "/nonexistent/prices.csv"], "--tariff"),
])
def test_bad_options_are_clear_errors(tmp_path, args, word):
    r = run_tool(str(tmp_path / "bad.json"), *args)
    assert r.returncode == 2 and word in r.stderr, r.stderr
    assert not (tmp_path / "bad.json").exists()


def test_bad_tariff_file_names_the_line(tmp_path):
    f = tmp_path / "prices.csv"
    f.write_text("hour,import_eur_kwh,export_eur_kwh\n0,0.3,0.05\n1,cheap,0.05\n")
    r = run_tool(str(tmp_path / "bad.json"), "--tariff", str(f))
    assert r.returncode == 2 and "line 3" in r.stderr
