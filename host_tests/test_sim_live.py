"""The whole firmware live (MicroPython unix port) against the simulated house: the safety
invariants of issue 5 asserted on one ~80 s run of a compact scenario.

Timeline (scenario seconds; the firmware's reconnection delay is set to 4 s):
   0- 30  boot, re-arm after the delay; evening: the car covers the house (V2H; the
          charger session takes 10 s to open)
  30- 40  outage, transfer switch at ISLAND: block at once, then backup powers the house
  40- 54  grid back: blocked for the whole delay, then re-armed
  54- 62  outage, switch stays at GRID (not confirmed): the car must not discharge
  62- 76  grid back, re-arm
  82- 85  the metering feed stalls (the plant stops sending the analog truth; the link
          that carries the interlock stays up): blocked within the meter stale age
  85- 90  feed back, re-arm after the delay
  94      the Modbus devices go silent: blocked within the device stale age
"""

import json
import re

import pytest

from gwhost.scenario import load
from gwhost.simlive import LiveRun

RECONNECT_MS = 4000
DEVICE_STALE_MS = 3000
METER_STALE_MS = 1000  # the default of safety.meter_stale_ms


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    rows = ["t_s,pv_w,load_w", "0,0,900", "46,0,1100", "66,0,800"]
    (d / "s.csv").write_text("\n".join(rows) + "\n")
    scen = {
        "format": 1, "name": "live-check", "duration_s": 110, "series": "s.csv",
        "ev": {"capacity_wh": 60000, "soc_start_pct": 70, "soc_reserve_pct": 30,
               "soc_max_pct": 90, "max_charge_w": 11000, "max_discharge_w": 10000,
               "plugged": [[0, 110]]},
        "charger": {"min_w": 150, "response_s": 1.0, "ramp_w_per_s": 3000,
                    "efficiency_pct": 94},
        "home_battery": None,
        "grid": {"target_w": 0, "events": [
            {"t_s": 30, "type": "outage", "duration_s": 10, "switch": "island"},
            {"t_s": 54, "type": "outage", "duration_s": 8, "switch": "grid"}]},
        "gateway_config": {"safety": {"reconnect_ms": RECONNECT_MS, "ramp_w_s": 5000,
                                      "device_stale_ms": DEVICE_STALE_MS},
                           "control": {"start_delay_ms": 1000, "min_off_ms": 1000}},
    }
    (d / "s.json").write_text(json.dumps(scen))
    faults = [(82.0, "stall_metering"), (85.0, "resume_metering"), (94.0, "kill_devices")]
    typed = [(24.0, "status"), (24.5, "bus"), (25.0, "safety")]  # at the serial console
    r = LiveRun(load(str(d / "s.json")), 0, 100, warmup_s=0, faults=faults, console=typed)
    metrics = r.run()
    return metrics, r.trace, r


@pytest.fixture(scope="module")
def run(live):
    return live[0], live[1]


def _rows(trace, t0, t1):
    return [r for r in trace if t0 <= r["t_s"] < t1]


def test_runs_clean(run):
    m, _ = run
    assert m["firmware_exceptions"] == 0, m
    assert m["firmware_exit_code"] == 0
    assert m["modbus_transactions"] > 100
    assert m["mqtt_messages"] > 0


def test_no_export_while_the_grid_is_down(run):
    m, trace = run
    assert m["grid_loss_events"] == 2
    # Islanded (switch at ISLAND): the house is isolated, nothing reaches the grid side.
    assert all(r["grid_w"] == 0 for r in _rows(trace, 30.5, 40))
    # Not confirmed (switch at GRID): only the voltage reference sees the loss, so what the
    # car fed in before the block is bounded by that detection time (live 5-20 ms at
    # 1.1 kW: < 0.01 Wh; the bound leaves a loaded CI machine 150 ms).
    assert m["island_export_wh"] <= 0.05, m


def test_block_is_fast_and_stops_are_confirmed(run):
    m, _ = run
    # The targets are 20 ms and 150 ms (see the notes for the acceptance runs);
    # a loaded CI machine gets a margin, never a missing block. The contact (island) path
    # blocks from the interrupt; without the contact the voltage reference detects the
    # loss in its next half-cycle chunk or peak probe, which ends the metering window at
    # once (20 ms over many trials: scenarios/vloss-trials.json, docs/safety.md).
    island, grid = m["events"]
    assert island["switch"] == "island" and grid["switch"] == "grid"
    assert 0 <= island["block_latency_ms"] <= 60, m["events"]
    assert 0 <= grid["block_latency_ms"] <= 200, m["events"]
    assert 0 <= m["modbus_stop_latency_ms_max"] <= 600, m["events"]


