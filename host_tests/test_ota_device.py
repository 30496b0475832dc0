"""OTA end to end on the MicroPython unix port: the real firmware in file slots, updated over
HTTP from the console, restarted by the harness (tools/gwhost/benchota.py). A subset of the
cases of tools/bench-field (which runs them all)."""

from gwhost import benchota


def test_ota_cases_on_the_unix_port():
    r = benchota.run(subset={"good", "flipped_payload", "wrong_key", "crash",
                             "cut_download_50", "cut_boot2:1", "cut_valid0:1", "unsafe"})
    assert r["ota_cases"] == 10
    assert r["ota_cases_failed"] == []
    assert r["ota_bricked"] == 0
    assert r["ota_bad_accepted"] == 0
    assert r["ota_rollbacks_ok"] == r["ota_bad_boot_cases"] == 1
    assert r["ota_switch_while_unsafe"] == 0
