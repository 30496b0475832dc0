# Network bring-up and supervision: Wi-Fi station or Ethernet, never blocking the loop.
#
# The manager drives a link object from the port (ports/esp32_net.py: network.WLAN or
# network.LAN; ports/sim_net.py: loopback, always up), duck-typed:
#   start(cfg)            power up the interface (no wait)
#   connect(ssid, pw)     begin joining (returns at once; Ethernet: no-op)
#   status()              "idle" | "connecting" | "up" | "wrong_password" | "no_ap" | "fail"
#   disconnect()
#   ip()                  address text or None;  rssi()  dBm or None (Ethernet: None)
# step(now_ms) is a pure state machine polled every 100 ms by run(): connect, wait for
# "up" within net.connect_s, then check the link every second; on loss or failure wait
# (backoff doubling from backoff_min_s to backoff_max_s) and try again, forever.
# `gen` counts (re)connects: SNTP and MQTT resync on a new value. Names (NTP server, MQTT
# broker) are resolved once per (re)connect, in this task, and not during island backup or
# a discharge (getaddrinfo blocks on the ESP32: a slow DNS would hold the interpreter);
# meanwhile the previous addresses are used. IP literals need no DNS at all.
from micropython import const

from gateway.clock import ticks_diff

SCHEMA = {
    "mode": ("none", ("none", "wifi", "eth"), None),  # "none" = not provisioned
    "ssid": ("", None, None),
    "password": ("", None, None),  # secrets file only
    "hostname": ("", None, None),  # DHCP host name ("" = the port's default)
    "connect_s": (20, 5, 120),  # give up one attempt after this
    "backoff_min_s": (2, 1, 60),
    "backoff_max_s": (60, 5, 3600),
}

S_DOWN = const(0)  # waiting for the next attempt
S_JOINING = const(1)
S_UP = const(2)
STATE_NAMES = ("down", "joining", "up")


class NetManager:
    """cfg: the "net" section (a live dict). link: the port's interface object.
    busy: fn() True while the interpreter must not stall (Gateway.flash_busy): no DNS then."""

    def __init__(self, cfg, link, clock, log=None, busy=None):
        self.cfg = cfg
        self.link = link
        self.clock = clock
        self.log = log
        self.busy = busy
        self.state = S_DOWN
        self.up = False
        self.gen = 0  # bumped on every (re)connect
        self.attempts = 0
        self.losses = 0
        self.last_error = None
        self.backoff_s = cfg["backoff_min_s"]
        self._t = 0  # tick the current state began (or the next attempt is due)
        self._due = 0
        self._check = 0
        self._names = []  # (host, port) to resolve per connect
        self._addr = {}  # (host, port) -> sockaddr
        self._resolved_gen = -1
        self._started = False
        self._want = None  # (mode, ssid, password) the link was started with
        self.resolve_count = 0

    def _log(self, level, msg):
        if self.log is not None:
            self.log.add(level, msg)

    def want(self, host, port):
        """Register a name to resolve at each (re)connect."""
        if (host, port) not in self._names:
            self._names.append((host, port))

    def resolve(self, host, port):
        """A cached sockaddr (resolved at the last connect), or None."""
        key = (host, port)
        if key not in self._names:
            self._names.append(key)
            self._resolved_gen = -1  # resolve the newcomer at the next step
        return self._addr.get(key)

    def _resolve_all(self):
        import socket

        for host, port in self._names:
            try:
                self._addr[(host, port)] = socket.getaddrinfo(host, port)[0][-1]
                self.resolve_count += 1
            except (OSError, IndexError) as e:
                self._log(2, "net: cannot resolve %s (%s)" % (host, e))
        self._resolved_gen = self.gen

    def configured(self):
        c = self.cfg
        return c["mode"] == "eth" or (c["mode"] == "wifi" and bool(c["ssid"]))

    def step(self, now):
        """One poll. Returns the state (S_*)."""
        c = self.cfg
        want = (c["mode"], c["ssid"], c["password"])
        if want != self._want and self._started:
            self._log(1, "net: settings changed: reconnecting")
            self._drop(now, "settings changed", backoff=False)
            self._started = False
        if not self.configured():
            self.state = S_DOWN
            return self.state
        if not self._started:
            self.link.start(c)
            self._started = True
            self._want = want
            self._due = now
        if self.state == S_DOWN:
            if ticks_diff(now, self._due) >= 0:
                self.attempts += 1
                self.link.connect(c["ssid"], c["password"])
                self.state = S_JOINING
                self._t = now
        elif self.state == S_JOINING:
            st = self.link.status()
            if st == "up":
                self.state = S_UP
                self.up = True
                self.gen += 1
                self.backoff_s = c["backoff_min_s"]
                self.last_error = None
                self._check = now
                self._log(1, "net: up, address %s%s (attempt %d)" % (
                    self.link.ip(), self._rssi_text(), self.attempts))
            elif st in ("wrong_password", "no_ap", "fail"):
                self._drop(now, st)
            elif ticks_diff(now, self._t) >= c["connect_s"] * 1000:
                self._drop(now, "no link within %d s" % c["connect_s"])
        else:
            if ticks_diff(now, self._check) >= 1000:
                self._check = now
                if self.link.status() != "up":
                    self.losses += 1
                    self._drop(now, "link lost")
            if self._resolved_gen != self.gen and not (self.busy is not None and self.busy()):
                self._resolve_all()
        return self.state

    def _drop(self, now, why, backoff=True):
        was_up = self.up
        self.up = False
        self.state = S_DOWN
        self.last_error = why
        try:
            self.link.disconnect()
        except OSError:
            pass
        wait = self.backoff_s if backoff else 0
        self._due = (now + wait * 1000) & 0x3FFFFFFF
        if backoff:
            self.backoff_s = min(self.backoff_s * 2, self.cfg["backoff_max_s"])
        self._log(2 if was_up or backoff else 1, "net: %s; next attempt in %d s" % (why, wait))

    def _rssi_text(self):
        r = self.link.rssi()
        return "" if r is None else ", signal %d dBm" % r

    async def run(self):
        import asyncio

        while True:
            self.step(self.clock.now_ms())
            await asyncio.sleep_ms(100)

    def state_record(self):
        return {"state": STATE_NAMES[self.state], "mode": self.cfg["mode"], "ip": self.link.ip()
                if self.up else None, "rssi": self.link.rssi() if self.up else None,
                "attempts": self.attempts, "losses": self.losses, "error": self.last_error}

    def status_lines(self):
        r = self.state_record()
        lines = ["network %s: %s%s" % (r["mode"], r["state"], (
            ", address %s%s" % (r["ip"], self._rssi_text())) if self.up else "")]
        if self.cfg["mode"] == "wifi":
            lines.append("ssid %s, password %s" % (self.cfg["ssid"] or "(not set)",
                                                  "set" if self.cfg["password"] else "(not set)"))
        lines.append("attempts %d, losses %d, next backoff %d s%s" % (
            r["attempts"], r["losses"], self.backoff_s,
            ("; last error: %s" % r["error"]) if r["error"] else ""))
        return lines
