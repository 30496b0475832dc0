# The ESP32 analog front end (gateway.ports.esp32_analog) exercised on the unix port with a
# stand-in machine module (fake_esp32/machine.py: ADC values from a 50 Hz waveform in
# virtual time), driving the real metering core through the same interface as the simulator.
import sys

import unittest

MPY = sys.implementation.name == "micropython"


@unittest.skipUnless(MPY, "needs time.ticks_us (MicroPython)")
class Esp32FrontEnd(unittest.TestCase):
    def setUp(self):
        d = __file__.rpartition("/")[0] + "/fake_esp32"
        if d not in sys.path:
            sys.path.insert(0, d)
        import machine

        from gateway.ports import esp32_analog

        esp32_analog.time = machine.FakeTime  # virtual time: see fake_esp32/machine.py

    def analog(self):
        return {"v_pin": 36, "channels": [{"role": "grid", "pin": 39},
                                          {"role": "house", "pin": 34}]}

    def test_capture_fills_coherent_chunks(self):
        from gateway.metering.adc import AdcMeter
        from gateway.ports.esp32_analog import Esp32Analog

        fe = Esp32Analog(self.analog())
        eng = AdcMeter(fe.cfg)
        n = fe.capture(eng.bufs, 96, 200)  # a whole cycle and then some
        self.assertEqual(n, 96)
        self.assertTrue(195000 <= fe.dt_ns <= 400000, "dt %d ns" % fe.dt_ns)
        self.assertTrue(0 < fe.skew_ns < fe.dt_ns)
        v = eng.bufs[0]
        self.assertTrue(max(v[:96]) > 24000 and min(v[:96]) < 9000)  # 0.1 mV units

    def test_windows_through_the_core(self):
        from gateway.metering import service
        from gateway.metering.adc import AdcMeter
        from gateway.model import Meter
        from gateway.ports.esp32_analog import Esp32Analog

        fe = Esp32Analog(self.analog())
        eng = AdcMeter(fe.cfg)
        m = Meter()

        def clock_ms():
            return fe.now_us() // 1000

        import machine

        fe.idle_us = machine.FakeTime.idle_us  # the sleeps of the service loop
        for _ in range(3):
            service.window(eng, fe, m, clock_ms)
        # 0.8 V peak at the pin * 406.4 V/V / sqrt(2) = 229.9 V; CT 0.6 V peak * 166.7 A/V
        # / sqrt(2) = 70.7 A in phase: 16.25 kW; house 0.3 V peak at PF 0.5: 4.06 kW.
        self.assertTrue(m.valid, "flags %d" % m.flags)
        self.assertTrue(abs(m.v_mv - 229883) < 2300, "%d mV" % m.v_mv)
        self.assertTrue(abs(m.grid_w - 16253) < 330, "%d W" % m.grid_w)
        self.assertTrue(abs(m.house_w - 4063) < 200, "%d W" % m.house_w)
        self.assertTrue(abs(m.f_millihz - 50000) < 100, "%d mHz" % m.f_millihz)

    def test_rejects_a_non_adc1_pin(self):
        from gateway.ports.esp32_analog import Esp32Analog

        bad = {"v_pin": 4, "channels": [{"pin": 39}]}
        self.assertRaises(ValueError, Esp32Analog, bad)

    def test_atm90e32_on_spi_mode_3(self):
        from gateway.ports.esp32_analog import atm90e32

        ic = atm90e32({"path": "atm90e32", "channels": [{"role": "grid"}],
                       "atm90e32": {"cs": 5}})
        self.assertEqual(ic._spi.args["polarity"], 1)
        self.assertEqual(ic._spi.args["phase"], 1)

    def test_frontend_factory_follows_the_path(self):
        from gateway.metering.atm90e32 import Atm90e32
        from gateway.ports.esp32_analog import Esp32Analog, frontend

        self.assertIsInstance(frontend(self.analog()), Esp32Analog)
        an = {"path": "atm90e32", "channels": [{"role": "grid"}]}
        self.assertIsInstance(frontend(an), Atm90e32)
