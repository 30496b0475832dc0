"""QoS 1 retransmission against a scripted broker that withholds one PUBACK: the
firmware resends the same packet id with DUP set after mqtt.timeout_ms, and after
`retries` unanswered resends it drops the link and reconnects."""

import socket
import threading
import time

from gwhost.telnode import Node


class ScriptedBroker:
    """Accepts connections; answers CONNACK, SUBACK, PINGRESP; PUBACKs QoS 1 publishes
    except the ones `withhold(pid, dup)` says to ignore. Records (t, first, pid, conn)."""

    def __init__(self, withhold):
        self.host = "127.0.0.1"
        self.srv = socket.socket()
        self.srv.bind((self.host, 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.withhold = withhold
        self.pubs = []
        self.conns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(s, self.conns), daemon=True).start()

    @staticmethod
    def _read(s, n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def _serve(self, s, conn):
        try:
            while True:
                first = self._read(s, 1)[0]
                n, shift = 0, 0
                while True:
                    b = self._read(s, 1)[0]
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                body = self._read(s, n)
                kind = first & 0xF0
                if kind == 0x10:
                    s.sendall(b"\x20\x02\x00\x00")
                elif kind == 0x80:
                    s.sendall(b"\x90\x03" + body[:2] + b"\x01")
                elif kind == 0xC0:
                    s.sendall(b"\xd0\x00")
                elif kind == 0x30 and first & 0x06:
                    tl = (body[0] << 8) | body[1]
                    pid = (body[2 + tl] << 8) | body[3 + tl]
                    dup = bool(first & 0x08)
                    self.pubs.append((time.monotonic(), first, pid, conn))
                    if not self.withhold(pid, dup, conn):
                        s.sendall(b"\x40\x02" + bytes((pid >> 8, pid & 0xFF)))
        except (EOFError, OSError):
            s.close()

    def close(self):
        self.srv.close()


def _run(withhold, until, timeout=15, telemetry=None):
    b = ScriptedBroker(withhold)
    cfg = {"mqtt": {"timeout_ms": 500, "retries": 2},
           "telemetry": telemetry or {"period_s": 60}}
    node = Node(b, cfg).start()
    try:
        t_end = time.monotonic() + timeout
        while not until(b):
            assert time.monotonic() < t_end, b.pubs[:8]
            assert node.proc.poll() is None
            time.sleep(0.05)
        return b
    finally:
        node.stop()
        b.close()


def test_unacknowledged_publish_is_resent_with_dup():
    withheld = []

    def first_only(pid, dup, conn):  # the first QoS 1 message (a discovery config)
        if withheld:
            return False
        withheld.append(pid)
        return True

    b = _run(first_only, lambda b: len(b.pubs) >= 5)
    first, again = b.pubs[0], b.pubs[1]
    assert first[1] & 0x08 == 0 and again[1] & 0x08, "the resend must carry DUP"
    assert again[2] == first[2], "same packet id"
    assert 0.4 <= again[0] - first[0] < 1.5, again[0] - first[0]  # mqtt.timeout_ms = 500
    assert {p[3] for p in b.pubs} == {1}, "one connection: no reconnect needed"


def test_silent_broker_means_reconnect_and_resend():
    """A queued QoS 1 state (discovery off) survives the dead link and goes first."""
    b = _run(lambda pid, dup, conn: conn == 1, lambda b: b.conns >= 2 and any(
        p[3] == 2 for p in b.pubs), telemetry={"period_s": 1, "qos": 1, "discovery": False})
    on1 = [p for p in b.pubs if p[3] == 1]
    assert len(on1) == 3 and len({p[2] for p in on1}) == 1, on1  # first send + 2 retries
    on2 = [p for p in b.pubs if p[3] == 2]
    assert on2[0][2] == on1[0][2] and on2[0][1] & 0x08  # resent first after reconnect
