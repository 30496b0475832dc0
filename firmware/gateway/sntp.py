# SNTP client (RFC 4330) on a non-blocking UDP socket, and the wall clock it keeps.
#
# micropython-lib's `ntptime` resolves the name and then waits in a blocking
# `recv` with a 1 s socket timeout: the whole event loop (and every soft IRQ on
# the ESP32) stalls for up to 1 s per attempt. Here the request is sent on a
# non-blocking socket and the reply is polled from asyncio every few ms, so no
# call waits. The server address comes from the network manager, resolved once per
# (re)connect outside the control path (or an IP literal).
#
# The wall clock is a pair (ticks at the last sync, UTC ms at that instant): the
# board's RTC is never needed, and nothing reads wall time before the first sync
# (`synced` False, `now_s` returns -1). Times are seconds since 2000-01-01 UTC
# (tariff.EPOCH_2000), small ints until 2034. Every sync also measures the offset
# (how far the clock had drifted from the server: NTP's theta) and the round trip.
#
# Config section "time" (SCHEMA): server, port, period, retry, timeout and the POSIX
# TZ string (gateway/tz.py) for local time.
from micropython import const

from gateway.clock import ticks_diff

SCHEMA = {
    "server": ("pool.ntp.org", None, None),  # NTP server name or IP literal
    "port": (123, 1, 65535),
    "sync_s": (3600, 60, 86400),  # re-sync period
    "retry_s": (15, 1, 3600),  # first retry after a failure (doubles up to sync_s)
    "timeout_ms": (1500, 100, 10000),  # reply wait per attempt (polled, never blocking)
    "tz": ("CET-1CEST,M3.5.0,M10.5.0/3", None, None),  # POSIX TZ string (see docs)
}

_NTP_2000_HI = const(0xBC17)  # NTP seconds (since 1900) of 2000-01-01: 0xBC17C200
_NTP_2000_LO = const(0xC200)
_DAY_MS = const(86400000)
_POLL_MS = const(2)


def _ts(buf, i):
    """(s since 2000, ms) of the NTP timestamp at buf[i:i+8], in small ints."""
    hi = (buf[i] << 8) | buf[i + 1]
    lo = (buf[i + 2] << 8) | buf[i + 3]
    s = (hi - _NTP_2000_HI) * 65536 + lo - _NTP_2000_LO
    ms = (((buf[i + 4] << 8) | buf[i + 5]) * 1000 + 32768) >> 16  # may round to 1000
    return s, ms


class SntpError(Exception):
    pass


def check_reply(req, rep, n):
    """Raise SntpError unless `rep` (n bytes) answers `req`; RFC 4330 section 5 checks."""
    if n < 48:
        raise SntpError("short reply (%d bytes)" % n)
    if rep[0] & 7 != 4:
        raise SntpError("not a server reply (mode %d)" % (rep[0] & 7))
    if rep[0] >> 6 == 3:
        raise SntpError("server not synchronised (LI 3)")
    if not 1 <= rep[1] <= 15:
        raise SntpError("kiss-o'-death or bad stratum %d" % rep[1])
    for k in range(8):
        if rep[24 + k] != req[40 + k]:
            raise SntpError("reply does not match the request (origin timestamp)")
    if rep[40] | rep[41] | rep[42] | rep[43] == 0:
        raise SntpError("zero transmit timestamp")


class WallClock:
    """UTC from the ticks clock after the first sync. Pure: ticks come in as ints."""

    def __init__(self):
        self.synced = False
        self._t = 0  # ticks at the base
        self._s = 0  # UTC s since 2000 at the base
        self._ms = 0  # + ms (0..999)

    def set(self, ticks, s, ms):
        self._t = ticks
        self._s = s + ms // 1000
        self._ms = ms % 1000
        self.synced = True

    def now_s(self, ticks):
        """UTC seconds since 2000, or -1 before the first sync."""
        if not self.synced:
            return -1
        d = ticks_diff(ticks, self._t)
        if d >= _DAY_MS or d < 0:  # move the base along so ticks_diff never wraps
            self._rebase(ticks, d)
            d = ticks_diff(ticks, self._t)
        return self._s + (d + self._ms) // 1000

    def now_ms_of_s(self, ticks):
        """The ms part (0..999) of the current UTC second."""
        return (ticks_diff(ticks, self._t) + self._ms) % 1000

    def _rebase(self, ticks, d):
        d += self._ms
        self._s += d // 1000
        self._ms = d % 1000
        self._t = ticks

    def offset_ms(self, ticks, s, ms):
        """(server time s.ms at `ticks`) - (this clock at `ticks`), ms."""
        mine = self.now_s(ticks)
        return (s - mine) * 1000 + ms - self.now_ms_of_s(ticks)


