"""Issue 15 item 4 (device side) against pymodbus devices: a stop is confirmed by what the
device does, not by reading back the value just written. The plant is frozen
(autonomous=False) so a device can accept 0 W / export 0 while its power keeps flowing."""

import shutil

import pytest
from gwhost.mpybus import FirmwareBus
from gwhost.simbus import SimBus
from gwhost.simcharger import SimRefCharger
from gwhost.simsolax import SimSolax
from gwhost.simstate import PlantState

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

STOP_CONFIRMED = 2


def confirmed(fw, tries=10):
    for _ in range(tries):
        if fw.cmd("run", ms=300)["stop_state"] == STOP_CONFIRMED:
            return True
    return False


def test_charger_stop_waits_for_its_power():
    st = PlantState(ev_power_w=-3000)
    st.autonomous = False  # the power stays where the test puts it
    dev = {"type": "charger", "name": "ev", "cfg": {"unit": 1}}
    with SimBus([SimRefCharger(1, st)], baud=19200, state=st) as sb, \
            FirmwareBus(sb.fw_path, 19200, devices=[dev]) as fw:
        fw.cmd("setpoints", ev_w=-3000, ev_session=True)
        assert fw.cmd("run", ms=2500)["devices"]["ev"]["rec"]["online"]
        stop = fw.cmd("stop", max_ms=3000)  # generous: the host is shared
        assert stop["ack_ms"]["ev"] >= 0 and st.ev_setpoint_w == 0  # 0 W written and in effect
        assert stop["confirmed_ms"] == -1, "confirmed while the charger still discharges"
        st.ev_power_w = -40  # it follows: within the 100 W tolerance
        assert confirmed(fw)
        assert fw.close() == 0


def test_solax_stop_waits_for_its_feed_in():
    st = PlantState(pv_w=6000, house_w=700, inv_ac_w=5000)
    st.autonomous = False
    dev = {"type": "solax", "name": "hyb", "cfg": {"unit": 2, "export_min_ms": 0}}
    with SimBus([SimSolax(2, st)], baud=19200, state=st) as sb, \
            FirmwareBus(sb.fw_path, 19200, devices=[dev]) as fw:
        fw.cmd("setpoints", export_limit_w=4000)
        assert fw.cmd("run", ms=3500)["devices"]["hyb"]["rec"]["online"]
        stop = fw.cmd("stop", max_ms=3000)  # generous: the host is shared
        assert stop["ack_ms"]["hyb"] >= 0 and st.inv_export_limit_w == 0
        assert stop["confirmed_ms"] == -1, "confirmed while 4300 W still flow out"
        st.inv_ac_w = 600  # curtailed: 100 W imported
        assert confirmed(fw)
        assert fw.close() == 0
