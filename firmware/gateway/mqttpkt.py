# MQTT 3.1.1 packet encoding and decoding (OASIS standard, 29 Oct 2014), pure.
#
# Only what a telemetry client needs: CONNECT, CONNACK, PUBLISH (QoS 0/1),
# PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT. Section numbers
# below refer to the standard. No I/O here: gateway/mqtt.py moves the bytes.
from micropython import const

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # 3.8.1: flags 0010 are mandatory
SUBACK = const(0x90)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)
MAX_REMAINING = const(268435455)  # 2.2.3: four length bytes

PINGREQ_PKT = b"\xc0\x00"
DISCONNECT_PKT = b"\xe0\x00"

# 3.2.2.3 CONNACK return codes
_REFUSED = (
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


class MQTTProtocolError(ValueError):
    """Malformed packet, or a value MQTT cannot carry."""


def refused_reason(code):
    return _REFUSED[code] if 0 <= code < len(_REFUSED) else "return code %d" % code


def encode_length(n):
    """2.2.3 Remaining Length: 7 bits per byte, least significant group first."""
    if n < 0 or n > MAX_REMAINING:
        raise MQTTProtocolError("remaining length %d out of range" % n)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_length(buf, i=0):
    """(value, index after the length) or None when buf ends before the last length byte."""
    n = 0
    shift = 0
    while True:
        if i >= len(buf):
            return None
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift > 21:
            raise MQTTProtocolError("remaining length longer than 4 bytes")


def _utf8(s, what):
    """1.5.3 UTF-8 string: 2-byte big-endian length, then the bytes (no U+0000)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise MQTTProtocolError("%s longer than 65535 bytes" % what)
    if b"\x00" in b:
        raise MQTTProtocolError("%s contains U+0000" % what)
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def check_topic(topic, filter_ok=False):
    """4.7: a topic name is non-empty and has no wildcards; filters may have + and #."""
    if not topic:
        raise MQTTProtocolError("empty topic")
    if not filter_ok and ("+" in topic or "#" in topic):
        raise MQTTProtocolError("wildcard in topic name %r" % topic)
    return topic


def connect(client_id, keepalive_s, clean=True, user="", password="", will_topic=None,
            will_msg=b"", will_retain=False, will_qos=0):
    """3.1 CONNECT. A password needs a user name (3.1.2.9); an empty password is omitted."""
    if not 0 <= keepalive_s <= 65535:
        raise MQTTProtocolError("keepalive %d out of range" % keepalive_s)
    if will_qos not in (0, 1):
        raise MQTTProtocolError("will QoS %d not supported" % will_qos)
    flags = 0x02 if clean else 0
    payload = _utf8(client_id, "client id")
    if will_topic:
        check_topic(will_topic)
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _utf8(will_topic, "will topic") + _utf8(will_msg, "will message")
    if user:
        flags |= 0x80
        payload += _utf8(user, "user name")
        if password:
            flags |= 0x40
            payload += _utf8(password, "password")
    var = b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return bytes((CONNECT,)) + encode_length(len(var) + len(payload)) + var + payload


def publish_header(topic, payload_len, qos=0, retain=False, dup=False, pid=0):
    """3.3 PUBLISH fixed + variable header; the payload follows as-is (no copy)."""
    if qos not in (0, 1):
        raise MQTTProtocolError("QoS %d not supported" % qos)
    check_topic(topic)
    t = _utf8(topic, "topic")
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if qos:
        if not 0 < pid < 65536:
            raise MQTTProtocolError("packet id %d out of range" % pid)
        t += bytes((pid >> 8, pid & 0xFF))
    return bytes((first,)) + encode_length(len(t) + payload_len) + t


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """A whole PUBLISH packet (tests and small messages)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return publish_header(topic, len(payload), qos, retain, dup, pid) + payload


def subscribe(pid, topics):
    """3.8 SUBSCRIBE: topics is a list of (filter, qos)."""
    if not 0 < pid < 65536:
        raise MQTTProtocolError("packet id %d out of range" % pid)
    if not topics:
        raise MQTTProtocolError("SUBSCRIBE needs at least one topic filter")
    body = bytes((pid >> 8, pid & 0xFF))
    for t, q in topics:
        check_topic(t, True)
        if q not in (0, 1):
            raise MQTTProtocolError("QoS %d not supported" % q)
        body += _utf8(t, "topic filter") + bytes((q,))
    return bytes((SUBSCRIBE,)) + encode_length(len(body)) + body


def puback(pid):
    return bytes((PUBACK, 2, pid >> 8, pid & 0xFF))


def _pid(body, what):
    if len(body) < 2:
        raise MQTTProtocolError("%s too short" % what)
    return (body[0] << 8) | body[1]


def parse_connack(body):
    """3.2: (session_present, return_code)."""
    if len(body) != 2:
        raise MQTTProtocolError("CONNACK length %d, expected 2" % len(body))
    return bool(body[0] & 1), body[1]


def parse_puback(body):
    if len(body) != 2:
        raise MQTTProtocolError("PUBACK length %d, expected 2" % len(body))
    return _pid(body, "PUBACK")


def parse_suback(body):
    """3.9: (packet id, granted QoS list; 0x80 = failure)."""
    if len(body) < 3:
        raise MQTTProtocolError("SUBACK too short")
    return _pid(body, "SUBACK"), list(body[2:])


def parse_publish(first, body):
    """3.3 from the first header byte and the body: (topic, payload, qos, pid, retain, dup)."""
    qos = (first >> 1) & 3
    if qos > 2:
        raise MQTTProtocolError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise MQTTProtocolError("PUBLISH too short")
    n = (body[0] << 8) | body[1]
    i = 2 + n
    if i > len(body):
        raise MQTTProtocolError("PUBLISH topic length %d beyond the packet" % n)
    try:
        topic = bytes(body[2:i]).decode()
    except UnicodeError:
        raise MQTTProtocolError("PUBLISH topic is not UTF-8")
    pid = 0
    if qos:
        if i + 2 > len(body):
            raise MQTTProtocolError("PUBLISH packet id missing")
        pid = (body[i] << 8) | body[i + 1]
        i += 2
    return topic, bytes(body[i:]), qos, pid, bool(first & 1), bool(first & 8)
