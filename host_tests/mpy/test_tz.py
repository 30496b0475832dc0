# POSIX TZ strings: parsing, DST instants in UTC, both hemispheres, bad input.
import unittest

from gateway.tz import TZ, TZError, civil_from_days, days_from_civil, year_of_day

CET = "CET-1CEST,M3.5.0,M10.5.0/3"
UK = "GMT0BST,M3.5.0/1,M10.5.0"
SYD = "AEST-10AEDT,M10.1.0,M4.1.0/3"


def utc(y, m, d, hh=0, mm=0):
    return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60


class Calendar(unittest.TestCase):
    def test_days_round_trip(self):
        for z in range(-800, 13000, 13):
            y, m, d = civil_from_days(z)
            self.assertEqual(days_from_civil(y, m, d), z)
            self.assertEqual(year_of_day(z), y)
        self.assertEqual(days_from_civil(2000, 3, 1), 60)  # 2000 is a leap year


class Rules(unittest.TestCase):
    def test_central_europe_2026(self):
        z = TZ(CET)
        self.assertEqual(z.transitions(2026), (utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)))
        self.assertEqual(z.offset_s(utc(2026, 3, 29, 1) - 1), 3600)
        self.assertEqual(z.offset_s(utc(2026, 3, 29, 1)), 7200)
        self.assertEqual(z.offset_s(utc(2026, 10, 25, 1) - 1), 7200)
        self.assertEqual(z.offset_s(utc(2026, 10, 25, 1)), 3600)
        self.assertEqual(z.name(utc(2026, 7, 1)), "CEST")

    def test_uk_switches_at_one_utc(self):
        z = TZ(UK)
        self.assertEqual(z.transitions(2027), (utc(2027, 3, 28, 1), utc(2027, 10, 31, 1)))
        self.assertEqual(z.local(utc(2027, 6, 1, 12)), utc(2027, 6, 1, 13))

    def test_southern_hemisphere_dst_spans_new_year(self):
        z = TZ(SYD)
        self.assertTrue(z.is_dst(utc(2027, 1, 10)))
        self.assertFalse(z.is_dst(utc(2027, 7, 10)))
        on, off = z.transitions(2027)
        self.assertEqual(off, utc(2027, 4, 3, 16))  # 03:00 AEDT on Sunday 4 April
        self.assertEqual(on, utc(2027, 10, 2, 16))  # 02:00 AEST on Sunday 3 October

    def test_fixed_zones_and_forms(self):
        self.assertEqual(TZ("UTC0").offset_s(utc(2026, 6, 1)), 0)
        self.assertEqual(TZ("<+0530>-5:30").offset_s(0), 19800)
        self.assertEqual(TZ("EST5EDT,M3.2.0,M11.1.0").offset_s(utc(2026, 7, 1)), -4 * 3600)
        z = TZ("XXX-1YYY,J60,300/1")  # Julian day 60 = March 1 even in a leap year
        self.assertEqual(z.transitions(2028)[0], utc(2028, 3, 1, 1))
        z = TZ("XXX-1YYY,59,300/1")  # zero-based day 59 = Feb 29 in a leap year
        self.assertEqual(z.transitions(2028)[0], utc(2028, 2, 29, 1))

    def test_bad_strings_say_what_is_wrong(self):
        for bad, what in (("", "POSIX TZ"), ("C-1", "3 or more"), ("CET-1CEST", "rules"),
                          ("CET-1CEST,M13.5.0,M10.5.0", "outside"), ("CET-1CEST,M3.5.0", "end"),
                          ("CET-1CEST,M3.5.0,M10.5.0/3x", "unexpected"), ("CET-x", "number")):
            try:
                TZ(bad)
                msg = "accepted"
            except TZError as e:
                msg = str(e)
            self.assertIn(what, msg)

    def test_offset_lookup_allocates_nothing(self):
        import micropython

        z = TZ(CET)
        t = utc(2026, 6, 1)
        z.offset_s(t)
        micropython.heap_lock()
        try:
            n = 0
            for i in range(200):
                n += z.offset_s(t + i * 3600)
        finally:
            micropython.heap_unlock()
        self.assertEqual(n, 200 * 7200)
