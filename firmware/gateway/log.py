# A bounded in-memory log: the last N messages for the console (`log`) and telemetry.
#
# Slots are allocated once; adding a message stores a reference to the caller's
# string and writes two small ints into preallocated arrays, so the only
# allocation is the message itself (build it outside any critical section, or
# pass a constant string). Oldest entries are overwritten.
from array import array

from micropython import const

DEBUG = const(0)
INFO = const(1)
WARN = const(2)
ERROR = const(3)
_NAMES = "DIWE"
_TICKS_MAX = const(0x3FFFFFFF)


class Log:
    """Ring buffer of (tick ms, level, message).

    `clock`: object with now_ms() (the board clock); by default the runtime's
    ticks_ms masked to 30 bits. `echo`: optional function(level_char, msg) called
    for each entry at or above `echo_level` (e.g. print on the host).
    """

    def __init__(self, size=32, clock=None, echo=None, echo_level=INFO):
        if size < 1:
            raise ValueError("log size must be >= 1")
        self.size = size
        self._msg = [None] * size
        self._t = array("i", [0] * size)
        self._lvl = bytearray(size)
        self._head = 0  # next slot to write
        self.count = 0  # entries held (<= size)
        self.total = 0  # entries ever added
        self.errors = 0  # entries at ERROR
        self.last_error = None  # the latest ERROR message
        if clock is None:
            import time

            self._now = time.ticks_ms
        else:
            self._now = clock.now_ms
        self._echo = echo
        self._echo_level = echo_level

    def add(self, level, msg):
        i = self._head
        self._msg[i] = msg
        self._t[i] = self._now() & _TICKS_MAX
        self._lvl[i] = level
        i += 1
        self._head = 0 if i == self.size else i
        if self.count < self.size:
            self.count += 1
        self.total += 1
        if level >= ERROR:
            self.errors += 1
            self.last_error = msg
        if self._echo is not None and level >= self._echo_level:
            self._echo(_NAMES[level], msg)

    def debug(self, msg):
        self.add(DEBUG, msg)

    def info(self, msg):
        self.add(INFO, msg)

    def warning(self, msg):
        self.add(WARN, msg)

    def error(self, msg):
        self.add(ERROR, msg)

    def entries(self, n=None):
        """Yield (t_ms, level_char, msg), oldest first; only the newest n if given."""
        k = self.count if n is None or n > self.count else n
        i = (self._head - k) % self.size
        for _ in range(k):
            yield self._t[i], _NAMES[self._lvl[i]], self._msg[i]
            i += 1
            if i == self.size:
                i = 0
