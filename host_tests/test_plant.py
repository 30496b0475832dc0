"""The plant model: charger dynamics, energy balance, metering window, grid events."""

import pytest
from gwhost.plant import Plant
from plant_rig import make


def balance(p):
    return (p.load_w - p.unserved_w) - (p.pv_w - p.curtailed_w) + p.ev_w + p.batt_w


def open_session(p):
    p.set_ev_session(True)
    while not p.ev_session_open:
        p.step(200)


def test_charger_dead_time_then_ramp_and_efficiency():
    p = Plant(make([0], [0], [500], duration_s=7200))
    open_session(p)
    assert p.ev_starts == 1
    p.set_ev_setpoint(3000)
    seen = []
    for _ in range(15):
        p.step(200)
        seen.append(p.ev_w)
    assert seen[:5] == [0.0] * 5, "nothing moves during the 1 s response time"
    assert seen[5] == pytest.approx(300)  # ramp 3000 W/s: average over the first 200 ms
    assert seen[9] == pytest.approx(2700)
    assert seen[10:] == [3000.0] * 5
    soc0 = p.ev_soc_pct
    for _ in range(18000):  # 1 h at 3 kW
        p.step(200)
    assert p.ev_soc_pct - soc0 == pytest.approx(3000 * 0.94 / 60000 * 100, rel=1e-6)


def test_minimum_power_and_soc_limits():
    p = Plant(make([0], [0], [500], soc=99.99))
    open_session(p)
    p.set_ev_setpoint(40)  # below min_w: the charger holds its minimum
    for _ in range(10):
        p.step(200)
    assert p.ev_w == 150
    for _ in range(3000):
        p.step(200)
    assert p.ev_w == 0, "the BMS stops at 100 %"


def test_session_start_delay_and_unplug():
    p = Plant(make([0], [0], [500], duration_s=100, plugged=[[0, 20], [40, 100, 80]]))
    p.set_ev_setpoint(-1000)
    p.set_ev_session(True)
    for _ in range(45):  # 9 s
        p.step(200)
    assert not p.ev_session_open and p.ev_w == 0
    for _ in range(20):
        p.step(200)
    assert p.ev_session_open and p.ev_w == -1000
    while p.t_ms <= 20000:
        p.step(200)
    assert not p.ev_plugged and not p.ev_session_open and p.ev_w == 0
    while p.t_ms < 40000:
        p.step(200)
    assert p.ev_plugged and p.ev_soc_pct == 80


def test_metering_window_is_the_last_complete_window():
    p = Plant(make([0, 10], [0, 0], [400, 2400]))
    while p.t_ms < 10000:
        p.step(200)
    assert p.meter_grid_w == 400
    p.step(100)  # half a window: the firmware still sees the previous one
    assert p.meter_grid_w == 400
    p.step(100)
    assert p.meter_grid_w == 2400
    assert p.meter_t_ms == 10200


def test_interlock_blocks_discharge_and_export_at_once():
    p = Plant(make([0], [3000], [500]))
    open_session(p)
    p.set_ev_setpoint(-2000)
    for _ in range(20):
        p.step(200)
    assert p.ev_w == -2000 and p.grid_w == pytest.approx(-4500)
    p.set_interlock(False)
    p.step(200)
    assert p.ev_w == 0
    assert p.grid_w == 0 and p.curtailed_w == 2500, "export limit 0: PV curtailed"
    assert balance(p) == pytest.approx(p.grid_w)


def test_outage_switch_grid_nothing_feeds_the_dead_grid():
    ev = [{"t_s": 10, "type": "outage", "duration_s": 20, "switch": "grid"}]
    p = Plant(make([0], [2000], [800], events=ev))
    open_session(p)
    p.set_ev_setpoint(-1000)
    while p.t_ms < 10000:
        p.step(200)
    p.set_interlock(False)  # what the safety layer does on the first cycle
    p.step(200)
    assert not p.grid_up
    assert p.ev_w == 0 and p.pv_w - p.curtailed_w == 0 and p.unserved_w == 800
    while p.t_ms < 30000:
        p.step(200)
    assert p.island_export_wh == 0
    p.set_interlock(True)
    while p.t_ms < 60000:
        p.step(200)
    assert p.pv_w - p.curtailed_w == 0, "PV waits its reconnection time"
    while p.t_ms < 91000:
        p.step(200)
    assert p.pv_w - p.curtailed_w == 2000


def test_faulty_firmware_shows_as_island_export():
    ev = [{"t_s": 10, "type": "outage", "duration_s": 20, "switch": "grid"}]
    p = Plant(make([0], [0], [300], events=ev))
    open_session(p)
    p.set_ev_setpoint(-1000)
    while p.t_ms < 20000:  # interlock left energised through the outage
        p.step(200)
    assert p.ev_w == -1000 and p.grid_w == pytest.approx(-700)
    assert p.island_export_wh > 0


def test_island_charger_forms_the_grid():
    ev = [{"t_s": 20, "type": "outage", "duration_s": 60, "switch": "island"}]
    p = Plant(make([0, 50], [0, 0], [1200, 12000], events=ev, duration_s=100))
    open_session(p)
    p.set_interlock(False)
    while p.t_ms < 20000:
        p.step(200)
    assert p.ev_w == 0 and p.unserved_w == 0
    p.step(200)
    assert p.island_former is None and p.unserved_w == 1200, "no former yet: dark"
    p.set_ev_setpoint(-10000)
    for _ in range(6):
        p.step(200)
    assert p.island_former == "charger"
    assert p.ev_w == -1200 and p.grid_w == 0 and p.unserved_w == 0
    while p.t_ms < 51000:
        p.step(200)
    assert p.ev_w == -10000 and p.unserved_w == 2000, "beyond the cap: unserved"
    assert p.backup_unserved_wh > 0 and p.island_export_wh == 0
    assert balance(p) == pytest.approx(p.grid_w)


def test_energy_balance_every_step():
    ev = [{"t_s": 20, "type": "outage", "duration_s": 10, "switch": "island"},
          {"t_s": 40, "type": "outage", "duration_s": 10, "switch": "grid"},
          {"t_s": 55, "type": "flicker", "duration_s": 0.2}]
    hb = {"capacity_wh": 10000, "soc_start_pct": 50, "soc_min_pct": 10, "soc_max_pct": 95,
          "max_charge_w": 3000, "max_discharge_w": 3000, "efficiency_pct": 95}
    p = Plant(make([0, 15, 35], [4000, 500, 0], [700, 2500, 900], events=ev,
                   home_battery=hb, duration_s=80))
    open_session(p)
    for i in range(400):
        if i % 25 == 0:
            p.set_ev_setpoint((-1) ** i * 1800)
            p.set_batt_setpoint((-1) ** (i // 25) * 700)
            p.set_interlock(i % 50 != 0)
        p.step(200)
        assert balance(p) == pytest.approx(p.grid_w, abs=1e-6)
        if not p.grid_up and p.switch_island:
            assert p.grid_w == pytest.approx(0, abs=1e-9)