def test_backup_powers_the_islanded_house(run):
    _, trace = run
    island = _rows(trace, 33, 40)
    assert island and all(r["switch_island"] for r in island)
    assert all(r["unserved_w"] == 0 for r in island), island
    assert any(r["ev_w"] < -500 for r in island), "the car did not back up the house"
    assert not any(r["interlock"] for r in _rows(trace, 30.05, 40)), "export permitted"


def test_no_discharge_without_island_confirmation(run):
    _, trace = run
    out = _rows(trace, 54.5, 62)
    assert out and not any(r["switch_island"] for r in out)
    assert all(r["ev_w"] >= 0 for r in out), [r["ev_w"] for r in out]
    assert not any(r["interlock"] for r in out)


def test_rearm_waits_for_the_whole_delay(run):
    _, trace = run
    for back in (40, 62):
        wait = _rows(trace, back, back + RECONNECT_MS / 1000 - 0.2)
        assert wait and not any(r["interlock"] for r in wait), "re-armed before the delay"
        later = _rows(trace, back + RECONNECT_MS / 1000 + 2, back + 12)
        assert any(r["interlock"] for r in later), "never re-armed after the delay"


def test_stalled_metering_feed_blocks_within_the_stale_age(run):
    _, trace = run
    assert any(r["interlock"] for r in _rows(trace, 76, 82)), "not armed before the fault"
    after = _rows(trace, 82 + METER_STALE_MS / 1000, 85)
    assert after and not any(r["interlock"] for r in after), "still exporting: no metering"
    back = _rows(trace, 85 + RECONNECT_MS / 1000 + 2, 94)
    assert any(r["interlock"] for r in back), "never re-armed after the feed came back"


def test_silent_devices_block_within_the_stale_age(run):
    _, trace = run
    assert any(r["interlock"] for r in _rows(trace, 90, 94)), "not armed before the fault"
    after = _rows(trace, 94 + DEVICE_STALE_MS / 1000 + 1.5, 100)
    assert after and not any(r["interlock"] for r in after), "still exporting: devices dead"


def test_console_and_state_show_names_lag_and_bus(live):
    """Through the real wiring (main.py as sim-live starts it): the console and the state
    JSON carry state and reason names, the measured loop lag and the bus counters."""
    _, _, r = live
    out = "\n".join(r.fw_lines)
    # `status` while the grid is up and the car covers the house (re-armed at ~5 s)
    assert re.search(r"^(> )?grid +[-+]\d+ W   house", out, re.M), out[-3000:]
    assert re.search(r"^safety  normal \(1\)   grid up   export yes", out, re.M), out[-3000:]
    assert re.search(r"reason [a-z_]+ \(\d+\)", out), out[-3000:]
    lag = re.search(r"loop lag max (\d+) ms", out)
    assert lag and 0 <= int(lag.group(1)) < 1000, out[-3000:]
    tx = re.search(r"^bus     transactions (\d+)   errors (\d+)   retries \d+   stops (\d+)",
                   out, re.M)
    assert tx and int(tx.group(1)) > 50 and int(tx.group(3)) >= 1, out[-3000:]
    assert re.search(r"^         stop none   longest transaction \d+ us", out, re.M)
    # `safety`
    assert re.search(r"^(> )?state normal \(1\)   reason (ok|ramp) \(\d\)   grid up", out, re.M)
    # the last state JSON (the devices were killed at 94 s: blocked, the grid still up)
    s = r.state
    assert s is not None, "no state JSON seen"
    assert s["safety"] in ("grid_lost_blocked", "reconnect_wait", "fault"), s
    assert isinstance(s["safety_reason"], str) and isinstance(s["reason"], str), s
    assert s["lag_ms"] >= 0 and s["lag_max_ms"] >= s["lag_ms"], s
    assert s["bus"]["tx"] > 500 and s["bus"]["stops"] >= 3 and s["bus_err"] is None, s
    assert s["grid_up"] is True, s
