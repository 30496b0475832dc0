# Simulated board for the MicroPython unix port (and CPython tests).
#
# The plant simulator (tools/gwhost) plays the hardware: it serves the charger
# and the inverter as Modbus RTU devices on pseudo-terminals (the UARTs here),
# and talks to this board over one loopback TCP connection, the "plant link",
# in text lines:
#   plant -> board   C <pos>                  transfer-switch contact (0 grid, 1 island, -1 unknown)
#                    T <v_mv> <f_millihz> <v_ok> [<w> <var> <open>]...   analog truth per CT channel
#                    X                        stop request (clean shutdown)
#   board -> plant   I <0|1>                  interlock output level (1 = export permitted)
#                    H                        watchdog feed (the plant models a reset when
#                                             these stop: the relay drops, as on the board)
#                    R <key> <value>          state report for the simulator's log
# Until the link is up, and after it drops, the contact reads CONTACT_UNKNOWN
# and the voltage reference is absent: safety holds the blocked state. Truth older
# than FEED_STALE_MS (the plant sends it every 50 ms) reads as no voltage too.
# Settings come from the board file; string values starting with "$" are read
# from the environment (e.g. "$GATEWAY_PLANT" = "127.0.0.1:7070").
import os
import socket

import asyncio
from gateway.clock import Clock, ticks_diff
from gateway.ports import CONTACT_UNKNOWN, BoardError

FEED_STALE_MS = 500


def env_value(v):
    """Resolve "$NAME" (optionally "$NAME|default") from the environment."""
    if isinstance(v, str) and v.startswith("$"):
        name, _, default = v[1:].partition("|")
        got = os.getenv(name)
        return got if got else (default or None)
    return v


