# Network supervision through the port interface. No Wi-Fi exists on the host, so a scripted
# link object stands in for network.WLAN (ports/esp32_net.py implements the same methods).
import unittest

from gateway.clock import ManualClock
from gateway.netmgr import S_DOWN, S_JOINING, S_UP, NetManager


class ScriptedLink:
    """status() answers from a script: a list of (until_call_n, status)."""

    def __init__(self):
        self.mode = "connecting"
        self.connects = 0
        self.disconnects = 0
        self.started = 0
        self.join_after = 3  # polls until "up" after a connect
        self.fail_next = 0  # the next n joins fail with wrong_password
        self._polls = 0

    def start(self, cfg):
        self.started += 1

    def connect(self, ssid, pw):
        self.connects += 1
        self._polls = 0
        self.mode = "wrong_password" if self.fail_next else "connecting"
        if self.fail_next:
            self.fail_next -= 1

    def status(self):
        self._polls += 1
        if self.mode == "connecting" and self._polls >= self.join_after:
            self.mode = "up"
        return self.mode

    def disconnect(self):
        self.disconnects += 1

    def ip(self):
        return "192.168.1.50"

    def rssi(self):
        return -61


def cfg(**kw):
    c = {"mode": "wifi", "ssid": "home", "password": "secret123", "hostname": "",
         "connect_s": 20, "backoff_min_s": 2, "backoff_max_s": 60}
    c.update(kw)
    return c


def run(nm, clock, ms, step=100):
    for _ in range(ms // step):
        nm.step(clock.advance(step))


class Reconnect(unittest.TestCase):
    def test_joins_without_waiting_and_reports_signal(self):
        clock = ManualClock(1000)
        link = ScriptedLink()
        nm = NetManager(cfg(), link, clock)
        self.assertEqual(nm.step(clock.now_ms()), S_JOINING)  # returns at once
        run(nm, clock, 500)
        self.assertEqual((nm.state, nm.up, nm.gen), (S_UP, True, 1))
        r = nm.state_record()
        self.assertEqual((r["state"], r["ip"], r["rssi"]), ("up", "192.168.1.50", -61))

    def test_reconnects_forever_with_doubling_backoff(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        link.fail_next = 6
        nm = NetManager(cfg(), link, clock)
        t_joins = []
        last = 0
        for _ in range(3000):  # 300 s
            nm.step(clock.advance(100))
            if link.connects != last:
                last = link.connects
                t_joins.append(clock.now_ms())
        gaps = [(b - a) // 1000 for a, b in zip(t_joins, t_joins[1:])]
        self.assertEqual(gaps[:6], [2, 4, 8, 16, 32, 60])  # capped at backoff_max_s
        self.assertTrue(nm.up)
        self.assertEqual(nm.backoff_s, 2)  # reset after success

    def test_link_loss_is_noticed_and_bumps_generation(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        nm = NetManager(cfg(), link, clock)
        run(nm, clock, 1000)
        self.assertEqual(nm.gen, 1)
        link.mode = "fail"  # access point gone
        run(nm, clock, 1500)
        self.assertFalse(nm.up)
        self.assertEqual(nm.losses, 1)
        run(nm, clock, 5000)
        self.assertTrue(nm.up)
        self.assertEqual(nm.gen, 2)

    def test_join_timeout(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        link.join_after = 10 ** 9  # never
        nm = NetManager(cfg(connect_s=5), link, clock)
        run(nm, clock, 5200)
        self.assertEqual(nm.state, S_DOWN)
        self.assertIn("within 5 s", nm.last_error)

    def test_not_provisioned_does_nothing(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        nm = NetManager(cfg(mode="wifi", ssid=""), link, clock)
        run(nm, clock, 1000)
        self.assertEqual((link.started, link.connects, nm.state), (0, 0, S_DOWN))

    def test_new_settings_reconnect_at_once(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        c = cfg()
        nm = NetManager(c, link, clock)
        run(nm, clock, 1000)
        c["ssid"] = "other"
        run(nm, clock, 1000)
        self.assertEqual(link.connects, 2)
        self.assertTrue(nm.up)

    def test_names_resolved_once_per_connect_and_never_while_busy(self):
        clock = ManualClock(0)
        link = ScriptedLink()
        busy = [True]
        nm = NetManager(cfg(), link, clock, busy=lambda: busy[0])
        nm.want("127.0.0.1", 123)
        run(nm, clock, 1000)
        self.assertEqual(nm.resolve_count, 0)  # export permitted: no blocking lookups
        busy[0] = False
        run(nm, clock, 1000)
        self.assertEqual(nm.resolve_count, 1)
        self.assertIsNotNone(nm.resolve("127.0.0.1", 123))
        run(nm, clock, 5000)
        self.assertEqual(nm.resolve_count, 1)
