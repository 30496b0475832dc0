# The price schedule (gateway/tariff.py): strict parsing with the field named, all or
# nothing (a bad schedule keeps the old one), slot lookup on the 2000-epoch clock.
import json
import unittest

from gateway.tariff import EPOCH_2000, SLOTS_MAX, Tariff, TariffError

DAY = EPOCH_2000 + 86400 * 9000  # some day in 2024, unix seconds


def sched(**kw):
    d = {"start": DAY, "interval_min": 60, "import": [200 + i for i in range(24)],
         "export": [80 - 10 * i for i in range(24)]}
    d.update(kw)
    return d


class Parse(unittest.TestCase):
    def test_loads_and_looks_up(self):
        t = Tariff()
        self.assertEqual(t.load_json(json.dumps(sched())), 24)
        s0 = DAY - EPOCH_2000
        self.assertEqual(t.start_s, s0)
        self.assertEqual(t.index(s0 - 1), -1)
        self.assertEqual(t.index(s0), 0)
        self.assertEqual(t.index(s0 + 3599), 0)
        self.assertEqual(t.index(s0 + 5 * 3600 + 1), 5)
        self.assertEqual(t.imp[5], 205)
        self.assertEqual(t.exp[5], 30)
        self.assertEqual(t.index(s0 + 24 * 3600), -1)
        self.assertEqual(t.end_s(), s0 + 86400)
        self.assertEqual(t.seq, 1)

    def test_negative_prices_and_quarter_hours(self):
        t = Tariff()
        t.load(sched(interval_min=15, **{"import": [-20] * 96, "export": [-45] * 96}))
        self.assertEqual(t.n, 96)
        self.assertEqual(t.slot_s, 900)
        self.assertEqual(t.exp[95], -45)

    def _bad(self, obj, field):
        t = Tariff()
        t.load(sched())
        msg = None
        try:
            if isinstance(obj, str):
                t.load_json(obj)
            else:
                t.load(obj)
        except TariffError as e:  # micropython-unittest's context has no .exception
            msg = str(e)
        self.assertIsNotNone(msg, "accepted: %r" % (obj,))
        self.assertIn(field, msg)
        self.assertEqual(t.error, msg)
        # the old schedule is kept whole
        self.assertEqual(t.n, 24)
        self.assertEqual(t.imp[3], 203)
        self.assertEqual(t.seq, 1)

    def test_errors_name_the_field(self):
        self._bad("{not json", "not valid JSON")
        self._bad("[1, 2]", "expected a JSON object")
        self._bad(sched(extra=1), "tariff.extra: unknown key")
        d = sched()
        del d["export"]
        self._bad(d, "tariff.export: missing")
        self._bad(sched(start=12), "tariff.start")
        self._bad(sched(start="today"), "tariff.start: expected an integer")
        self._bad(sched(interval_min=20), "tariff.interval_min")
        self._bad(sched(**{"import": []}), "tariff.import: expected a list")
        self._bad(sched(**{"import": [1] * (SLOTS_MAX + 1)}), "tariff.import")
        imp = [200] * 24
        imp[7] = 0.25  # EUR, not milli-EUR
        self._bad(sched(**{"import": imp}), "tariff.import[7]: expected an integer")
        exp = [0] * 24
        exp[3] = 99999
        self._bad(sched(export=exp), "tariff.export[3]: 99999 outside")
        self._bad(sched(export=[0] * 23), "tariff.export: 23 prices, import has 24")

    def test_bytes_payload_and_size_cap(self):
        t = Tariff()
        t.load_json(json.dumps(sched()).encode())
        self.assertEqual(t.n, 24)
        with self.assertRaises(TariffError):
            t.load_json("x" * 5000)
        self.assertEqual(t.n, 24)


if __name__ == "__main__":
    unittest.main()
