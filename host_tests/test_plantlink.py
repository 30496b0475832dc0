"""The simulated board's plant link, end to end: the unmodified firmware on the
unix port connects to the plant, reports its safe state, keeps the interlock
de-energised without a safe grid, feeds the watchdog and stops on request."""

import os
import subprocess
import time

from gwhost import paths
from gwhost.plantlink import PlantLink


def _wait(pred, timeout=5.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_firmware_talks_to_the_plant_and_stops_on_request():
    link = PlantLink()
    env = paths.micropython_env()
    env.update(GATEWAY_PLANT=link.address, GATEWAY_BOARD=os.path.join(paths.BOARDS, "sim.json"))
    proc = subprocess.Popen([paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
                             paths.firmware_main()],
                            cwd=paths.ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert link.connected.wait(10), "firmware never connected to the plant"
        assert _wait(lambda: "safety" in link.reports), "no safety report"
        assert link.reports["safety"][1].startswith(("BOOT", "GRID_LOST_BLOCKED"))
        assert _wait(lambda: link.wd_timeout_s is not None), "watchdog not started"
        link.send_contact(1)
        link.send_truth(230000, 50000, True, [(500, 0, False), (700, 0, False)])
        time.sleep(0.3)
        assert link.interlock is False, "interlock energised without a safe, stable grid"
        link.check_watchdog()
        assert link.watchdog_resets == 0
        link.request_stop()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, out + err
        assert "stopped in safe state" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        link.close()
