# The metering core's parts on both runtimes: fixed-point helpers, the viper and plain
# kernels (bit for bit), the sample synthesis, configuration errors, the ADC
# linearisation table, and the async service in real time on the unix port.
# mpytest: heap=128k
# (the service test holds two engines and asyncio beside the metering bytecode, which sits
# in the heap on this port; the frozen ESP32-like tier runs it at 110 KB)
import array
import gc
import sys

import unittest
from gateway.metering import fixed as fx
from gateway.metering import kernel
from gateway.metering.config import ConfigError, validate
from gateway.ports import sim_synth
from metering_util import MPY, Rig


def lcg_buf(n, seed, lo, hi):
    b = array.array("H", bytes(2 * n))
    s = seed
    for i in range(n):
        s = (s * 22695477 + 1) & 0x7FFFFFFF
        b[i] = lo + (s >> 8) % (hi - lo)
    return b


class Fixed(unittest.TestCase):
    def test_isqrt(self):
        for n in (0, 1, 2, 3, 4, 15, 16, 17, 99999, 123456789, (1 << 30) - 1):
            r = fx.isqrt(n)
            self.assertTrue(r * r <= n < (r + 1) * (r + 1), "isqrt(%d) = %d" % (n, r))

    def test_frequency_from_period(self):
        self.assertEqual(fx.mhz_from_period_ns(20000000), 50000)
        self.assertEqual(fx.mhz_from_period_ns(20202020), 49500)
        self.assertEqual(fx.mhz_from_period_ns(16666667), 60000)

    def test_gain_multiply(self):
        m, e = fx.gain(40.64)  # 15-bit mantissa: relative error below 2e-5
        self.assertTrue(abs(fx.fmul(100000, m, e) - 4064000) <= 80)
        self.assertEqual(fx.fmul(-100000, m, e), -fx.fmul(100000, m, e))
        m, e = fx.gain(6.77e-4)
        self.assertTrue(abs(fx.fmul(1000000000, m, e) - 677000) <= 70)
        self.assertTrue(abs(fx.fmul3(90000, 80000, m, e) - 4874400) <= 980)

    def test_mean_of_a_weighted_sum(self):
        # 40.5 samples (Q8 weight 10368) summing to 81000 -> mean 2000
        self.assertEqual(fx.mean_q(81000, 0, 10368), 2000)
        self.assertEqual(fx.mean_q(-81000, 0, 10368), -2000)
        self.assertEqual(fx.mean_q(81000, 4, 10368), 32000)


class Kernels(unittest.TestCase):
    def test_plain_kernels_on_known_data(self):
        acc, zc, rng, _ = kernel.PLAIN
        v = array.array("H", [1000, 900, 1100, 1300, 1200])
        out = array.array("i", [0, 0, 0])
        ctl = array.array("i", [256 + 128, 0, 0])  # voltage half a sample later
        acc(v, v, 1, 3, 1000, 1000, ctl, out)
        self.assertEqual(list(out), [0, 10000 + 10000, (0 * -100) + (200 * 100)])
        zo = array.array("i", [0, 0])
        b = zc(v, 1, 5, 1000, 50, zo)
        self.assertEqual(b, 2)  # armed below -50 at index 1, crossing between 1 and 2
        self.assertEqual(list(zo), [1, 128])
        rng(v, 5, zo)
        self.assertEqual(list(zo), [900, 1300])

    @unittest.skipUnless(MPY, "viper exists on MicroPython only")
    def test_viper_equals_plain_bit_for_bit(self):
        self.assertTrue(kernel.VIPER is not None)
        n = 200
        v = lcg_buf(n, 1, 2000, 30000)
        c = lcg_buf(n, 7, 0, 32767)
        o1 = array.array("i", [0, 0, 0])
        o2 = array.array("i", [0, 0, 0])
        for k, syy, sxy in ((0, 9, 9), (256, 9, 9), (-256, 9, 9), (77, 10, 11), (-5, 12, 8)):
            ctl = array.array("i", [256 + k, syy, sxy])
            kernel.PLAIN[0](v, c, 1, n - 1, 16000, 16500, ctl, o1)
            kernel.VIPER[0](v, c, 1, n - 1, 16000, 16500, ctl, o2)
            self.assertEqual(list(o1), list(o2), "acc k=%d" % k)
        for hyst in (0, 100, 3000):
            r1 = kernel.PLAIN[1](v, 2, n - 1, 16000, hyst, o1)
            r2 = kernel.VIPER[1](v, 2, n - 1, 16000, hyst, o2)
            self.assertEqual((r1, o1[0], o1[1]), (r2, o2[0], o2[1]))
        kernel.PLAIN[2](c, n, o1)
        kernel.VIPER[2](c, n, o2)
        self.assertEqual(list(o1[:2]), list(o2[:2]))
        tab = array.array("H", [i * 1000 + (i * i) % 7 for i in range(33)])
        a = lcg_buf(n, 3, 0, 4096)
        b = array.array("H", a)
        kernel.PLAIN[3](a, n, tab)
        kernel.VIPER[3](b, n, tab)
        self.assertEqual(list(a), list(b))

    @unittest.skipIf(MPY, "CPython: the viper decorator is the identity")
    def test_cpython_falls_back_to_plain(self):
        self.assertIsNone(kernel.VIPER)
        self.assertIs(kernel.select("auto"), kernel.PLAIN)
        self.assertRaises(ValueError, kernel.select, "viper")

    @unittest.skipUnless(MPY and sim_synth.VIPER is not None,
                         "the viper synth runs on 64-bit MicroPython only")
    def test_synth_viper_equals_plain(self):
        par = [1650000, 800000, 240000, 160000, 123456789, 987654321, 55555, 2000, 760, 0,
               4078]
        a = array.array("H", bytes(400))
        b = array.array("H", bytes(400))
        s1 = array.array("i", [99])
        s2 = array.array("i", [99])
        sim_synth.PLAIN(a, 200, 12345678901, 3517437952, par, sim_synth.TAB, s1)
        sim_synth.VIPER(b, 200, 12345678901, 3517437952, par, sim_synth.TAB, s2)
        self.assertEqual(list(a), list(b))
        self.assertEqual(s1[0], s2[0])


