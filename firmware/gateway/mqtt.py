# MQTT 3.1.1 client for the gateway: asyncio, non-blocking sockets, reconnects forever.
#
# Why the project carries its own client: the registry's micropython-mqtt 0.7b4
# (mqtt_async.py) is a 2020 fork its own author calls superseded; it imports
# `network` and `machine.unique_id` at import time and fails to connect on the
# unix port (it hands getaddrinfo's raw sockaddr, a bytearray there, to
# asyncio.open_connection). The maintained mqtt_as is on no registry this
# project installs from and cannot be imported on the unix port. This client
# follows mqtt_as's resilience ideas (ping on a fixed schedule, treat silence
# as a dead link, reconnect forever) and runs unchanged on both ports because
# it only uses asyncio.open_connection(host string, port).
#
# Rules it keeps for the rest of the firmware:
# - post() never blocks and never awaits: control and safety code may call it.
#   It appends to a bounded drop-oldest queue (drops counted) that one task drains.
# - One task writes to the socket (asyncio's Stream.drain is single-writer).
# - The broker address is resolved once per connect attempt (inside
#   open_connection). getaddrinfo blocks: use an IP literal for mqtt.host on the
#   board where a DNS outage must not stall the loop (see docs/telemetry.md).
# - Availability: the last will publishes `will` (retained, QoS 1) on will_topic
#   when the link dies; after each CONNACK the client publishes `birth` there.
import asyncio

from gateway import mqttpkt as pkt
from gateway.clock import Clock, ticks_add, ticks_diff
from micropython import const

SCHEMA = {
    "host": ("", None, None),  # broker host name or IP literal; "" = MQTT off
    "port": (1883, 1, 65535),
    "tls": (False, None, None),
    "tls_verify": (True, None, None),  # check the broker certificate against ca_file
    "ca_file": ("ca.pem", None, None),  # PEM, on the board's flash
    "user": ("", None, None),
    "password": ("", None, None),  # secrets file only
    "client_id": ("", None, None),  # "" = derived from the node id
    "keepalive_s": (30, 10, 600),
    "clean_session": (True, None, None),
    "queue_len": (16, 2, 64),  # telemetry messages held while the link is down
    "backoff_min_ms": (500, 100, 10000),
    "backoff_max_ms": (8000, 1000, 300000),  # <= 8 s: back within ~10 s of the broker
    "timeout_ms": (5000, 500, 60000),  # connect, CONNACK and PUBACK wait
    "retries": (2, 0, 10),  # PUBLISH retransmissions before the link is declared dead
}

_MAX_IN = const(1024)  # larger incoming packets are skipped, never buffered
_Q_RETAIN = const(1)


class MQTTError(Exception):
    pass


def backoff_ms(fails, lo_ms, hi_ms, rnd):
    """Delay before attempt `fails`+1: exponential from lo_ms to hi_ms, equal jitter.

    `rnd` is any non-negative random int; the result lies in [base/2, base].
    """
    base = lo_ms << (fails if fails < 16 else 16)
    base = min(base, hi_ms)
    half = base >> 1
    return half + rnd % (half + 1)


def _rand():
    try:
        import random

        return random.getrandbits(16)
    except ImportError:
        import os

        b = os.urandom(2)
        return (b[0] << 8) | b[1]


