"""Child processes of a simulation run: socat pseudo-terminal pairs and the
firmware on the MicroPython unix port. Everything started here is registered
and stopped by `stop_all()` (also on Ctrl-C and at interpreter exit), so a run
never leaves anything behind.
"""

import atexit
import os
import signal
import subprocess
import tempfile
import time

from gwhost import paths

_children = []


def _register(p):
    _children.append(p)
    return p


def stop_all(grace_s=2.0):
    for p in list(_children):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                p.terminate()
    deadline = time.monotonic() + grace_s
    for p in list(_children):
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()
        _children.remove(p)


atexit.register(stop_all)


def pty_pair(folder=None, name="rs485"):
    """A connected pair of raw pseudo-terminals: (firmware side, device side, process)."""
    folder = folder or tempfile.mkdtemp(prefix="gw-pty-")
    a = os.path.join(folder, name + "-gw")
    b = os.path.join(folder, name + "-dev")
    p = _register(subprocess.Popen(
        ["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    deadline = time.monotonic() + 5
    while not (os.path.exists(a) and os.path.exists(b)):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise RuntimeError("socat did not create the pseudo-terminals (is socat installed?)")
        time.sleep(0.005)
    return a, b, p


def start_firmware(env_extra, heap=paths.LIVE_HEAP, stdout=None, stderr=None, stdin=None,
                   runtime="unix64"):
    """The unmodified firmware (firmware/main.py) on a unix port (paths.firmware_command)."""
    argv, env = paths.firmware_command(runtime, heap)
    env.update(env_extra)
    return _register(subprocess.Popen(
        argv,
        cwd=paths.ROOT, env=env, stdout=stdout or subprocess.PIPE,
        stderr=stderr or subprocess.STDOUT, stdin=stdin or subprocess.DEVNULL,
        text=True, start_new_session=True))
