"""The firmware's Modbus master (MicroPython unix port) against pymodbus devices on socat ptys.

Every function and error path at 9600 and 19200 baud, SunSpec discovery at other base
addresses, offline detection within the configured age, device reboots, the stop sequence.
"""

import shutil
import time

import pytest
from gwhost.mpybus import FirmwareBus
from gwhost.simbus import SimBus
from gwhost.simcharger import SimRefCharger
from gwhost.simfaults import FaultInjector
from gwhost.simsolax import SimSolax
from gwhost.simstate import PlantState
from gwhost.simsunspec import SimSunSpec

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

TIMEOUT = -1
CRC = -2
ADDRESS = -3
MALFORMED = -5


def exc(code):
    return -256 - code


CHARGER = {"type": "charger", "name": "ev", "cfg": {"unit": 1}}


@pytest.mark.parametrize("baud", [9600, 19200])
def test_functions_and_error_paths(baud):
    st = PlantState()
    faults = FaultInjector(seed=3)
    with SimBus([SimRefCharger(1, st)], baud=baud, state=st, faults=faults) as sb, \
            FirmwareBus(sb.fw_path, baud, bus={"timeout_ms": 100}) as fw:
        # 04 and 03
        r = fw.cmd("read", unit=1, fn=4, start=10, count=2)
        assert r["status"] == 0 and r["regs"] == [0x4743, 1]
        r = fw.cmd("read", unit=1, fn=3, start=2, count=1)
        assert r["status"] == 0 and r["regs"] == [30]
        # 06 and 16, read back
        assert fw.cmd("write", unit=1, start=0, values=[-1200])["status"] == 0
        assert fw.cmd("write", unit=1, start=1, values=[1, 45, 7])["status"] == 0
        r = fw.cmd("read", unit=1, fn=3, start=0, count=4)
        assert r["regs"] == [0x10000 - 1200, 1, 45, 7]
        # exception replies from the device itself
        r = fw.cmd("read", unit=1, fn=3, start=3, count=2)  # beyond the map
        assert r["status"] == exc(2) and r["error"] == "ModbusException"
        r = fw.cmd("write", unit=1, start=1, values=[5])  # session must be 0 or 1
        assert r["status"] == exc(3)
        # line faults, one at a time (the one-off request retries twice, then gives up)
        for kind, status, name in (("silence", TIMEOUT, "Timeout"), ("crc", CRC, "CrcError"),
                                   ("wrong_address", ADDRESS, "UnexpectedReply"),
                                   ("truncate", MALFORMED, "MalformedFrame")):
            faults.set_mix({kind: 1.0})
            r = fw.cmd("read", unit=1, fn=4, start=0, count=6)
            assert (r["status"], r["error"]) == (status, name), kind
        faults.exception_codes = (4,)
        faults.set_mix({"exception": 1.0})
        assert fw.cmd("read", unit=1, fn=4, start=0, count=1)["status"] == exc(4)
        faults.exception_codes = (6,)  # busy: retried, then reported
        assert fw.cmd("read", unit=1, fn=4, start=0, count=1)["status"] == exc(6)
        # garbage before the reply: found by resync
        faults.set_mix({"garbage": 1.0})
        r = fw.cmd("read", unit=1, fn=4, start=10, count=2)
        assert r["status"] == 0 and r["regs"] == [0x4743, 1]
        faults.set_mix({})
        # a unit nobody answers for
        assert fw.cmd("read", unit=9, fn=3, start=0, count=1)["status"] == TIMEOUT
        snap = fw.cmd("snapshot")
        assert snap["resyncs"] >= 1
        assert fw.close() == 0


