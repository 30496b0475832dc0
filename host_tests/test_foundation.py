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


def _firmware_modules():
    """{dotted name relative to firmware/gateway ("main" for firmware/main.py): path}"""
    mods = {}
    for d, _, files in os.walk(paths.FIRMWARE):
        for f in files:
            if f.endswith(".py"):
                p = os.path.join(d, f)
                if p == os.path.join(paths.FIRMWARE, "manifest.py"):
                    continue  # what a frozen image holds: build input, not a module
                name = os.path.relpath(p, paths.FIRMWARE)[:-3].replace(os.sep, ".")
                name = name[:-len(".__init__")] if name.endswith(".__init__") else name
                if name.startswith("gateway."):
                    name = name[len("gateway."):]
                mods[name] = p
    return mods


def _imports(path, mods):
    """The firmware modules a file imports, at the top or inside functions."""
    import ast

    def short(m):
        return "gateway" if m == "gateway" else m[len("gateway."):] if m.startswith(
            "gateway.") else m

    out = set()
    for n in ast.walk(ast.parse(open(path).read())):
        if isinstance(n, ast.Import):
            out.update(short(a.name) for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module:
            base = short(n.module)
            subs = [base + "." + a.name if base != "gateway" else a.name for a in n.names]
            out.update(m for m in subs if m in mods)
            if not all(m in mods for m in subs):
                out.add(base)
    return {m for m in out if m in mods}


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))} | {"gateway"}


def _module_map():
    """docs/architecture.md's module map: {module: (layer, may import patterns)}."""
    rows = {}
    for line in open(os.path.join(ROOT, "docs", "architecture.md")):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            allowed = {a.strip() for a in cells[4].split(",")} - {"-", ""}
            rows[cells[0].strip("`")] = (cells[1], allowed)
    return rows


def test_module_map_in_the_docs_matches_the_code():
    mods = _firmware_modules()
    table = _module_map()
    assert set(mods) - set(table) == set(), \
        "modules missing from docs/architecture.md's module map"
    assert set(table) - set(mods) == set(), "docs/architecture.md lists modules that are gone"
    bad = []
    for name, path in sorted(mods.items()):
        layer, allowed = table[name]
        assert layer in ("core", "port", "service", "entry"), (name, layer)
        for m in sorted(_imports(path, mods) - _ancestors(name) - {name}):
            ok = m in allowed or any(a.endswith(".*") and m.startswith(a[:-1])
                                     for a in allowed)
            if not ok:
                bad.append("%s imports %s" % (name, m))
            elif layer == "core" and table[m][0] in ("port", "service", "entry"):
                bad.append("core module %s imports %s (%s)" % (name, m, table[m][0]))
    assert bad == [], "imports not allowed by docs/architecture.md: %s" % bad


def test_firmware_has_no_import_circle():
    """No module reaches itself through imports (top-level or lazy; a module importing its
    own parent package does not count: Python imports the parent first anyway)."""
    mods = _firmware_modules()
    graph = {n: _imports(p, mods) - _ancestors(n) - {n} for n, p in mods.items()}
    circles = []

    def visit(n, stack, done):
        for m in sorted(graph[n]):
            if m in stack:
                circles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in done:
                visit(m, stack + [m], done)
        done.add(n)

    done = set()
    for n in sorted(graph):
        if n not in done:
            visit(n, [n], done)
    assert circles == [], circles


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


def test_uart_mismatch_is_a_clear_error_not_an_abort(tmp_path):
    """The board's RS-485 UART at 19200 baud, the config's bus section at 9600: the gateway
    boots on in safe state without a bus, and says why on the console, in the state JSON
    and in the log, naming the config section `bus`."""
    import json
    import pty

    from gwhost.broker import Broker
    from gwhost.mqttwatch import MqttWatch

    board = json.load(open(os.path.join(paths.BOARDS, "sim.json")))
    board["uarts"]["rs485"]["baud"] = 19200
    (tmp_path / "board.json").write_text(json.dumps(board))
    master, slave = pty.openpty()
    with Broker() as b:
        (tmp_path / "config.json").write_text(json.dumps(
            {"mqtt": {"host": b.host, "port": b.port}, "telemetry": {"node_id": "mm"}}))
        watch = MqttWatch(b.host, b.port).start()
        try:
            env = paths.micropython_env(source=True)
            env.update({"GATEWAY_BOARD": str(tmp_path / "board.json"),
                        "GATEWAY_RS485": os.ttyname(slave), "GATEWAY_DURATION_S": "4",
                        "GATEWAY_STORAGE": str(tmp_path)})
            p = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
                                "firmware/main.py"], cwd=ROOT, env=env, input="status\nbus\n",
                               capture_output=True, text=True, check=False, timeout=60)
            state = watch.last_json("/state")
        finally:
            watch.stop()
            os.close(master)
            os.close(slave)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "Traceback" not in out, out
    why = ("board UART rs485 is 19200 E 1 but config section bus says baud 9600, parity E, "
           "stop 1: make them agree")
    assert "E bus: " + why + "; devices offline, export stays blocked" in out  # the log
    assert out.count("bus     ERROR " + why) == 2, out  # console: `status` and `bus`
    assert "SAFE STATE: interlock de-energised" in out
    assert "stopped in safe state: interlock off" in out
    assert state is not None, "no state JSON published"
    assert state["bus"] is None and state["bus_err"] == why, state
    assert state["export_ok"] is False and state["log_errors"] >= 1, state


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
