# The simulated board's RS-485 UART: a pseudo-terminal (socat pty) on the MicroPython unix port.
#
# Same duck-typed API as the ESP32 port's UART (gateway/ports/esp32.py): baud, parity, stop;
# write(buf) -> int; tx_done(); end_tx(); any(); readinto(buf, n); flush_input().
# A pty moves bytes instantly, so tx_done() models the wire: it turns True once the bytes
# written would have left a real UART at this baud rate (back-to-back writes queue up).
# Traps on this port (toolchain facts): never call file.flush() on a tty (EINVAL), and register
# the poller with POLLIN only (without a mask it reports POLLOUT forever).
# The read path allocates nothing: one byte at a time through a 1-byte buffer, only while the
# poller says a byte is waiting, so the blocking file read never blocks.
import select
import time

from gateway.clock import TICKS_MAX, ticks_add, ticks_diff


class SimUart:
    def __init__(self, path, baud=9600, parity="E", stop=1):
        if parity not in ("N", "E", "O"):
            raise ValueError("uart parity must be N, E or O")
        if stop not in (1, 2):
            raise ValueError("uart stop bits must be 1 or 2")
        self.baud = baud
        self.parity = parity
        self.stop = stop
        self.path = path
        bits = 10 + (0 if parity == "N" else 1) + (stop - 1)
        self._char_us = (bits * 1000000 + baud - 1) // baud
        self._f = open(path, "r+b", buffering=0)  # noqa: SIM115 - lives as long as the board
        try:
            import termios

            termios.setraw(self._f.fileno())
        except (ImportError, AttributeError, OSError):
            pass  # socat already made it raw (pty,raw,echo=0)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self._one = bytearray(1)
        self._tx_end = time.ticks_us() & TICKS_MAX
        self.tx_bytes = 0
        self.rx_bytes = 0

    def _ready(self):
        for _obj, ev in self._poll.ipoll(0):
            return ev & select.POLLIN
        return 0

    def write(self, buf):
        n = self._f.write(buf)
        now = time.ticks_us() & TICKS_MAX
        start = self._tx_end if ticks_diff(self._tx_end, now) > 0 else now
        self._tx_end = ticks_add(start, n * self._char_us)
        self.tx_bytes += n
        return n

    def tx_done(self):
        return ticks_diff(time.ticks_us() & TICKS_MAX, self._tx_end) >= 0

    def end_tx(self):
        pass  # no direction pin on a pty (like an auto-direction transceiver)

    def any(self):
        return 1 if self._ready() else 0

    def readinto(self, buf, n):
        got = 0
        one = self._one
        f = self._f
        while got < n and self._ready():
            if not f.readinto(one):
                break  # the other side closed
            buf[got] = one[0]
            got += 1
        self.rx_bytes += got
        return got

    def flush_input(self):
        one = self._one
        while self._ready():
            if not self._f.readinto(one):
                break

    def close(self):
        try:
            self._poll.unregister(self._f)
        except (OSError, ValueError):
            pass
        self._f.close()