@pytest.mark.parametrize("base,models,expect", [
    (50000, "classic", [1, 103, 120, 123, 124]),
    (0, "der", [1, 701, 704, 802]),
])
def test_sunspec_discovery_at_other_bases(base, models, expect):
    st = PlantState(pv_w=6000)
    dev = {"type": "sunspec", "name": "inv", "cfg": {"unit": 3, "wmax_w": 10000}}
    with SimBus([SimSunSpec(3, st, base=base, models=models)], baud=19200, state=st) as sb, \
            FirmwareBus(sb.fw_path, 19200, devices=[dev]) as fw:
        fw.cmd("setpoints", export_limit_w=4000)
        r = fw.cmd("run", ms=3500)["devices"]["inv"]
        assert r["info"]["base"] == base
        assert r["info"]["models"] == expect
        assert r["rec"]["online"]
        assert st.inv_limit_pct == pytest.approx(40.0)  # 4000 W of 10000 W written as a %
        assert fw.cmd("stop")["confirmed_ms"] >= 0
        assert st.inv_limit_pct == 0
        assert fw.close() == 0


def test_silent_device_shows_offline_within_its_age():
    st = PlantState()
    dev = {"type": "charger", "name": "ev", "cfg": {"unit": 1, "max_age_ms": 1500}}
    with SimBus([SimRefCharger(1, st)], baud=9600, state=st) as sb, \
            FirmwareBus(sb.fw_path, 9600, bus={"timeout_ms": 100}, devices=[dev]) as fw:
        assert fw.cmd("run", ms=2000)["devices"]["ev"]["rec"]["online"]
        sb.silent.add(1)
        r = fw.cmd("until_offline", dev="ev", max_ms=5000)
        assert not r["online"] and not r["rec_online"]
        assert r["ms"] <= 1500 + 50
        snap = fw.cmd("snapshot")
        assert snap["devices"]["ev"]["health"]["timeouts"] >= 1
        # the silent device costs the bus its response timeout, the event loop nothing
        assert snap["step_us_max"] < 5000
        sb.silent.clear()
        assert fw.cmd("run", ms=6000)["devices"]["ev"]["rec"]["online"]
        assert fw.close() == 0


def test_frozen_device_is_stale():
    st = PlantState()
    dev = {"type": "charger", "name": "ev", "cfg": {"unit": 1, "max_age_ms": 1500}}
    with SimBus([SimRefCharger(1, st)], baud=19200, state=st) as sb, \
            FirmwareBus(sb.fw_path, 19200, devices=[dev]) as fw:
        assert fw.cmd("run", ms=1500)["devices"]["ev"]["rec"]["online"]
        sb.devices[1].frozen = True  # answers, but its alive counter stopped
        r = fw.cmd("until_offline", dev="ev", max_ms=6000)
        assert not r["online"]
        assert fw.cmd("snapshot")["devices"]["ev"]["stale"]
        assert fw.close() == 0


def test_watchdog_programmed_reboot_restored_and_revert_without_gateway():
    st = PlantState()
    dev = {"type": "charger", "name": "ev", "cfg": {"unit": 1, "watchdog_s": 3}}
    charger = SimRefCharger(1, st, boot_s=0.5)
    with SimBus([charger], baud=19200, state=st) as sb:
        with FirmwareBus(sb.fw_path, 19200, devices=[dev]) as fw:
            fw.cmd("setpoints", ev_w=2000, ev_session=True)
            fw.cmd("run", ms=2000)
            assert charger.hr[2] == 3 and st.ev_setpoint_w == 2000
            writes = charger.writes
            fw.cmd("run", ms=4000)  # refreshed at <= half the timeout: never expires
            assert not charger.expired and charger.writes - writes >= 3
            sb.reboot(1)  # the device forgets its setpoint and watchdog setting
            fw.cmd("run", ms=3000)
            assert charger.hr[2] == 3 and st.ev_setpoint_w == 2000
            assert fw.cmd("snapshot")["devices"]["ev"]["rec"]["online"]
            assert fw.close() == 0
        # the gateway is gone: the charger reverts to 0 W on its own within its timeout
        deadline = time.monotonic() + 5
        while not charger.expired and time.monotonic() < deadline:
            time.sleep(0.1)
        assert charger.expired and st.ev_setpoint_w == 0 and not st.ev_session


