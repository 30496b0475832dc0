"""The firmware as booted (main.py, simulated board, unix port): the clock comes from a real
NTP server (chronyd on loopback, via GATEWAY_NTP), the console shows it, counters are
restored at the first sync, and an unprovisioned board says what to type."""

import json
import os
import subprocess
import time

from gwhost import paths
from gwhost.ntpserver import Chrony


def boot(tmp_path, env_extra, stdin_lines, seconds):
    env = paths.micropython_env()
    env.update({"GATEWAY_BOARD": os.path.join(paths.BOARDS, "sim.json"),
                "GATEWAY_STORAGE": str(tmp_path), "GATEWAY_DURATION_S": str(seconds)})
    for k in ("GATEWAY_RS485", "GATEWAY_PLANT", "GATEWAY_OTA_DIR"):
        env.pop(k, None)
    env.update(env_extra)
    p = subprocess.Popen([paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
                          paths.firmware_main()], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         cwd=str(tmp_path))
    time.sleep(seconds * 0.6)
    for ln in stdin_lines:
        p.stdin.write(ln.encode() + b"\n")
        p.stdin.flush()
        time.sleep(0.3)
    out, _ = p.communicate(timeout=seconds + 30)
    return out.decode(errors="replace")


def test_sntp_sync_console_and_restored_counters(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"time": {"tz": "GMT0BST,M3.5.0/1,M10.5.0"}}))
    with Chrony() as ntp:
        out = boot(tmp_path, {"GATEWAY_NTP": "127.0.0.1:%d" % ntp.port}, ["time"], 6)
        assert "time: synced; server 127.0.0.1" in out, out[-3000:]
        assert "local 20" in out and ("GMT" in out or "BST" in out)
        # a record from today: restored at the first sync, lifetime kept
        import datetime as dt
        import zoneinfo

        local = dt.datetime.now(zoneinfo.ZoneInfo("Europe/London")).date()
        day = (local - dt.date(2000, 1, 1)).days  # the local day the firmware counts in
        rec = {"v": 1, "seq": 7, "day": day, "today": {"import_wh": 1234},
               "life": {"import_wh": 50000}, "charger_starts": 9, "ota": []}
        (tmp_path / "state.json").write_text(json.dumps(rec))
        out = boot(tmp_path, {"GATEWAY_NTP": "127.0.0.1:%d" % ntp.port}, ["counters"], 6)
    assert "persist: counters from" in out, out[-3000:]
    row = [ln for ln in out.splitlines() if ln.split()[:1] == ["import"]]
    assert row and row[0].split()[1:3] == ["1234", "51234"], out[-3000:]
    assert "charger starts 9; restored" in out


def test_unprovisioned_hint(tmp_path):
    out = boot(tmp_path, {"GATEWAY_HINT": "1"}, ["wifi"], 3)
    assert "not provisioned: type  wifi YOUR-SSID YOUR-PASSWORD" in out, out[-3000:]
    assert "network: loopback" in out
