"""Foundation checks: the core stays pure, main.py boots safe on the unix port,
the MicroPython test runner really fails, and setup is idempotent."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gwhost import paths

ROOT = paths.ROOT


def _mpy(args, env_extra=None, **kw):
    """The firmware from source, with the live heap (its bytecode lives in the heap here)."""
    env = paths.micropython_env(source=True)
    env.update(env_extra or {})
    return subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP, *args],
                          cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False, **kw)


def test_core_never_imports_hardware_modules():
    bad = []
    pat = re.compile(r"^\s*(import|from)\s+(machine|network)\b", re.M)
    for d, _, files in os.walk(paths.FIRMWARE):
        for f in files:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, paths.FIRMWARE)
            if f.endswith(".py") and not rel.startswith("gateway/ports/"):
                if pat.search(open(p).read()):
                    bad.append(rel)
    assert bad == [], "only gateway/ports may import machine/network: %s" % bad


def test_main_boots_in_safe_state_and_stops_cleanly():
    p = _mpy(["firmware/main.py"], {"GATEWAY_DURATION_S": "0.5"}, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SAFE STATE: interlock de-energised (export blocked)" in p.stdout
    assert "stopped in safe state: interlock off" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr


def test_main_ctrl_c_exits_zero_in_safe_state():
    env = paths.micropython_env(source=True)
    proc = subprocess.Popen([paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
                             "firmware/main.py"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, out + err
    assert "stopped in safe state: interlock off" in out


def test_bad_board_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('{"name": "x"}')
    p = _mpy(["firmware/main.py"], {"GATEWAY_BOARD": str(bad)}, timeout=30)
    assert p.returncode != 0
    assert "missing key 'port'" in p.stdout + p.stderr


_CASE = "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n"


@pytest.mark.parametrize("body,why", [
    (_CASE + "        self.assertEqual(1, 2)\n", "a failing assertion"),
    (_CASE + "        raise KeyError('boom')\n", "an error"),
    ("import no_such_module_here\n", "an import error"),
    ("import unittest\n", "no test at all"),
])
def test_mpy_runner_fails_when_it_should(tmp_path, body, why):
    f = tmp_path / "test_broken.py"
    f.write_text(body)
    p = subprocess.run([os.path.join(ROOT, "tools", "test-mpy"), str(f)], cwd=ROOT,
                       capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode != 0, "runner passed with %s:\n%s" % (why, p.stdout)
    assert "FAILED" in p.stdout


def test_mpy_runner_passes_a_good_file():
    p = subprocess.run([os.path.join(ROOT, "tools", "test-mpy"),
                        "host_tests/mpy/test_selfcheck_runner.py"], cwd=ROOT,
                       capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 0, p.stdout
    assert "1 passed, 0 failed" in p.stdout


def test_setup_rerun_is_fast():
    t0 = time.monotonic()
    subprocess.run([os.path.join(ROOT, "tools", "setup.sh")], check=True, timeout=120)
    assert time.monotonic() - t0 < 10


def test_firmware_compiles_for_esp32_within_budget():
    p = subprocess.run([sys.executable, "-m", "gwhost.build", "--check"], cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tools")),
                       capture_output=True, text=True, check=False, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "total .mpy (xtensawin)" in p.stdout