def test_stop_with_three_devices_and_hold():
    st = PlantState(pv_w=5000)
    devs = [CHARGER,
            {"type": "solax", "name": "hyb", "cfg": {"unit": 2, "batt_control": True,
                                                      "export_min_ms": 0}},
            {"type": "sunspec", "name": "pv", "cfg": {"unit": 3}}]
    sims = [SimRefCharger(1, st), SimSolax(2, st), SimSunSpec(3, st, base=40000)]
    with SimBus(sims, baud=9600, state=st) as sb, FirmwareBus(sb.fw_path, 9600, devices=devs) as fw:
        fw.cmd("setpoints", ev_w=-4000, ev_session=True, export_limit_w=3000, batt_w=-1000)
        r = fw.cmd("run", ms=6000)
        assert all(d["rec"]["online"] for d in r["devices"].values())
        assert st.ev_setpoint_w == -4000 and st.inv_export_limit_w == 3000
        stop = fw.cmd("stop")
        assert stop["confirmed_ms"] >= 0 and min(stop["ack_ms"].values()) >= 0
        assert st.ev_setpoint_w == 0 and st.inv_export_limit_w == 0 and st.inv_limit_pct == 0
        fw.cmd("run", ms=1500)  # the hold keeps them there although the setpoints say otherwise
        assert st.ev_setpoint_w == 0 and st.inv_export_limit_w == 0
        fw.cmd("release")
        fw.cmd("run", ms=2500)
        assert st.ev_setpoint_w == -4000 and st.inv_export_limit_w == 3000
        assert fw.close() == 0


def test_fuzzed_replies_never_raise_in_the_firmware():
    st = PlantState()
    faults = FaultInjector({"fuzz": 1.0}, seed=11)
    with SimBus([SimRefCharger(1, st)], baud=115200, state=st, faults=faults) as sb, \
            FirmwareBus(sb.fw_path, 115200, bus={"timeout_ms": 30, "retries": 0}) as fw:
        r = fw.cmd("hammer", unit=1, fn=4, start=0, count=6, n=600)
        snap = fw.cmd("snapshot")
        assert sb.counts["fuzz_frames"] >= 500  # (tools/bench-bus drives >= 10,000)
        assert sum(r["statuses"].values()) == 600
        assert len(r["statuses"]) >= 4  # the garbling reached several error kinds
        assert snap["exceptions"] == 0
        assert fw.close() == 0


@pytest.mark.parametrize("models", ["classic", "der"])
def test_every_driver_runs_allocation_free(models):
    """The bus stepped with the heap locked (MicroPython raises on any allocation) through
    polls, setpoint writes, heartbeats and a stop, with all three device profiles."""
    st = PlantState(pv_w=5000)
    devs = [{"type": "charger", "name": "ev", "cfg": {"unit": 1, "watchdog_s": 2}},
            {"type": "solax", "name": "hyb", "cfg": {"unit": 2, "batt_control": True,
                                                      "export_min_ms": 0, "remote_s": 5}},
            {"type": "sunspec", "name": "pv", "cfg": {"unit": 3, "batt_control": True,
                                                       "revert_s": 3, "wmax_w": 10000,
                                                       "poll_ms": 300}}]
    sims = [SimRefCharger(1, st), SimSolax(2, st), SimSunSpec(3, st, models=models)]
    with SimBus(sims, baud=19200, state=st) as sb, \
            FirmwareBus(sb.fw_path, 19200, devices=devs) as fw:
        fw.cmd("setpoints", ev_w=-3000, ev_session=True, export_limit_w=4000, batt_w=-500)
        fw.cmd("run", ms=5000)
        r = fw.cmd("heap_lock", ms=2500)  # raises in the firmware (-> RuntimeError) on alloc
        assert r["transactions"] >= 20
        fw.cmd("setpoints", ev_w=1000, export_limit_w=2000, batt_w=800)
        assert fw.cmd("heap_lock", ms=1500)["transactions"] >= 10
        assert fw.cmd("heap_lock", ms=1500, stop=True)["stop_state"] == 2  # confirmed, locked
        assert fw.close() == 0
