# ATM90E32 driver (gateway.metering.atm90e32) against the simulated IC on its SPI bus
# (gateway.ports.sim_atm90e32), on both runtimes: framing, configuration and its
# verification, readings into the Meter record, status flags, faults, no allocation.
import unittest

import micropython
from gateway import metering as M
from gateway.metering import config
from gateway.metering.atm90e32 import Atm90e32, block_checksum
from gateway.model import Meter
from gateway.ports.sim_analog import Truth
from gateway.ports.sim_atm90e32 import SimAtm90e32

MPY = __import__("sys").implementation.name == "micropython"


def rig(channels=None, atm=None):
    chans = channels or [{"role": "grid", "phase": 0}, {"role": "grid", "phase": 1},
                         {"role": "grid", "phase": 2}]
    cfg = config.validate({"path": "atm90e32", "channels": chans, "atm90e32": atm or {}})
    r = Rig()
    r.t = Truth(3)
    r.peer = SimAtm90e32(r.t)
    r.drv = Atm90e32(r.peer.spi, r.peer.cs, cfg)
    r.m = Meter()
    return r


class Rig:
    """truth, the simulated IC, the driver, the Meter record."""


class Atm(unittest.TestCase):
    def test_init_configures_and_verifies(self):
        r = rig()
        self.assertTrue(r.drv.init())
        self.assertEqual(r.peer.regs[0x00], 1)  # metering enabled
        self.assertEqual(r.peer.regs[0x61], 39470)  # UgainA
        self.assertEqual(r.peer.regs[0x33] & 0x1000, 0)  # 50 Hz
        self.assertEqual(r.peer.regs[0x7F], 0)  # configuration locked again
        self.assertEqual(r.peer.bad_frames, 0)

    def test_readings_fill_the_meter(self):
        r = rig()
        r.t.v_mv = 231000
        r.t.f_millihz = 49980
        r.t.ch_w[:] = [2300, -1500, 0]
        r.t.ch_var[:] = [0, 866, 0]
        r.drv.poll(r.m, 1000)
        r.drv.poll(r.m, 1200)
        self.assertTrue(r.m.valid, "flags %d" % r.m.flags)
        self.assertEqual(r.m.v_mv, 231000)
        self.assertEqual(r.m.f_millihz, 49980)
        self.assertEqual(list(r.m.ph_w), [2300, -1500, 0])
        self.assertEqual(r.m.grid_w, 800)
        self.assertEqual(r.m.ph_ma[0], 9957)
        self.assertEqual(r.drv.ch_pf_pm[1], -866)
        self.assertEqual(r.m.seq, 2)
        self.assertEqual(r.m.t_ms, 1200)

    def test_power_register_pair_decoding(self):
        r = rig()
        r.drv.init()
        for w in (0, 1, -1, 21, -21, 12345, -23456, 180000, -180000):
            raw = round(w / 0.00032) & 0xFFFFFFFF
            r.peer.corrupt(0xB1, raw >> 16)
            r.peer.corrupt(0xC1, raw & 0xFFFF)
            r.peer._seen = [r.t.v_mv, r.t.f_millihz, r.t.v_present, 0, 0, False, 0, 0, False, 0, 0,
                          False]  # keep the peer from recomputing: test the decoder alone
            self.assertEqual(r.drv.power_w(0), w)

    def test_house_channel_on_input_c_and_inverted_ct(self):
        chans = [{"role": "grid", "invert": True}, {"role": "house", "ic_input": 2}]
        r = rig(chans)
        r.t.ch_w[:] = [-3000, 0, 900]
        r.drv.poll(r.m, 0)
        self.assertEqual(r.m.grid_w, 3000)
        self.assertEqual(r.m.house_w, 900)

    def test_voltage_loss_and_frequency_flags(self):
        r = rig()
        r.t.ch_w[0] = 1000
        r.drv.poll(r.m, 0)
        self.assertTrue(r.m.valid)
        r.t.v_present = False
        r.drv.poll(r.m, 200)
        self.assertFalse(r.m.valid)
        self.assertTrue(r.m.flags & M.FLAG_NO_VOLTAGE)
        r.t.v_present = True
        r.t.f_millihz = 72000
        r.drv.poll(r.m, 400)
        self.assertFalse(r.m.valid)
        self.assertTrue(r.m.flags & M.FLAG_FREQ_RANGE)

    def test_overcurrent_is_clipping(self):
        r = rig()
        r.t.ch_w[0] = 16000  # 69.6 A: beyond the IC's current range
        r.drv.poll(r.m, 0)
        self.assertTrue(r.m.flags & M.FLAG_CLIPPED)
        self.assertFalse(r.m.valid)

    def test_reset_ic_is_detected_and_reconfigured(self):
        r = rig()
        r.t.ch_w[0] = 500
        r.drv.poll(r.m, 0)
        r.drv.poll(r.m, 200)
        self.assertTrue(r.m.valid)
        r.peer.power_glitch()  # brown-out: the IC forgets its calibration
        r.drv.poll(r.m, 400)
        self.assertFalse(r.m.valid)
        self.assertTrue(r.m.flags & M.FLAG_IC_FAULT)
        self.assertEqual(r.peer.regs[0x61], 39470)  # re-initialised
        r.drv.poll(r.m, 600)
        r.drv.poll(r.m, 800)
        self.assertTrue(r.m.valid, "flags %d" % r.m.flags)
        self.assertEqual(r.drv.faults, 1)

    def test_corrupted_calibration_is_caught_by_the_sweep(self):
        r = rig()
        r.drv.poll(r.m, 0)
        r.peer.corrupt(0x66, 12345)  # IgainB
        bad = 0
        for k in range(8):  # a full sweep of the configuration block
            r.drv.poll(r.m, 200 * (k + 1))
            bad += 1 if r.m.flags & M.FLAG_IC_FAULT else 0
        self.assertTrue(bad >= 1)
        self.assertEqual(r.peer.regs[0x66], 30000)

    def test_dead_bus_is_a_fault(self):
        r = rig()
        r.peer.dead = True
        r.drv.poll(r.m, 0)
        r.drv.poll(r.m, 200)
        self.assertFalse(r.m.valid)
        self.assertTrue(r.m.flags & M.FLAG_IC_FAULT)

    def test_wrong_calibration_reads_wrong(self):
        r = rig(atm={"ugain": 39470 * 11 // 10})
        r.t.ch_w[0] = 1000
        r.drv.poll(r.m, 0)
        self.assertEqual(r.m.v_mv, 253000)
        self.assertEqual(r.m.grid_w, 1100)

    def test_write_frames_need_the_unlock_and_32_bits(self):
        r = rig()
        r.drv.write(0x61, 1234)  # locked: ignored
        self.assertEqual(r.peer.regs[0x61], 0)
        r.drv.write(0x7F, 0x55AA)
        r.peer.cs(0)
        r.peer.spi.write(bytearray([0x00, 0x61, 0x12]))  # 24 bits: not a frame
        r.peer.cs(1)
        self.assertEqual(r.peer.regs[0x61], 0)
        self.assertEqual(r.peer.bad_frames, 1)
        r.drv.write(0x61, 1234)
        self.assertEqual(r.drv.read(0x61), 1234)
        self.assertEqual(r.drv.read(0x78), 1234)

    def test_block_checksum_rule(self):
        # low byte: sum of bytes mod 256; high byte: XOR of bytes
        self.assertEqual(block_checksum([0x1234, 0xABCD], 2), ((0x12 ^ 0x34 ^ 0xAB ^ 0xCD) << 8)
                         | ((0x12 + 0x34 + 0xAB + 0xCD) & 0xFF))

    def test_config_errors_name_the_key(self):
        try:
            rig(atm={"ugain": 70000})
        except config.ConfigError as e:
            self.assertIn("analog.atm90e32.ugain", str(e))
        else:
            self.fail("accepted ugain 70000")

    @unittest.skipUnless(MPY, "heap_lock proves allocation on MicroPython only")
    def test_poll_allocates_nothing(self):
        r = rig()
        r.t.ch_w[:] = [1200, -300, 40]
        r.drv.poll(r.m, 0)
        r.drv.poll(r.m, 200)
        micropython.heap_lock()
        try:
            for k in range(10):
                r.drv.poll(r.m, 400 + 200 * k)
        finally:
            micropython.heap_unlock()
        self.assertTrue(r.m.valid)
        self.assertEqual(r.m.grid_w, 940)

    @unittest.skipUnless(MPY, "real time: asyncio on the unix port")
    def test_service_polls_the_ic(self):
        import asyncio

        from gateway.clock import Clock
        from gateway.metering import service

        r = rig()
        r.t.ch_w[0] = 700

        async def main():
            task = asyncio.create_task(service.run(r.drv, r.m, r.drv.cfg, Clock()))
            await asyncio.sleep_ms(700)
            task.cancel()

        asyncio.run(main())
        self.assertTrue(r.m.seq >= 3, "%d polls" % r.m.seq)
        self.assertTrue(r.m.valid)
        self.assertEqual(r.m.grid_w, 700)

    def test_sim_board_factory_builds_the_driver_on_a_simulated_ic(self):
        from gateway.ports.sim_analog import frontend

        t = Truth(1)
        t.ch_w[0] = -2500
        fe = frontend(t, {"path": "atm90e32", "channels": [{"role": "grid"}]})
        m = Meter()
        fe.poll(m, 0)
        self.assertTrue(m.valid)
        self.assertEqual(m.grid_w, -2500)
