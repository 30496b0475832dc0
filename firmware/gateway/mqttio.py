# The wire side of the MQTT client (gateway/mqtt.py): one connection at a time.
#
# A session opens the socket with asyncio.open_connection(host string, port)
# (it resolves the name once per attempt and connects non-blocking; the raw
# sockaddr never passes through our hands, which is what breaks mqtt_async on
# the unix port), sends CONNECT, waits for CONNACK, subscribes, publishes the
# birth message, then runs two tasks: _tx, the only writer (asyncio's
# Stream.drain is single-writer), and _rx, which parses incoming packets and
# leaves PUBACKs it owes to _tx. The link counts as dead when the broker stays
# silent for a keepalive period (PINGREQ goes out every keepalive/4), when a
# QoS 1 PUBLISH is not acknowledged after `retries` retransmissions, or on EOF.
import asyncio

from gateway import mqttpkt as pkt
from gateway.clock import ticks_add, ticks_diff
from micropython import const

_MAX_IN = const(3328)  # larger incoming packets are skipped, never buffered: the largest
# message the gateway takes is a tariff, tariff.MAX_TEXT (3072) + 256 for topic and header
_Q_RETAIN = const(1)


class MQTTError(Exception):
    pass


def _der(cert):
    """MicroPython's TLS takes DER; a PEM file (what brokers ship) is converted."""
    if not cert.startswith(b"-----BEGIN"):
        return cert
    import binascii

    body = cert.split(b"-----")[2]  # between BEGIN CERTIFICATE----- and -----END
    return binascii.a2b_base64(body.replace(b"\n", b"").replace(b"\r", b""))


class Wire:
    """Session methods of MQTTClient; the state lives in MQTTClient.__init__."""

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
                ctx.load_verify_locations(cadata=_der(ca))
            else:
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def _session(self):
        c = self.cfg
        tmo = c["timeout_ms"]
        ka_ms = c["keepalive_s"] * 1000
        # open_connection resolves the host once per attempt and connects non-blocking;
        # with TLS the certificate must name server_hostname (or host): mbedTLS checks it
        if c["tls"]:
            conn = asyncio.open_connection(c["host"], c["port"], ssl=self._tls(),
                                           server_hostname=c["server_hostname"] or c["host"])
        else:
            conn = asyncio.open_connection(c["host"], c["port"])
        self._r, self._w = await asyncio.wait_for_ms(conn, tmo)
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
            self._put(pkt.subscribe(self._next_pid(), self._subs))
        if self.will_topic and self.birth:
            self._put(pkt.publish(self.will_topic, self.birth, 0, True))
        self._flush()
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
        self._out = []
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

    def _put(self, b):
        self._out.append(b)

    def _flush(self):
        """One socket write per batch: separate small writes meet Nagle's algorithm and
        the peer's delayed ACK, which cost ~40 ms per message on loopback."""
        o = self._out
        if o:
            self._w.write(o[0] if len(o) == 1 else b"".join(o))
            self._out = []

    def _write_pub(self, topic, msg, flags, pid=0, dup=False):
        if isinstance(msg, str):
            msg = msg.encode()
        self._put(pkt.publish_header(topic, len(msg), flags >> 1, flags & 1, dup, pid))
        self._put(msg)
        self.sent += 1

    async def _tx(self, ka_ms, tmo):
        ping_ms = ka_ms >> 2
        while not self._dead:
            if not self._running:
                if self.will_topic:
                    self._write_pub(self.will_topic, self.will, _Q_RETAIN)
                self._put(pkt.DISCONNECT_PKT)
                self._flush()
                await asyncio.wait_for_ms(self._w.drain(), tmo)
                return
            now = self._now()
            if ticks_diff(now, self._last_rx) > ka_ms:
                raise MQTTError("broker silent for %d ms" % ticks_diff(now, self._last_rx))
            acks = self._acks
            while acks:
                self._put(pkt.puback(acks.pop(0)))
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
                self._put(pkt.PINGREQ_PKT)
                self._last_ping = now
            self._flush()
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