class Config(unittest.TestCase):
    def test_defaults(self):
        cfg = validate({})
        self.assertEqual(cfg["cycles"], 10)
        self.assertEqual(len(cfg["channels"]), 1)
        self.assertEqual(cfg["channels"][0]["role"], "grid")

    def test_errors_name_the_key(self):
        for bad, key in (({"cycles": 1}, "analog.cycles"),
                         ({"bogus": 1}, "analog.bogus"),
                         ({"mode": "fast"}, "analog.mode"),
                         ({"channels": [{"role": "grid"}, {"ma_per_v": 0}]},
                          "analog.channels[1].ma_per_v"),
                         ({"channels": [{"invert": 1}]}, "analog.channels[0].invert"),
                         ({"mode": "raw"}, "analog.lin"),
                         ({"mode": "raw", "lin": [[0, 0], [0, 5]]}, "analog.lin[1]"),
                         ({"clip_lo_uv": 3100000, "clip_hi_uv": 3000000}, "analog.clip_lo")):
            try:
                validate(bad)
            except ConfigError as e:
                self.assertIn(key, str(e))
            else:
                self.fail("accepted %r" % (bad,))

    def test_buffer_too_short_for_a_half_cycle(self):
        from gateway.metering.adc import AdcMeter

        self.assertRaises(ConfigError, AdcMeter, validate({"buf_n": 24}))

    def test_linearisation_table(self):
        # Two slopes (0.78 mV/code up to 2048, then 0.78 mV/code * 2048/2047): the table maps
        # codes to 0.1 mV, interpolating between points every 128 codes.
        cfg = validate({"mode": "raw", "lin": [[0, 0], [2048, 1600000], [4095, 3200000]]})
        tab = array.array("H", cfg["lin"])
        self.assertEqual(len(tab), 33)
        b = array.array("H", [0, 1024, 2048, 3072, 4095])
        kernel.select()[3](b, 5, tab)
        self.assertEqual(list(b), [0, 8000, 16000, 24003, 31999])


class Service(unittest.TestCase):
    @unittest.skipUnless(MPY, "real time: the unix port's ticks and asyncio")
    def test_async_service_fills_the_meter_in_real_time(self):
        import asyncio

        from gateway.clock import Clock
        from gateway.metering import service
        from gateway.model import Meter
        from gateway.ports.sim_analog import SimAnalog

        gc.collect()  # the earlier tests' rigs: compact before the 1.5 KB capture buffers
        rig = Rig()
        rig.truth.ch_w[0] = -1500
        fe = SimAnalog(rig.truth, rig.cfg)  # real time: captures hold like the ESP32 loop
        meter = Meter()
        lag = [0]

        async def ticker():  # another task: how long does the loop stay away?
            t = Clock().now_ms()
            while True:
                await asyncio.sleep_ms(1)
                now = Clock().now_ms()
                lag[0] = max(lag[0], now - t)
                t = now

        async def main():
            tk = asyncio.create_task(ticker())
            task = asyncio.create_task(service.run(fe, meter, rig.cfg, Clock()))
            await asyncio.sleep_ms(1300)
            task.cancel()
            tk.cancel()

        asyncio.run(main())
        self.assertTrue(meter.seq >= 3, "%d windows in 1.3 s" % meter.seq)
        self.assertTrue(meter.valid, "flags %d" % meter.flags)
        self.assertTrue(abs(meter.grid_w + 1500) <= 20, "%d W" % meter.grid_w)
        # The loop is held for one capture chunk at most (a half-cycle + margins).
        self.assertTrue(lag[0] <= 40, "event loop held %d ms" % lag[0])
        sys.stdout.write("(service: %d windows, loop held <= %d ms) " % (meter.seq, lag[0]))
