"""A simulated RS-485 bus: pymodbus RTU devices behind a wire-timing, fault-injecting proxy.

    firmware UART (SimUart)                                   pymodbus serial server
        | fw_path                                                   | dev side
      socat pty pair  <->  WireProxy (this module, a thread)  <->  socat pty pair
                           - frames requests, drops those for absent or silent units
                           - answers only after the bytes' wire time at the line's baud
                             rate (request + turnaround + reply), as a real line would
                           - applies the FaultInjector to each reply

A pty moves bytes instantly; the proxy is where the line gets its timing. pymodbus serves all
device models on one pty (one bus, several slave addresses); its own line settings do not
matter (8N1 on the pty: pyserial cannot set parity on some ptys).
"""

import asyncio
import heapq
import logging
import os
import select
import subprocess
import tempfile
import termios
import threading
import time
import tty
from collections import Counter, deque

from gwhost.procs import pty_pair
from gwhost.simfaults import crc16
from gwhost.simstate import PlantState


def _open_raw(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    return fd


def request_len(buf):
    """Length of the Modbus RTU request at the start of buf, or None if not known yet."""
    if len(buf) < 2:
        return None
    fn = buf[1]
    if fn in (3, 4, 6):
        return 8
    if fn == 16:
        return 9 + buf[6] if len(buf) >= 7 else None
    return len(buf)  # unknown function: take what is there (the device answers exception 1)


def reply_len(buf, fn):
    if len(buf) < 3:
        return None
    if buf[1] & 0x80:
        return 5
    if fn in (3, 4):
        return 5 + buf[2]
    return 8


class SimBus:
    def __init__(self, devices, baud=9600, parity="E", stop=1, faults=None, state=None,
                 turnaround_ms=2.0, tick_s=0.05, folder=None):
        self.devices = {d.unit: d for d in devices}
        self.state = state or PlantState()
        self.baud, self.parity, self.stop = baud, parity, stop
        bits = 10 + (0 if parity == "N" else 1) + (stop - 1)
        self.char_s = bits / baud
        self.faults = faults
        self.turnaround_s = turnaround_ms / 1000.0
        self.tick_s = tick_s
        self.folder = folder or tempfile.mkdtemp(prefix="gw-rs485-")
        self.silent = set()  # units that are dead (no answer at all)
        self._booting = {}  # unit -> monotonic time its boot ends
        self.counts = Counter()  # requests, replies, dropped, fuzz_frames, bad_requests
        self._procs = []
        self._stopping = False
        self._loop = None
        self._ready = threading.Event()
        self._error = None

    # ---- life cycle ------------------------------------------------------------------------

    def start(self):
        self.fw_path, proxy_a, p1 = pty_pair(self.folder, "fw")
        proxy_b, dev_path, p2 = pty_pair(self.folder, "dev")
        self._procs = [p1, p2]
        self._dev_path = dev_path
        self._fw_fd = _open_raw(proxy_a)
        self._dev_fd = _open_raw(proxy_b)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self._srv = threading.Thread(target=self._server_main, name="simbus-server", daemon=True)
        self._srv.start()
        if not self._ready.wait(10) or self._error:
            self.close()
            raise RuntimeError(f"pymodbus server did not start: {self._error}")
        self._px = threading.Thread(target=self._proxy_main, name="simbus-proxy", daemon=True)
        self._px.start()
        return self

    def close(self):
        self._stopping = True
        for t in (getattr(self, "_px", None), getattr(self, "_srv", None)):
            if t is not None:
                t.join(3)
        for fd in (getattr(self, "_fw_fd", None), getattr(self, "_dev_fd", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    p.kill()
        self._procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- controls --------------------------------------------------------------------------

    def reboot(self, unit):
        """Power-cycle a device: it forgets its setpoints and is silent while it boots."""
        d = self.devices[unit]
        self._booting[unit] = time.monotonic() + d.boot_s
        self.counts["reboots"] += 1
        self._loop.call_soon_threadsafe(d.reboot)

    def call(self, fn, *args):
        """Run fn(*args) in the device thread (to touch device registers safely)."""
        fut = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
        return fut.result(5)

    # ---- the devices (pymodbus, in its own thread and event loop) ---------------------------

    def _server_main(self):
        from pymodbus.server import ModbusSerialServer

        async def main():
            server = ModbusSerialServer([d.simdevice() for d in self.devices.values()],
                                        port=self._dev_path, baudrate=self.baud, parity="N",
                                        stopbits=1)
            for unit, d in self.devices.items():
                d.bind(server.context.devices[unit])
            await server.serve_forever(background=True)
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            last = time.monotonic()
            while not self._stopping:
                await asyncio.sleep(self.tick_s)
                now = time.monotonic()
                self.state.step(now - last)
                last = now
                for d in self.devices.values():
                    d.tick()
            await server.shutdown()

        try:
            asyncio.run(main())
        except Exception as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()

    # ---- the wire -------------------------------------------------------------------------

    def _proxy_main(self):
        fw, dev = self._fw_fd, self._dev_fd
        poller = select.poll()
        poller.register(fw, select.POLLIN)
        poller.register(dev, select.POLLIN)
        req = bytearray()
        rep = bytearray()
        t_req_byte = 0.0
        pending = deque()  # (t_request, request length, unit, fn, fault)
        out = []  # heap of (due, seq, bytes)
        seq = 0
        while not self._stopping:
            now = time.monotonic()
            wait = 0.02 if not out else max(0.0, out[0][0] - now)
            for fd, _ev in poller.poll(min(wait, 0.02) * 1000.0):
                try:
                    data = os.read(fd, 1024)
                except BlockingIOError:
                    continue
                if fd == fw:
                    req += data
                    t_req_byte = time.monotonic()
                else:
                    rep += data
            now = time.monotonic()
            while req:
                n = request_len(req)
                if n is None or len(req) < n:
                    if now - t_req_byte > 0.005:  # an incomplete request: the line goes quiet
                        self.counts["bad_requests"] += 1
                        req.clear()
                    break
                frame = bytes(req[:n])
                del req[:n]
                self._on_request(frame, t_req_byte, pending)
            while pending:
                t_req, n_req, unit, fn, kind = pending[0]
                m = reply_len(rep, fn)
                if m is None or len(rep) < m:
                    if now - t_req > 1.0:  # the device never answered
                        pending.popleft()
                        rep.clear()
                    break
                reply = bytes(rep[:m])
                del rep[:m]
                pending.popleft()
                data, extra = self.faults.apply(kind, reply, unit, fn) if self.faults else (
                    reply, 0.0)
                if kind == "fuzz":
                    self.counts["fuzz_frames"] += 1
                if data:
                    due = t_req + (n_req + len(data)) * self.char_s + self.turnaround_s + extra
                    seq += 1
                    heapq.heappush(out, (due, seq, data))
            now = time.monotonic()
            while out and out[0][0] <= now:
                _, _, data = heapq.heappop(out)
                try:
                    os.write(fw, data)
                    self.counts["replies"] += 1
                except OSError:
                    self.counts["write_errors"] += 1

    def _on_request(self, frame, t, pending):
        self.counts["requests"] += 1
        c = crc16(frame[:-2])
        if len(frame) < 4 or frame[-2] != (c & 0xFF) or frame[-1] != (c >> 8):
            self.counts["bad_requests"] += 1  # a slave ignores a frame with a bad CRC
            return
        unit, fn = frame[0], frame[1]
        boot_end = self._booting.get(unit)
        if unit not in self.devices or unit in self.silent or (boot_end and t < boot_end):
            self.counts["dropped"] += 1
            return
        kind = self.faults.choose() if self.faults else None
        if kind == "silence":
            self.counts["dropped"] += 1
            return
        os.write(self._dev_fd, frame)
        pending.append((t, len(frame), unit, fn, kind))


async def _call(fn, *args):
    return fn(*args)
