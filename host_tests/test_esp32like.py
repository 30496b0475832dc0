"""The ESP32-like tier (gwhost.esp32like): a 32-bit, float32 MicroPython with the firmware
frozen. These run when it is built and current (MPY_DIR set at setup, as CI does)."""

import os
import subprocess

import pytest
from gwhost import esp32like, paths

pytestmark = pytest.mark.skipif(esp32like.status() != "current",
                                reason="ESP32-like runtime not built: " + esp32like.ENABLE_HINT)

TEST_MPY = os.path.join(paths.ROOT, "tools", "test-mpy")


def _mpy(code):
    return subprocess.run([esp32like.BINARY, "-X", "heapsize=" + esp32like.HEAP, "-c", code],
                          env=esp32like.env(), cwd=paths.ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_runtime_is_32_bit_float32_with_the_firmware_frozen():
    p = _mpy("import sys, gateway.clock as c\n"
             "print(sys.maxsize, 16777217.0 == 16777216.0, c.__file__)")
    assert p.returncode == 0, p.stdout + p.stderr
    maxsize, float32, where = p.stdout.split()
    assert maxsize == "2147483647"  # small ints to 2**30, as on an ESP32
    assert float32 == "True"  # single-precision floats
    assert where == "gateway/clock.py"  # frozen: no path into the source or .mpy tree


def _run_tests(tmp_path, body):
    f = tmp_path / "test_probe.py"
    f.write_text("import unittest\n\n\nclass Probe(unittest.TestCase):\n"
                 "    def test_probe(self):\n        " + body + "\n")
    return subprocess.run([TEST_MPY, "--runtime", "esp32like", str(f)], cwd=paths.ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_failing_firmware_test_fails_the_tier(tmp_path):
    p = _run_tests(tmp_path, "self.assertEqual(1 + 1, 3)")
    assert p.returncode != 0, p.stdout + p.stderr
    assert "0 passed, 1 failed" in p.stdout


def test_a_passing_firmware_test_passes_the_tier(tmp_path):
    p = _run_tests(tmp_path, "self.assertEqual(1 + 1, 2)")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed, 0 failed" in p.stdout


def test_live_firmware_on_the_esp32like_runtime_reports_its_heap():
    from gwhost.scenario import load
    from gwhost.simlive import LiveRun

    run = LiveRun(load(os.path.join(paths.ROOT, "scenarios", "tour.json")), 0, 20, warmup_s=0,
                  runtime="esp32like")
    m = run.run()
    log = "\n".join(run.fw_lines)
    assert m["runtime"] == "esp32like"
    assert m["heapsize_bytes"] == 110 * 1024
    assert m["firmware_exceptions"] == 0 and "MemoryError" not in log, log[-2000:]
    assert m["island_export_wh"] == 0
    # the frozen firmware's live data fits the board's heap, with room to spare
    assert 0 < m["heap_peak_bytes"] < m["heapsize_bytes"]
    assert 0 < m["heap_min_free_bytes"] < m["heapsize_bytes"]
    assert 0 < m["largest_free_block_bytes"] < m["heapsize_bytes"]
    assert any(r["heap_bytes"] for r in run.trace), "no live heap in the trace"
