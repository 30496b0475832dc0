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
from gateway.clock import Clock, ticks_diff
from gateway.mqttio import MQTTError, Wire
from gateway.util import rand16
from micropython import const

_Q_RETAIN = const(1)  # queue flag bit: retain

SCHEMA = {
    "host": ("", None, None),  # broker host name or IP literal; "" = MQTT off
    "port": (1883, 1, 65535),
    "tls": (False, None, None),
    "tls_verify": (True, None, None),  # check the broker certificate against ca_file
    "ca_file": ("ca.pem", None, None),  # the CA certificate (PEM or DER) on flash
    # the name the broker certificate must carry; "" = host (set it when host is an IP
    # literal and the certificate names the broker by DNS name)
    "server_hostname": ("", None, None),
    "user": ("", None, None),
    "password": ("", None, None),  # secrets file only
    "client_id": ("", None, None),  # "" = derived from the node id
    "keepalive_s": (30, 10, 600),
    "clean_session": (True, None, None),
    "queue_len": (8, 2, 64),  # messages held while the link is down (~0.7 KB each)
    "backoff_min_ms": (500, 100, 10000),
    "backoff_max_ms": (8000, 1000, 300000),  # <= 8 s: back within ~10 s of the broker
    "timeout_ms": (5000, 500, 60000),  # connect, CONNACK and PUBACK wait
    "retries": (2, 0, 10),  # PUBLISH retransmissions before the link is declared dead
}


def backoff_ms(fails, lo_ms, hi_ms, rnd):
    """Delay before attempt `fails`+1: exponential from lo_ms to hi_ms, equal jitter.

    `rnd` is any non-negative random int; the result lies in [base/2, base].
    """
    base = lo_ms << (fails if fails < 16 else 16)
    base = min(base, hi_ms)
    half = base >> 1
    return half + rnd % (half + 1)


class MQTTClient(Wire):
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
        self._out = []  # packets of one _tx pass, written together
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
                                              rand16()))

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