class Sntp:
    """The SNTP service. cfg: the "time" section. clock: board clock (now_ms).
    net: the network manager (or None = always up): .up, .gen (bumped on each
    (re)connect) and .resolve(host, port) -> address or None. sock_factory: returns a
    UDP socket (default socket.socket); tests pass their own.

    State for telemetry and the console: synced, syncs, failures, offset_ms (last
    correction), rtt_ms, last_sync_s (UTC s since 2000), last_error.
    """

    def __init__(self, cfg, clock, net=None, sock_factory=None, log=None):
        self.cfg = cfg
        self.clock = clock
        self.net = net
        self.log = log
        self._sock_factory = sock_factory
        self.wall = WallClock()
        self.syncs = 0
        self.failures = 0
        self.offset_ms = 0
        self.offset_ms_max = 0  # largest |offset| of a re-sync (the clock's drift)
        self.rtt_ms = 0
        self.last_sync_s = -1
        self.last_error = None
        self._req = bytearray(48)
        self._rep = bytearray(64)
        self._seq = 0
        self.wake = False  # set to force a sync now (console "time sync")
        self.on_sync = None  # optional fn(sntp) after each good sync

    @property
    def synced(self):
        return self.wall.synced

    def now_s(self):
        """UTC s since 2000 now, or -1 before the first sync."""
        return self.wall.now_s(self.clock.now_ms())

    def _log(self, level, msg):
        if self.log is not None:
            self.log.add(level, msg)

    def _socket(self):
        if self._sock_factory is not None:
            return self._sock_factory()
        import socket

        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def sync_once(self, addr):
        """One request/reply exchange with `addr` (a sockaddr). Raises SntpError/OSError."""
        import asyncio

        req = self._req
        rep = self._rep
        for i in range(48):
            req[i] = 0
        req[0] = 0x23  # LI 0, version 4, mode 3 (client)
        self._seq = (self._seq + 1) & 0xFFFF
        clock = self.clock
        t1 = clock.now_ms()
        # our transmit timestamp is a nonce the server echoes as "origin" (anti-spoof)
        req[40] = (t1 >> 24) & 0xFF
        req[41] = (t1 >> 16) & 0xFF
        req[42] = (t1 >> 8) & 0xFF
        req[43] = t1 & 0xFF
        req[44] = self._seq >> 8
        req[45] = self._seq & 0xFF
        s = self._socket()
        try:
            s.setblocking(False)
            t1 = clock.now_ms()
            s.sendto(req, addr)
            timeout = self.cfg["timeout_ms"]
            while True:
                try:
                    n = s.readinto(rep) if hasattr(s, "readinto") else _recv_into(s, rep)
                except OSError:  # EAGAIN: nothing yet
                    n = None
                t4 = clock.now_ms()
                if n:
                    break
                if ticks_diff(t4, t1) >= timeout:
                    raise SntpError("no reply within %d ms" % timeout)
                await asyncio.sleep_ms(_POLL_MS)
        finally:
            s.close()
        check_reply(req, rep, n)
        s2, ms2 = _ts(rep, 32)  # server receive
        s3, ms3 = _ts(rep, 40)  # server transmit
        proc = (s3 - s2) * 1000 + ms3 - ms2
        rtt = max(0, ticks_diff(t4, t1) - proc)
        # server time at t4 = transmit + half the network round trip
        ms = ms3 + rtt // 2
        if self.wall.synced:
            off = self.wall.offset_ms(t4, s3, ms)
            self.offset_ms = off
            self.offset_ms_max = max(self.offset_ms_max, abs(off))
        self.wall.set(t4, s3, ms)
        self.rtt_ms = rtt
        self.syncs += 1
        self.last_sync_s = s3
        self.last_error = None
        return rtt

    async def run(self):
        """Sync at start, on every period, and after every (re)connect; back off on failure."""
        import asyncio

        cfg = self.cfg
        net = self.net
        gen = -1
        due = self.clock.now_ms()
        retry_s = cfg["retry_s"]
        while True:
            now = self.clock.now_ms()
            if net is not None and not net.up:
                await asyncio.sleep_ms(200)
                continue
            if net is not None and net.gen != gen:
                gen = net.gen
                due = now  # a fresh link: sync now (the address was resolved again)
            if self.wake or ticks_diff(now, due) >= 0:
                self.wake = False
                addr = net.resolve(cfg["server"], cfg["port"]) if net is not None else \
                    _resolve(cfg["server"], cfg["port"])
                try:
                    if addr is None:
                        raise SntpError("cannot resolve %s" % cfg["server"])
                    await self.sync_once(addr)
                    retry_s = cfg["retry_s"]
                    due = _add_s(now, cfg["sync_s"])
                    if self.on_sync is not None:
                        self.on_sync(self)
                except (SntpError, OSError) as e:
                    self.failures += 1
                    self.last_error = str(e)
                    self._log(2, "time: sync failed (%s); retry in %d s" % (e, retry_s))
                    due = _add_s(now, retry_s)
                    retry_s = min(retry_s * 2, cfg["sync_s"])
            await asyncio.sleep_ms(200)

    def state(self):
        """The published time record."""
        return {"synced": self.wall.synced, "syncs": self.syncs, "failures": self.failures,
                "offset_ms": self.offset_ms, "rtt_ms": self.rtt_ms,
                "last_sync_s": self.last_sync_s, "error": self.last_error}


def _add_s(ticks, s):
    """ticks + s seconds as a due time; periods beyond 2**29 ms would not compare."""
    from gateway.clock import ticks_add

    return ticks_add(ticks, min(s * 1000, 0x1FFFFFFF))


def _recv_into(s, buf):
    data = s.recv(len(buf))
    n = len(data)
    buf[:n] = data
    return n


def _resolve(host, port):
    """getaddrinfo, used only without a network manager (the host and tests)."""
    import socket

    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except (OSError, IndexError):
        return None
