# Local time from a POSIX TZ string (the TZ convention ESP-IDF and ESPHome use).
#
#   std offset [dst [offset] [,start[/time],end[/time]]]
# e.g. "CET-1CEST,M3.5.0,M10.5.0/3" (central Europe), "GMT0BST,M3.5.0/1,M10.5.0" (UK),
# "AEST-10AEDT,M10.1.0,M4.1.0/3" (Sydney: DST across the new year), "UTC0".
# POSIX signs are west-positive: "CET-1" is UTC+1. Names are 3+ letters or <...>
# ("<+03>-3"). The DST offset defaults to one hour ahead of standard time. Rules:
# Mm.w.d (month m, week w 1-5 where 5 = last, weekday d 0 = Sunday), Jn (1-365,
# February 29 never counted) and n (0-365, counted); the time after "/" is local
# wall time before the switch, [+-]h[:mm[:ss]], default 02:00, hours up to +-167.
# Pure integer code: times are seconds since 2000-01-01 00:00 UTC (as in tariff.py),
# below 2**30 until 2034; the transitions of the current year are cached in ints
# so the per-call path allocates nothing.
#
# Reference: POSIX.1-2017 Base Definitions 8.3 (TZ).


class TZError(ValueError):
    pass


def days_from_civil(y, m, d):
    """Days from 2000-01-01 to the date y-m-d (proleptic Gregorian)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425  # 730425 = days from 0000-03-01 to 2000-01-01


def year_of_day(z):
    """The year of day z counted from 2000-01-01 (allocates nothing)."""
    z += 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    return yoe + era * 400 + (1 if doy >= 306 else 0)  # doy counts from March 1


def civil_from_days(z):
    """(year, month, day) of day z counted from 2000-01-01."""
    z += 730425
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Parser:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def fail(self, what):
        raise TZError("time zone %r: %s at position %d" % (self.s, what, self.i))

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def name(self):
        s = self.s
        i = self.i
        if self.peek() == "<":
            j = s.find(">", i)
            if j < 0:
                self.fail("unclosed <name>")
            n = s[i + 1:j]
            self.i = j + 1
        else:
            j = i
            while j < len(s) and s[j].isalpha():
                j += 1
            n = s[i:j]
            self.i = j
        if len(n) < 3:
            self.fail("zone name needs 3 or more characters")
        return n

    def number(self, lo, hi):
        s = self.s
        j = self.i
        while j < len(s) and s[j].isdigit():
            j += 1
        if j == self.i:
            self.fail("number expected")
        v = int(s[self.i:j])
        if not lo <= v <= hi:
            self.fail("%d outside %d..%d" % (v, lo, hi))
        self.i = j
        return v

    def hms(self, max_h):
        """[+-]h[:mm[:ss]] in seconds."""
        sign = 1
        c = self.peek()
        if c in ("+", "-"):
            sign = -1 if c == "-" else 1
            self.i += 1
        v = self.number(0, max_h) * 3600
        if self.peek() == ":":
            self.i += 1
            v += self.number(0, 59) * 60
            if self.peek() == ":":
                self.i += 1
                v += self.number(0, 59)
        return sign * v

    def rule(self):
        """(kind, a, b, c, time_s): kind 0 = Mm.w.d, 1 = Jn, 2 = n."""
        c = self.peek()
        if c == "M":
            self.i += 1
            m = self.number(1, 12)
            if self.peek() != ".":
                self.fail("'.' expected")
            self.i += 1
            w = self.number(1, 5)
            if self.peek() != ".":
                self.fail("'.' expected")
            self.i += 1
            d = self.number(0, 6)
            r = [0, m, w, d]
        elif c == "J":
            self.i += 1
            r = [1, self.number(1, 365), 0, 0]
        elif c.isdigit():
            r = [2, self.number(0, 365), 0, 0]
        else:
            self.fail("rule (Mm.w.d, Jn or n) expected")
        t = 7200
        if self.peek() == "/":
            self.i += 1
            t = self.hms(167)
        r.append(t)
        return tuple(r)


def _rule_day(rule, y):
    """Day number (from 2000-01-01) of the rule's date in year y."""
    kind, a, w, d, _ = rule
    if kind == 0:
        first = days_from_civil(y, a, 1)
        dow = (first + 6) % 7  # 2000-01-01 was a Saturday (6)
        day = first + (d - dow) % 7 + 7 * (w - 1)
        n = _MDAYS[a - 1] + (1 if a == 2 and _leap(y) else 0)
        if day >= first + n:
            day -= 7  # week 5 = the last such weekday of the month
        return day
    jan1 = days_from_civil(y, 1, 1)
    if kind == 1:  # Jn: 1..365, February 29 never counted
        return jan1 + a - 1 + (1 if a >= 60 and _leap(y) else 0)
    return jan1 + a


class TZ:
    """A parsed POSIX TZ string. Raises TZError (a ValueError) naming the problem."""

    def __init__(self, s):
        if not isinstance(s, str) or not s:
            raise TZError("time zone: a POSIX TZ string is needed, e.g. CET-1CEST,M3.5.0,M10.5.0/3")
        p = _Parser(s)
        self.text = s
        self.std_name = p.name()
        self.std_off = -p.hms(24)  # seconds east of UTC
        self.dst_name = None
        self.dst_off = self.std_off
        self.start = self.end = None
        if p.i < len(s):
            self.dst_name = p.name()
            self.dst_off = self.std_off + 3600
            if p.peek() not in (",", ""):
                self.dst_off = -p.hms(24)
            if p.peek() != ",":
                p.fail("DST rules ',start,end' expected (this firmware has no default rule)")
            p.i += 1
            self.start = p.rule()
            if p.peek() != ",":
                p.fail("',' before the end rule expected")
            p.i += 1
            self.end = p.rule()
        if p.i != len(s):
            p.fail("unexpected text")
        self._year = -1
        self._on = 0  # DST start, UTC s since 2000, of the cached year
        self._off = 0  # DST end

    def transitions(self, year):
        """(dst_start_utc_s, dst_end_utc_s) of `year`, or None without DST."""
        if self.start is None:
            return None
        self._cache(year)
        return self._on, self._off

    def _cache(self, year):
        if year != self._year:
            s, e = self.start, self.end
            # the start rule's time is standard local time, the end rule's is DST local time
            self._on = _rule_day(s, year) * 86400 + s[4] - self.std_off
            self._off = _rule_day(e, year) * 86400 + e[4] - self.dst_off
            self._year = year

    def is_dst(self, t):
        """True when UTC second t (since 2000) is in daylight saving time."""
        if self.start is None:
            return False
        self._cache(year_of_day((t + self.std_off) // 86400))  # the year in standard time
        on, off = self._on, self._off
        if on < off:
            return on <= t < off
        return not (off <= t < on)  # southern hemisphere: DST spans the new year

    def offset_s(self, t):
        """Seconds east of UTC at UTC second t."""
        return self.dst_off if self.is_dst(t) else self.std_off

    def local(self, t):
        """Local seconds since 2000-01-01 00:00 local, for UTC second t."""
        return t + self.offset_s(t)

    def name(self, t):
        return self.dst_name if self.is_dst(t) else self.std_name


def check(value):
    """Config check for a time-zone string: raises TZError, returns the string."""
    TZ(value)
    return value


def rule(section):
    """The "time" section's rule (gateway.wiring.rules): the TZ string must parse."""
    try:
        TZ(section["tz"])
    except TZError as e:
        from gateway.schema import ConfigError

        raise ConfigError("time.tz: %s" % e)
