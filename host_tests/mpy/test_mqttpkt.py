# MQTT 3.1.1 packet bytes, checked against the standard's layouts by hand.
import unittest

from gateway import mqttpkt as p


class RemainingLength(unittest.TestCase):
    def test_boundaries_round_trip(self):
        # 2.2.3 Table 2.4: 1..4 bytes
        for n, size in ((0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (2097151, 3),
                        (2097152, 4), (268435455, 4)):
            b = p.encode_length(n)
            self.assertEqual(len(b), size, n)
            self.assertEqual(p.decode_length(b), (n, size))

    def test_spec_examples(self):
        self.assertEqual(p.encode_length(321), b"\xc1\x02")
        self.assertEqual(p.decode_length(b"\xff\xff\xff\x7f"), (268435455, 4))

    def test_out_of_range_and_incomplete(self):
        with self.assertRaises(p.MQTTProtocolError):
            p.encode_length(268435456)
        with self.assertRaises(p.MQTTProtocolError):
            p.encode_length(-1)
        self.assertIsNone(p.decode_length(b"\x80\x80"))
        with self.assertRaises(p.MQTTProtocolError):
            p.decode_length(b"\x80\x80\x80\x80\x01")


class Encode(unittest.TestCase):
    def test_connect_full(self):
        b = p.connect("gw", 30, True, "u", "pw", "a/status", b"offline", True, 1)
        payload = (b"\x00\x02gw" + b"\x00\x08a/status" + b"\x00\x07offline" + b"\x00\x01u"
                   + b"\x00\x02pw")
        # flags: user 0x80, password 0x40, will retain 0x20, will QoS1 0x08, will 0x04, clean 0x02
        var = b"\x00\x04MQTT\x04" + bytes((0xEE, 0, 30))
        self.assertEqual(b, b"\x10" + bytes((len(var) + len(payload),)) + var + payload)

    def test_connect_minimal_and_password_needs_user(self):
        b = p.connect("x", 60, False, "", "secret")
        self.assertEqual(b, b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x3c\x00\x01x")
        self.assertTrue(b"secret" not in b)

    def test_publish_qos0_and_qos1(self):
        self.assertEqual(p.publish("a/b", b"hi"), b"\x30\x07\x00\x03a/bhi")
        self.assertEqual(p.publish("a/b", "hi", 1, True, True, 10),
                         b"\x3b\x09\x00\x03a/b\x00\x0ahi")
        h = p.publish_header("t", 200)
        self.assertEqual(h, b"\x30" + p.encode_length(203) + b"\x00\x01t")

    def test_subscribe_puback_fixed(self):
        self.assertEqual(p.subscribe(1, [("a/#", 1), ("b", 0)]),
                         b"\x82\x0c\x00\x01\x00\x03a/#\x01\x00\x01b\x00")
        self.assertEqual(p.puback(0x1234), b"\x40\x02\x12\x34")
        self.assertEqual(p.PINGREQ_PKT, b"\xc0\x00")
        self.assertEqual(p.DISCONNECT_PKT, b"\xe0\x00")

    def test_bad_input_is_refused(self):
        for f in (lambda: p.publish("a/+", b""), lambda: p.publish("", b""),
                  lambda: p.publish("a", b"", 2), lambda: p.publish("a", b"", 1, pid=0),
                  lambda: p.subscribe(0, [("a", 0)]), lambda: p.subscribe(1, []),
                  lambda: p.connect("x", 70000), lambda: p.publish("a\x00b", b"")):
            with self.assertRaises(p.MQTTProtocolError):
                f()


    def test_topic_longer_than_mqtt_strings(self):
        import sys

        if sys.implementation.name == "micropython":
            return  # a 64 KiB string does not fit the ESP32-sized test heap
        with self.assertRaises(p.MQTTProtocolError):
            p.publish("x" * 65536, b"")


class Decode(unittest.TestCase):
    def test_connack(self):
        self.assertEqual(p.parse_connack(b"\x01\x00"), (True, 0))
        self.assertEqual(p.parse_connack(b"\x00\x05"), (False, 5))
        self.assertEqual(p.refused_reason(4), "bad user name or password")
        self.assertEqual(p.refused_reason(9), "return code 9")
        with self.assertRaises(p.MQTTProtocolError):
            p.parse_connack(b"\x00")

    def test_publish_round_trip(self):
        pkt = p.publish("gw/cmd", b'{"mode":"pv"}', 1, True, False, 513)
        n, i = p.decode_length(pkt, 1)
        body = pkt[i:]
        self.assertEqual(len(body), n)
        self.assertEqual(p.parse_publish(pkt[0], body),
                         ("gw/cmd", b'{"mode":"pv"}', 1, 513, True, False))

    def test_publish_malformed(self):
        for first, body in ((0x30, b"\x00"), (0x30, b"\x00\x09ab"), (0x32, b"\x00\x01a\x00"),
                            (0x36, b"\x00\x01a\x00\x01"), (0x30, b"\x00\x02\xff\xfe")):
            with self.assertRaises(p.MQTTProtocolError):
                p.parse_publish(first, body)

    def test_suback_puback(self):
        self.assertEqual(p.parse_suback(b"\x00\x07\x01\x80"), (7, [1, 0x80]))
        self.assertEqual(p.parse_puback(b"\x01\x02"), 258)
        with self.assertRaises(p.MQTTProtocolError):
            p.parse_puback(b"\x01")
        with self.assertRaises(p.MQTTProtocolError):
            p.parse_suback(b"\x00\x01")


class Backoff(unittest.TestCase):
    def test_exponential_with_equal_jitter(self):
        from gateway.mqtt import backoff_ms

        self.assertEqual(backoff_ms(0, 500, 8000, 0), 250)
        self.assertEqual(backoff_ms(0, 500, 8000, 250), 500)
        self.assertEqual(backoff_ms(3, 500, 8000, 0), 2000)
        for fails in (4, 5, 20, 1000):
            for rnd in (0, 1, 4000, 65535):
                d = backoff_ms(fails, 500, 8000, rnd)
                self.assertTrue(4000 <= d <= 8000, (fails, rnd, d))


class Queue(unittest.TestCase):
    def test_post_never_allocates_and_drops_the_oldest(self):
        import micropython
        from gateway.model import Counters
        from gateway.mqtt import SCHEMA, MQTTClient

        cfg = {k: v[0] for k, v in SCHEMA.items()}
        cfg["queue_len"] = 4
        n = Counters()
        from gateway.clock import ManualClock

        c = MQTTClient(cfg, "t", "gw/status", counters=n, clock=ManualClock())
        msgs = ["m%d" % i for i in range(10)]  # built beforehand, as the caller must
        topic = "gw/state"
        micropython.heap_lock()  # what control and safety code may rely on
        try:
            for m in msgs:
                c.post(topic, m)
        finally:
            micropython.heap_unlock()
        self.assertEqual((c.queued(), c.drops, n.mqtt_drops), (4, 6, 6))
        self.assertEqual([c._qp[(c._qh + i) % 4] for i in range(4)], msgs[6:])