class MQTTClient:
    """cfg: the validated "mqtt" config section (live dict, read at each connect).

    on_message(topic, payload, retained): called in the receive task for each
    PUBLISH on a subscribed topic; payload is bytes, or None when the message
    was larger than the receive limit and skipped. on_connect(): called after
    each successful CONNACK and SUBSCRIBE. Both must return quickly.
    """

    def __init__(self, cfg, client_id, will_topic=None, birth=b"online", will=b"offline",
                 on_message=None, on_connect=None, log=None, counters=None, clock=None):
        self.cfg = cfg
        self.client_id = client_id
        self.will_topic = will_topic
        self.birth = birth
        self.will = will
        self.on_message = on_message
        self.on_connect = on_connect
        self.log = log
        self.counters = counters
        self.clock = clock or Clock()
        n = cfg["queue_len"]
        self._qt = [None] * n  # ring buffer: topics, payloads, flags (qos << 1 | retain)
        self._qp = [None] * n
        self._qf = bytearray(n)
        self._qh = 0
        self._qn = 0
        self._subs = []
        self._wake = asyncio.Event()
        self._plock = asyncio.Lock()
        self._direct = None  # (topic, msg, flags) written ahead of the queue by publish()
        self._direct_done = False
        self._inflight = None  # [topic, msg, flags, pid, is_direct]: the one unacked QoS 1
        self._inflight_t = 0
        self._tries = 0
        self._acks = []  # PUBACKs owed for incoming QoS 1
        self._pid = 0
        self._r = self._w = None
        self._dead = True
        self._gen = 0  # session number
        self._running = True
        self._ssl = None
        self.connected = False
        self.attempts = 0
        self.connects = 0
        self.drops = 0
        self.sent = 0
        self.received = 0
        self.last_error = None
        self.connected_ms = 0  # tick of the last CONNACK

    # ---- called from any task, never blocks ----
    def post(self, topic, msg, retain=False, qos=0):
        """Queue a message; when full the oldest is dropped and counted."""
        n = len(self._qt)
        if self._qn == n:
            self._qt[self._qh] = self._qp[self._qh] = None
            self._qh = (self._qh + 1) % n
            self._qn -= 1
            self.drops += 1
            if self.counters is not None:
                self.counters.mqtt_drops += 1
        i = (self._qh + self._qn) % n
        self._qt[i] = topic
        self._qp[i] = msg
        self._qf[i] = (qos << 1) | (_Q_RETAIN if retain else 0)
        self._qn += 1
        self._wake.set()

    def queued(self):
        return self._qn

    def subscribe(self, topic, qos=0):
        """Register a subscription; (re)sent after every CONNACK."""
        pkt.check_topic(topic, True)
        self._subs.append((topic, qos))

    async def publish(self, topic, msg, retain=False, qos=0, timeout_ms=10000):
        """Write one message ahead of the queue and wait until it is written (QoS 0)
        or acknowledged (QoS 1). False when not connected or the link failed."""
        async with self._plock:
            if not self.connected:
                return False
            self._direct = (topic, msg, (qos << 1) | (_Q_RETAIN if retain else 0))
            self._direct_done = False
            self._wake.set()
            t0 = self.clock.now_ms()
            while (not self._direct_done and self.connected
                   and ticks_diff(self.clock.now_ms(), t0) < timeout_ms):
                await asyncio.sleep_ms(10)
            self._direct = None
            return self._direct_done

    # ---- the connection task ----
    async def run(self):
        """Connect, serve, reconnect with jittered backoff; returns only after stop()."""
        if not self.cfg["host"]:
            self._note(1, "mqtt.host not set: MQTT off")
            return
        fails = 0
        while self._running:
            self.attempts += 1
            was = self.connects
            try:
                await self._session()
            except Exception as e:  # noqa: BLE001 - any failure means reconnect
                self.last_error = "%s: %s" % (type(e).__name__, e)
                if fails < 3 or fails % 10 == 0 or self.connects != was:
                    self._note(2, "mqtt: " + self.last_error)
            await self._teardown()
            if not self._running:
                break
            fails = 0 if self.connects != was else fails + 1
            c = self.cfg
            await asyncio.sleep_ms(backoff_ms(fails, c["backoff_min_ms"], c["backoff_max_ms"],
                                              _rand()))

    async def stop(self, timeout_ms=2000):
        """End run(): the sending task publishes the will payload itself (a clean
        DISCONNECT suppresses the broker's will), then DISCONNECT."""
        self._running = False
        self._wake.set()
        t0 = self._now()
        while self.connected and ticks_diff(self._now(), t0) < timeout_ms:
            await asyncio.sleep_ms(10)

    def _note(self, level, msg):
        if self.log is not None:
            self.log.add(level, msg)

    def _now(self):
        return self.clock.now_ms()

    def _tls(self):
        if self._ssl is None:
            try:
                import ssl
            except ImportError:
                import tls as ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.cfg["tls_verify"]:
                try:
                    with open(self.cfg["ca_file"], "rb") as f:
                        ca = f.read()
                except OSError:
                    raise MQTTError("mqtt.ca_file %r not readable" % self.cfg["ca_file"])
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cadata=ca)
            else:
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def _session(self):
        c = self.cfg
        tmo = c["timeout_ms"]
        ka_ms = c["keepalive_s"] * 1000
        ctx = self._tls() if c["tls"] else None
        # open_connection resolves the host once per attempt and connects non-blocking
        self._r, self._w = await asyncio.wait_for_ms(
            asyncio.open_connection(c["host"], c["port"], ssl=ctx), tmo)
        self._dead = False
        self._gen += 1
        w = self._w
        w.write(pkt.connect(self.client_id, c["keepalive_s"], c["clean_session"], c["user"],
                            c["password"], self.will_topic, self.will, True, 1))
        await asyncio.wait_for_ms(w.drain(), tmo)
        first, body = await asyncio.wait_for_ms(self._read_packet(), tmo)
        if first & 0xF0 != pkt.CONNACK:
            raise MQTTError("expected CONNACK, got packet type %d" % (first >> 4))
        code = pkt.parse_connack(body)[1]
        if code:
            raise MQTTError("broker refused: " + pkt.refused_reason(code))
        if self._subs:
            w.write(pkt.subscribe(self._next_pid(), self._subs))
        if self.will_topic and self.birth:
            w.write(pkt.publish(self.will_topic, self.birth, 0, True))
        await asyncio.wait_for_ms(w.drain(), tmo)
        now = self._now()
        self._last_rx = self._last_ping = self.connected_ms = now
        self.connected = True
        self.connects += 1
        self._note(1, "mqtt connected to %s:%d" % (c["host"], c["port"]))
        if self._inflight is not None:  # unacknowledged in the last session: resend now
            self._inflight_t = ticks_add(now, -10 * tmo)
            self._tries = 1
        if self.on_connect is not None:
            try:
                self.on_connect()
            except Exception as e:  # noqa: BLE001
                self._note(3, "mqtt on_connect: %r" % e)
        rx = asyncio.create_task(self._rx())
        try:
            await self._tx(ka_ms, tmo)
        finally:
            rx.cancel()

    async def _teardown(self):
        self.connected = False
        self._dead = True
        self._acks = []
        w, self._r, self._w = self._w, None, None
        if w is not None:
            try:
                await w.wait_closed()  # closes the socket
            except Exception:  # noqa: BLE001
                pass
        if self._inflight is not None and self._inflight[4]:
            self._inflight = None  # publish() callers retry on the next connect themselves

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _write_pub(self, topic, msg, flags, pid=0, dup=False):
        if isinstance(msg, str):
            msg = msg.encode()
        w = self._w
        w.write(pkt.publish_header(topic, len(msg), flags >> 1, flags & 1, dup, pid))
        w.write(msg)
        self.sent += 1

    async def _tx(self, ka_ms, tmo):
        ping_ms = ka_ms >> 2
        while not self._dead:
            if not self._running:
                if self.will_topic:
                    self._write_pub(self.will_topic, self.will, _Q_RETAIN)
                self._w.write(pkt.DISCONNECT_PKT)
                await asyncio.wait_for_ms(self._w.drain(), tmo)
                return
            now = self._now()
            if ticks_diff(now, self._last_rx) > ka_ms:
                raise MQTTError("broker silent for %d ms" % ticks_diff(now, self._last_rx))
            acks = self._acks
            while acks:
                self._w.write(pkt.puback(acks.pop(0)))
            f = self._inflight
            if f is not None and ticks_diff(now, self._inflight_t) >= tmo:
                if self._tries > self.cfg["retries"]:
                    raise MQTTError("no PUBACK for packet %d" % f[3])
                self._write_pub(f[0], f[1], f[2], f[3], True)
                self._tries += 1
                self._inflight_t = now
            busy = False
            if self._inflight is None:
                d = self._direct
                if d is not None and not self._direct_done:
                    item, is_direct = d, True
                elif self._qn:
                    i = self._qh
                    item, is_direct = (self._qt[i], self._qp[i], self._qf[i]), False
                    self._qt[i] = self._qp[i] = None
                    self._qh = (i + 1) % len(self._qt)
                    self._qn -= 1
                else:
                    item = None
                if item is not None:
                    busy = True
                    if item[2] >> 1:
                        pid = self._next_pid()
                        self._inflight = [item[0], item[1], item[2], pid, is_direct]
                        self._inflight_t = now
                        self._tries = 1
                        self._write_pub(item[0], item[1], item[2], pid)
                    else:
                        self._write_pub(item[0], item[1], item[2])
                        if is_direct:
                            self._direct_done = True
            if ticks_diff(now, self._last_ping) >= ping_ms:
                self._w.write(pkt.PINGREQ_PKT)
                self._last_ping = now
            await asyncio.wait_for_ms(self._w.drain(), tmo)
            if not busy:
                wait = ping_ms - ticks_diff(self._now(), self._last_ping)
                if self._inflight is not None:
                    wait = min(wait, tmo - ticks_diff(self._now(), self._inflight_t))
                if wait > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for_ms(self._wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass

    async def _rx(self):
        gen = self._gen
        try:
            while True:
                first, body = await self._read_packet()
                self._last_rx = self._now()
                kind = first & 0xF0
                if kind == pkt.PUBLISH:
                    self._on_publish(first, body)
                elif kind == pkt.PUBACK:
                    pid = pkt.parse_puback(body)
                    f = self._inflight
                    if f is not None and f[3] == pid:
                        self._inflight = None
                        if f[4]:
                            self._direct_done = True
                        self._wake.set()
                elif kind == pkt.SUBACK:
                    for q in pkt.parse_suback(body)[1]:
                        if q == 0x80:
                            self._note(3, "mqtt: broker refused a subscription")
                elif kind != pkt.PINGRESP:
                    raise MQTTError("unexpected packet type %d" % (first >> 4))
        except Exception as e:  # noqa: BLE001 - EOF, reset, protocol error: end the session
            if not self._dead and gen == self._gen:
                self.last_error = "%s: %s" % (type(e).__name__, e)
                self._note(2, "mqtt receive: " + self.last_error)
        finally:
            if gen == self._gen:  # a cancelled task of an older session touches nothing
                self._dead = True
                self._wake.set()

    def _on_publish(self, first, body):
        if body is None:  # too large: the header part was kept, see _read_packet
            topic, qos, pid, payload = self._big
            retain = bool(first & 1)
        else:
            topic, payload, qos, pid, retain, _ = pkt.parse_publish(first, body)
        if qos == 1:
            self._acks.append(pid)
            self._wake.set()
        self.received += 1
        if self.on_message is not None:
            try:
                self.on_message(topic, payload, retain)
            except Exception as e:  # noqa: BLE001 - a bad handler must not drop the link
                self._note(3, "mqtt handler for %s: %r" % (topic, e))

    async def _read_packet(self):
        r = self._r
        first = (await r.readexactly(1))[0]
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise pkt.MQTTProtocolError("remaining length longer than 4 bytes")
        if n <= _MAX_IN:
            return first, (await r.readexactly(n) if n else b"")
        if first & 0xF0 != pkt.PUBLISH:
            raise pkt.MQTTProtocolError("packet of %d bytes" % n)
        # An oversized PUBLISH: keep topic and packet id, skip the payload in chunks.
        h = await r.readexactly(2)
        tl = (h[0] << 8) | h[1]
        qos = (first >> 1) & 3
        left = n - 2 - tl - (2 if qos else 0)
        if tl > _MAX_IN or left < 0:
            raise pkt.MQTTProtocolError("oversized PUBLISH with a bad topic length")
        try:
            topic = (await r.readexactly(tl)).decode()
        except UnicodeError:
            raise pkt.MQTTProtocolError("PUBLISH topic is not UTF-8")
        pid = 0
        if qos:
            h = await r.readexactly(2)
            pid = (h[0] << 8) | h[1]
        while left:
            left -= len(await r.readexactly(left if left < 256 else 256))
        self._big = (topic, qos, pid, None)
        return first, None