class SimBoard:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.get("name", "sim")
        off = env_value(spec.get("clock_offset_ms", 0))
        self.clock = Clock(offset_ms=int(off or 0))
        self.storage = env_value(spec.get("storage", "")) or ""
        analog = spec.get("analog") or {}
        from gateway.ports.sim_analog import Truth, frontend

        self.truth = Truth(len(analog.get("channels", ())) or 2)
        self.truth.v_present = False  # no plant yet: no voltage reference
        self.analog = frontend(self.truth, analog) if analog else None
        self._rx = b""  # plant link bytes not yet parsed (no whole line yet)
        if hasattr(self.analog, "poll"):
            # A real ADC sees the mains while it samples: the simulated one reads the plant
            # link during a capture too (and a contact edge is handled there, as the ESP32's
            # soft IRQ runs between two ADC reads).
            self.analog.poll = self._pump
        self._contact = CONTACT_UNKNOWN
        self._irq = None
        self._interlock = False
        self._sock = None
        self._last_feed = 0
        self._wd_ms = 0
        self.stop_requested = False
        self.link_up = False
        self._msg_i = (b"I 0\n", b"I 1\n")
        self._uarts = {}
        self._reports = {}

    # --- outputs -------------------------------------------------------------
    def set_interlock(self, on):
        on = bool(on)
        self._interlock = on
        self._send(self._msg_i[1 if on else 0])

    def interlock_on(self):
        return self._interlock

    def led(self, on):
        pass

    # --- inputs --------------------------------------------------------------
    def contact(self):
        return self._contact

    def contact_irq(self, handler):
        self._irq = handler

    def uart(self, name):
        if name not in self._uarts:
            cfg = (self.spec.get("uarts") or {}).get(name)
            if cfg is None:
                raise BoardError("board file has no uart %r" % name)
            path = env_value(cfg.get("device"))
            if not path:
                raise BoardError("uart %r: no device path (set it in the board file or env)" % name)
            from gateway.ports.sim_uart import SimUart

            self._uarts[name] = SimUart(path, cfg.get("baud", 9600), cfg.get("parity", "E"),
                                        cfg.get("stop", 1))
        return self._uarts[name]

    # --- supervision -----------------------------------------------------------
    def watchdog_start(self, timeout_ms):
        self._wd_ms = timeout_ms
        self._send(b"W %d\n" % timeout_ms)

    def watchdog_feed(self):
        self._send(b"H\n")

    def reset_cause(self):
        return os.getenv("GATEWAY_RESET_CAUSE") or "power"

    def report(self, key, value):
        msg = ("R %s %s\n" % (key, value)).encode()
        self._reports[key] = msg  # replayed when the link (re)connects
        self._send(msg)

    # --- plant link ------------------------------------------------------------
    def _send(self, data):
        s = self._sock
        if s is None:
            return
        try:
            s.send(data)
        except OSError:
            self._drop()

    def _drop(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self.link_up = False
        self.truth.v_present = False
        self._set_contact(CONTACT_UNKNOWN)

    def _set_contact(self, pos):
        if pos != self._contact:
            self._contact = pos
            if self._irq is not None:
                self._irq(pos)

    def _parse(self, line):
        parts = line.split()
        if not parts:
            return
        kind = parts[0]
        if kind == b"C":
            self._set_contact(int(parts[1]))
        elif kind == b"T":
            t = self.truth
            t.v_mv = int(parts[1])
            t.f_millihz = int(parts[2])
            t.v_present = parts[3] == b"1"
            i = 4
            ch = 0
            while i + 2 < len(parts) and ch < len(t.ch_w):
                t.ch_w[ch] = int(parts[i])
                t.ch_var[ch] = int(parts[i + 1])
                t.ch_open[ch] = parts[i + 2] == b"1"
                i += 3
                ch += 1
            t.t_ms = self.clock.now_ms()
        elif kind == b"X":
            self.stop_requested = True

    def _lines(self, data):
        """Parse every whole line of what the plant sent; keep the rest for later."""
        rx = self._rx + data
        while True:
            i = rx.find(b"\n")
            if i < 0:
                break
            try:
                self._parse(rx[:i])
            except (ValueError, IndexError):
                pass  # a garbled line from the plant is ignored, never fatal
            rx = rx[i + 1:]
        self._rx = rx

    def _pump(self):
        """Read what the plant sent without blocking (called while a capture waits);
        True when something came. The link task handles a closed link."""
        s = self._sock
        if s is None:
            return False
        try:
            data = s.read(512)
        except OSError:
            return False
        if not data:
            return False
        self._lines(data)
        return True

    async def _link(self, host, port):
        while True:
            try:
                ai = socket.getaddrinfo(host, port)[0][-1]
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.connect(ai)
                # TCP_NODELAY (IPPROTO_TCP = 6, TCP_NODELAY = 1; the unix port has no names
                # for them): a small interlock message must not wait for Nagle's 40 ms.
                s.setsockopt(6, 1, 1)
                s.setblocking(False)
            except OSError:
                await asyncio.sleep_ms(200)
                continue
            self._sock = s
            self.link_up = True
            self._send(self._msg_i[1 if self._interlock else 0])
            if self._wd_ms:
                self._send(b"W %d\n" % self._wd_ms)
            for msg in self._reports.values():
                self._send(msg)
            reader = asyncio.StreamReader(s)
            self._rx = b""
            try:
                while True:
                    data = await reader.read(512)
                    if not data:
                        break
                    self._lines(data)
            except OSError:
                pass
            self._drop()
            await asyncio.sleep_ms(200)

    async def _feed_watch(self):
        """The plant sends the analog truth every 50 ms. When it stops while the link stays
        up, the simulated inputs go flat (no voltage), as a real front end's would with its
        signal gone: stale truth must never look like a live grid."""
        t = self.truth
        while True:
            await asyncio.sleep_ms(100)
            if t.v_present and ticks_diff(self.clock.now_ms(), t.t_ms) > FEED_STALE_MS:
                t.v_present = False

    def tasks(self):
        addr = env_value(self.spec.get("plant"))
        if not addr:
            return []
        host, _, port = addr.rpartition(":")
        return [self._link(host or "127.0.0.1", int(port)), self._feed_watch()]

    def close(self):
        self._drop()
        for u in self._uarts.values():
            u.close()
