# SNTP codec and wall clock: reply checks, timestamp arithmetic in small ints, the
# clock across the ticks wrap, nothing before the first sync.
import unittest

from gateway.clock import TICKS_MAX
from gateway.sntp import SntpError, WallClock, _ts, check_reply


def ntp_bytes(s2000, ms):
    ntp = s2000 + 3155673600
    frac = (ms << 32) // 1000 + 1
    return bytes(((ntp >> 24) & 255, (ntp >> 16) & 255, (ntp >> 8) & 255, ntp & 255,
                  (frac >> 24) & 255, (frac >> 16) & 255, (frac >> 8) & 255, frac & 255))


def reply(req, mode=4, stratum=1, li=0, tx=(850000000, 250)):
    r = bytearray(48)
    r[0] = (li << 6) | (4 << 3) | mode
    r[1] = stratum
    r[24:32] = req[40:48]
    r[32:40] = ntp_bytes(*tx)
    r[40:48] = ntp_bytes(*tx)
    return r


class Codec(unittest.TestCase):
    def test_timestamp_to_seconds_since_2000(self):
        self.assertEqual(_ts(ntp_bytes(850000000, 250), 0), (850000000, 250))
        self.assertEqual(_ts(ntp_bytes(0, 999), 0), (0, 999))

    def test_reply_checks(self):
        req = bytearray(48)
        req[40:48] = b"\x01\x02\x03\x04\x05\x06\x07\x08"
        check_reply(req, reply(req), 48)
        for bad, what in ((reply(req, mode=3), "mode"), (reply(req, stratum=0), "stratum"),
                          (reply(req, li=3), "LI 3")):
            try:
                check_reply(req, bad, 48)
                msg = "accepted"
            except SntpError as e:
                msg = str(e)
            self.assertIn(what, msg)
        other = bytearray(req)
        other[47] ^= 1
        with self.assertRaises(SntpError):
            check_reply(other, reply(req), 48)  # not the answer to our request
        with self.assertRaises(SntpError):
            check_reply(req, reply(req), 40)


class Wall(unittest.TestCase):
    def test_no_time_before_sync(self):
        w = WallClock()
        self.assertEqual(w.now_s(12345), -1)

    def test_runs_across_the_ticks_wrap_and_for_weeks(self):
        w = WallClock()
        t0 = TICKS_MAX - 5000
        w.set(t0, 850000000, 500)
        self.assertEqual(w.now_s((t0 + 10500) & TICKS_MAX), 850000011)
        t = t0
        for day in range(1, 30):  # 29 days without a re-sync: the base moves along
            t = (t + 86400000) & TICKS_MAX
            self.assertEqual(w.now_s(t), 850000000 + day * 86400)
        self.assertEqual(w.offset_ms(t, 850000000 + 29 * 86400, 520), 20)
