"""The plant's end of the simulated board's loopback link (see firmware/gateway/ports/sim.py).

One TCP server on 127.0.0.1, one firmware client. The plant sends the contact
position and the analog truth; the firmware sends its interlock level,
watchdog feeds and state reports. Every received line is timestamped with the
plant's clock (time.monotonic), so the grid-loss moment and the interlock edge
are compared on one clock.

The watchdog model: when feeds stop for longer than the timeout the firmware
announced ("W <ms>"), the plant treats the board as reset: the interlock relay
drops (de-energised), as it would on the real board.
"""

import socket
import threading
import time


class PlantLink:
    def __init__(self, host="127.0.0.1", port=0, clock=time.monotonic):
        self.clock = clock
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, port))
        self._srv.listen(1)
        self.address = "%s:%d" % self._srv.getsockname()
        self._conn = None
        self._lock = threading.Lock()
        self.interlock = False  # the level the relay has now (False = export blocked)
        self.interlock_edges = []  # (plant time, level)
        self.reports = {}  # key -> (plant time, value)
        self.report_log = []  # (plant time, key, value)
        self.wd_timeout_s = None
        self.last_feed = None
        self.watchdog_resets = 0
        self.connected = threading.Event()
        self._contact = -1
        self._truth = None
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # --- plant -> firmware ---------------------------------------------------
    def _send(self, line):
        with self._lock:
            c = self._conn
            if c is None:
                return False
            try:
                c.sendall(line.encode())
                return True
            except OSError:
                return False

    def send_contact(self, pos):
        self._contact = pos
        return self._send("C %d\n" % pos)

    def send_truth(self, v_mv, f_millihz, v_present, channels):
        """channels: [(w, var, open), ...] in the board's channel order."""
        parts = ["T", str(int(v_mv)), str(int(f_millihz)), "1" if v_present else "0"]
        for w, var, is_open in channels:
            parts += [str(int(w)), str(int(var)), "1" if is_open else "0"]
        self._truth = " ".join(parts) + "\n"
        return self._send(self._truth)

    def request_stop(self):
        return self._send("X\n")

    # --- firmware -> plant ---------------------------------------------------
    def _set_interlock(self, level, t):
        if level != self.interlock:
            self.interlock = level
            self.interlock_edges.append((t, level))

    def _handle(self, line, t):
        parts = line.split(" ", 2)
        kind = parts[0]
        if kind == "I" and len(parts) > 1:
            self._set_interlock(parts[1] == "1", t)
        elif kind == "H":
            self.last_feed = t
        elif kind == "W" and len(parts) > 1:
            self.wd_timeout_s = int(parts[1]) / 1000.0
            self.last_feed = t
        elif kind == "R" and len(parts) > 2:
            self.reports[parts[1]] = (t, parts[2])
            self.report_log.append((t, parts[1], parts[2]))

    def check_watchdog(self):
        """Call from the plant loop: a board whose feeds stopped has reset."""
        t = self.clock()
        if self.wd_timeout_s and self.last_feed is not None and \
                t - self.last_feed > self.wd_timeout_s:
            self.watchdog_resets += 1
            self.last_feed = None
            self._set_interlock(False, t)

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conn = conn
            # A (re)connected board first learns the present contact and truth.
            self._send("C %d\n" % self._contact)
            if self._truth:
                self._send(self._truth)
            self.connected.set()
            buf = b""
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                t = self.clock()
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._handle(line.decode("ascii", "replace").strip(), t)
            with self._lock:
                self._conn = None
            # A board that dropped the link has reset or died: its relay is off.
            self._set_interlock(False, self.clock())
            self.connected.clear()

    def close(self):
        self._stop = True
        try:
            self._srv.close()
        except OSError:
            pass
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except OSError:
                    pass
