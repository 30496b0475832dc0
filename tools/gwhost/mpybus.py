"""Host side of tools/mpybus/drive.py: the firmware's bus on the MicroPython unix port, driven
line by line from CPython (tests, bench)."""

import json
import os
import select
import subprocess

from gwhost import paths

DRIVER = os.path.join(paths.ROOT, "tools", "mpybus", "drive.py")
# The unix port is 64-bit: its objects and loaded bytecode take about twice the RAM they take on
# the 32-bit ESP32, where the modules are frozen into flash besides. The bus with three drivers,
# asyncio and this JSON driver need ~82 KB here after set-up, so the host runs use 160k.
HEAP = "160k"


def mpy_env():
    """The firmware as deployed (.mpy, see gwhost.mpyhost) on the unix port's path."""
    return paths.micropython_env()


def _renice(pid, n):
    """Raise the firmware's scheduling priority: on the board nothing else shares its CPU,
    here the simulator and other jobs do. n < 0: nice n; n == -100: real-time (SCHED_FIFO 10),
    falling back to nice -10. Needs root; otherwise left as it is. Returns what was applied."""
    if n == -100:
        try:
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
            return "fifo10"
        except (OSError, AttributeError):
            n = -10
    try:
        os.setpriority(os.PRIO_PROCESS, pid, n)
        return f"nice{n}"
    except OSError:
        return "default"


class FirmwareBus:
    def __init__(self, path, baud=9600, parity="E", stop=1, bus=None, devices=(),
                 heap=HEAP, nice=0):
        setup = {"path": path, "baud": baud, "parity": parity, "stop": stop,
                 "bus": bus or {}, "devices": list(devices)}
        self.p = subprocess.Popen(
            [paths.MICROPYTHON, "-X", "heapsize=" + heap, DRIVER],
            cwd=paths.ROOT, env=mpy_env(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.sched = _renice(self.p.pid, nice) if nice else "default"
        self.stderr = ""
        self.log = []
        self.p.stdin.write(json.dumps(setup) + "\n")  # argv > 255 bytes crashes the unix port
        self.p.stdin.flush()
        first = self._reply()
        if not first.get("ready"):
            raise RuntimeError(f"firmware bus did not start: {first}")
        self.heap_alloc = first["heap_alloc"]

    def _reply(self, timeout_s=30):
        while True:
            if not select.select([self.p.stdout], [], [], timeout_s)[0]:
                self.p.kill()
                raise RuntimeError(f"firmware bus silent for {timeout_s} s:\n" +
                                   "\n".join(self.log[-20:]))
            line = self.p.stdout.readline()
            if not line:
                self.stderr = self.p.stderr.read()
                raise RuntimeError("firmware bus exited:\n" + "\n".join(self.log) + self.stderr)
            if line.startswith("R "):
                return json.loads(line[2:])
            self.log.append(line.rstrip())

    def cmd(self, op, **kw):
        kw["op"] = op
        self.p.stdin.write(json.dumps(kw) + "\n")
        self.p.stdin.flush()
        r = self._reply()
        if "failed" in r:
            raise RuntimeError(f"{op} failed in the firmware: {r['failed']}\n" +
                               "\n".join(self.log[-20:]))
        return r

    def close(self):
        """Quit; returns the firmware's exception count (uncaught ones make it -1)."""
        if self.p.poll() is None:
            try:
                self.p.stdin.write('{"op": "quit"}\n')
                self.p.stdin.flush()
                r = self._reply()
                self.p.wait(5)
                self.stderr = self.p.stderr.read()
                return r.get("exceptions", 0) if self.p.returncode == 0 else -1
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
                return -1
        return -1 if self.p.returncode else 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
