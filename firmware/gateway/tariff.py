# The price schedule: import and export price per interval, in a preallocated table.
#
# Source: the retained MQTT topic <root>/tariff or the config section "tariff", both the
# same JSON object (docs/planning.md):
#   {"start": 1718920800, "interval_min": 60,
#    "import": [231, 228, ...], "export": [102, 99, ...]}
# start: unix epoch seconds (UTC) of the first interval; interval_min: 15, 30 or 60;
# import / export: integers, milli-EUR per kWh (0.1 ct; 231 = 0.231 EUR/kWh; negative
# allowed), the same count, 1..SLOTS_MAX. Unknown keys, floats, out-of-range values, a
# wrong count: TariffError naming the field; the old schedule stays (all or nothing).
# Internally times are seconds since 2000-01-01 UTC (EPOCH_2000 off the unix epoch) so
# they stay small ints (< 2**30 until 2034) on the ESP32.
from array import array

from micropython import const

SLOTS_MAX = const(192)  # two days of 15-min prices, or 8 days of hourly ones
EPOCH_2000 = const(946684800)  # unix time of 2000-01-01 00:00 UTC
PRICE_MIN = const(-5000)  # milli-EUR/kWh
PRICE_MAX = const(10000)
_INTERVALS = (15, 30, 60)
_KEYS = ("start", "interval_min", "import", "export")
# bytes of JSON accepted, from MQTT and the config file alike: the widest 192-slot
# schedule (every price -5000, json.dumps' ", " separators) is 2753 bytes; the rest is
# room for whitespace. The MQTT client's receive limit (mqttio._MAX_IN) is this + 256.
MAX_TEXT = const(3072)

SCHEMA = {
    # a fixed schedule in the config file: the same object as the MQTT one, or "" (none)
    "schedule": ("", None, MAX_TEXT),  # at most MAX_TEXT characters
}


class TariffError(ValueError):
    pass


def _int(v, name, lo, hi):
    if type(v) is not int:
        raise TariffError("%s: expected an integer, got %s" % (name, _short(v)))
    if v < lo or v > hi:
        raise TariffError("%s: %d outside %d..%d" % (name, v, lo, hi))
    return v


def _key(k):
    """A key as it may appear in an error: plain names as they are, anything else
    (quotes, backslashes, control or non-ASCII characters, > 20 chars) as a repr."""
    if isinstance(k, str) and 0 < len(k) <= 20:
        for ch in k:
            if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-."):
                return _short(k)
        return k
    return _short(k)


def _short(v):
    s = repr(v)
    return s if len(s) <= 20 else s[:20] + "..."


class Tariff:
    """The schedule in force. imp / exp: array('i') of SLOTS_MAX, the first n valid."""

    def __init__(self):
        self.imp = array("i", [0] * SLOTS_MAX)
        self.exp = array("i", [0] * SLOTS_MAX)
        self.n = 0  # valid slots; 0 = no schedule
        self.start_s = 0  # seconds since 2000 of slot 0
        self.slot_s = 3600
        self.seq = 0  # bumped on every accepted schedule (the planner replans)
        self.error = None  # the last rejection, for telemetry / the console

    def load_json(self, text):
        """Parse and load a schedule (str or bytes). Raises TariffError; all or nothing."""
        if text is None or len(text) > MAX_TEXT:  # None: the MQTT client skipped it unread
            raise self._err("tariff: longer than %d bytes; the schedule in force is kept"
                            % MAX_TEXT)
        try:
            if not isinstance(text, str):
                text = bytes(text).decode()
            import json

            obj = json.loads(text)
        except Exception:  # noqa: BLE001 - ValueError / UnicodeError on both runtimes
            raise self._err("tariff: not valid JSON")
        return self.load(obj)

    def load(self, obj):
        """Load a schedule from a decoded object; validated whole before anything changes."""
        try:
            if not isinstance(obj, dict):
                raise TariffError("tariff: expected a JSON object")
            for k in obj:
                if k not in _KEYS:  # repr: a crafted key reaches the log escaped
                    raise TariffError("tariff.%s: unknown key; known: %s" % (
                        _key(k), ", ".join(_KEYS)))
            for k in _KEYS:
                if k not in obj:
                    raise TariffError("tariff.%s: missing" % k)
            start = _int(obj["start"], "tariff.start", EPOCH_2000, EPOCH_2000 + (1 << 30) - 1)
            iv = obj["interval_min"]
            if type(iv) is not int or iv not in _INTERVALS:
                raise TariffError("tariff.interval_min: %s not one of 15, 30, 60" % _short(iv))
            imp, exp = obj["import"], obj["export"]
            for name, lst in (("import", imp), ("export", exp)):
                if not isinstance(lst, list) or not 1 <= len(lst) <= SLOTS_MAX:
                    raise TariffError("tariff.%s: expected a list of 1..%d prices" % (
                        name, SLOTS_MAX))
                for i in range(len(lst)):
                    _int(lst[i], "tariff.%s[%d]" % (name, i), PRICE_MIN, PRICE_MAX)
            if len(exp) != len(imp):
                raise TariffError("tariff.export: %d prices, import has %d" % (
                    len(exp), len(imp)))
        except TariffError as e:
            self.error = str(e)
            raise
        for i in range(len(imp)):
            self.imp[i] = imp[i]
            self.exp[i] = exp[i]
        self.n = len(imp)
        self.start_s = start - EPOCH_2000
        self.slot_s = iv * 60
        self.seq += 1
        self.error = None
        return self.n

    def clear(self):
        self.n = 0
        self.seq += 1
        self.error = None

    def _err(self, msg):
        self.error = msg
        return TariffError(msg)

    def index(self, t_s):
        """Slot index in force at t_s (seconds since 2000), or -1 outside the schedule."""
        if self.n == 0 or t_s < self.start_s:
            return -1
        i = (t_s - self.start_s) // self.slot_s
        return i if i < self.n else -1

    def slot_end(self, i):
        """End of slot i, seconds since 2000."""
        return self.start_s + (i + 1) * self.slot_s

    def end_s(self):
        return self.start_s + self.n * self.slot_s
