# The bus master with the reference charger driver on a virtual-time RS-485 line (both runtimes):
# scheduling, serial-line timing, health, setpoint writer, watchdog refresh, stop, no allocation.
# mpytest: heap=128k
# (on this port the bus, link, codec, drivers, records and test fakes load ~60 KB of bytecode
# into the heap; frozen on a board, and on the ESP32-like tier, it all stays in flash)
import unittest

from fakeline import FakeUart, RefChargerSlave, VClock, run
from gateway.clock import TICKS_MAX

# The firmware first: compiling it from source needs the most contiguous free heap.
from gateway.devices import charger
from gateway.modbus import rtu
from gateway.modbus.bus import STOP_CONFIRMED, STOP_NONE, STOP_PENDING, Bus
from gateway.modbus.settings import ConfigError, settings
from gateway.model import Charger, Setpoints


class Rig:
    def __init__(self, clock, slave, uart, bus, drv, rec, sp):
        self.clock = clock
        self.slave = slave
        self.uart = uart
        self.bus = bus
        self.drv = drv
        self.rec = rec
        self.sp = sp


def make(baud=9600, start_us=0, bus_cfg=None, **ccfg):
    clock = VClock(start_us)
    slave = RefChargerSlave(1)
    uart = FakeUart(clock, slave, baud=baud)
    bcfg = {"timeout_ms": 100}
    bcfg.update(bus_cfg or {})
    bus = Bus(uart, bcfg)
    rec = Charger()
    sp = Setpoints()
    drv = bus.add(charger.RefCharger(settings(charger.SCHEMA, ccfg, "charger"), rec, sp))
    return Rig(clock, slave, uart, bus, drv, rec, sp)


class Polling(unittest.TestCase):
    def test_record_filled_and_online(self):
        r = make()
        run(r.bus, r.clock, 1500)
        self.assertTrue(r.rec.online)
        self.assertTrue(r.rec.plugged)
        self.assertEqual(r.rec.soc_pct, 55)
        self.assertEqual(r.rec.min_w, 150)
        self.assertEqual(r.rec.max_discharge_w, 10000)
        self.assertTrue(r.drv.map_ok)
        self.assertTrue(r.drv.health.ok > 5)
        self.assertEqual(r.drv.health.timeouts, 0)

    def test_frames_keep_the_t35_gap(self):
        r = make(baud=19200, poll_ms=100, slow_poll_ms=100)
        run(r.bus, r.clock, 2000)
        t35 = r.bus.link.t35_us
        self.assertTrue(2005 <= t35 <= 2006)  # 3.5 x 11 bits at 19200 baud (serial line 2.5.1.1)
        n = min(r.uart.writes, 64)
        self.assertTrue(n > 10)
        for k in range(n):
            if r.uart.rx_end_us[k]:
                self.assertTrue(r.uart.write_us[k] - r.uart.rx_end_us[k] >= t35)

    def test_fast_timing_above_19200(self):
        r = make(baud=38400)
        self.assertEqual(r.bus.link.t35_us, 1750)


class Writer(unittest.TestCase):
    def test_starts_idle_and_programs_the_watchdog(self):
        r = make(watchdog_s=12)
        r.slave.hr[0] = 3000  # left over from before the gateway rebooted
        r.slave.hr[1] = 1
        run(r.bus, r.clock, 1500)
        self.assertEqual(r.slave.hr[2], 12)
        self.assertEqual(r.slave.hr[0], 0)
        self.assertEqual(r.slave.hr[1], 0)
        self.assertFalse(r.drv.need_init)

    def test_writes_on_change_and_heartbeat_at_a_third_of_the_timeout(self):
        r = make(watchdog_s=6)
        run(r.bus, r.clock, 1500)
        r.sp.ev_w = 2500
        r.sp.ev_session = True
        run(r.bus, r.clock, 1000)
        self.assertEqual(r.slave.hr[0], 2500)
        self.assertEqual(r.slave.hr[1], 1)
        self.assertEqual(r.rec.power_w, 2500)
        writes = r.slave.sp_writes
        hb = r.slave.hb_writes
        run(r.bus, r.clock, 12000)
        self.assertEqual(r.slave.sp_writes, writes)  # unchanged setpoint: not written again
        self.assertTrue(5 <= r.slave.hb_writes - hb <= 7, "heartbeat every 2 s for 12 s")
        self.assertEqual(r.slave.ir[1] & 4, 0, "the charger's watchdog never expired")

    def test_setpoint_clamped_to_limits(self):
        r = make(max_discharge_w=4000)
        run(r.bus, r.clock, 1500)
        r.sp.ev_w = -9000
        r.sp.ev_session = True
        run(r.bus, r.clock, 1000)
        self.assertEqual(rtu_s16(r.slave.hr[0]), -4000)

    def test_reboot_reprograms_the_device(self):
        r = make(watchdog_s=20)
        r.sp.ev_w = 1000
        r.sp.ev_session = True
        run(r.bus, r.clock, 2000)
        r.slave.reboot()
        self.assertEqual(r.slave.hr[2], 30)
        run(r.bus, r.clock, 2000)
        self.assertEqual(r.drv.reboots, 1)
        self.assertEqual(r.slave.hr[2], 20)
        self.assertEqual(r.slave.hr[0], 1000)

    def test_unknown_device_gets_no_writes(self):
        r = make()
        r.slave.ir[10] = 0x1234
        r.sp.ev_w = 1000
        run(r.bus, r.clock, 2000)
        self.assertFalse(r.drv.map_ok)
        self.assertEqual(r.slave.writes, 0)


def rtu_s16(v):
    return v - 0x10000 if v & 0x8000 else v


class Health(unittest.TestCase):
    def test_silent_device_offline_within_max_age(self):
        r = make(max_age_ms=1500)
        run(r.bus, r.clock, 1500)
        self.assertTrue(r.rec.online)
        r.slave.silent = True
        t0 = r.clock.now_ms()
        while r.rec.online:
            run(r.bus, r.clock, 10)
        self.assertTrue(r.clock.now_ms() - t0 <= 1500 + 20)
        self.assertTrue(r.drv.health.timeouts >= 1)
        # a silent device costs the r.bus its timeout, nothing more
        self.assertTrue(r.bus.timeout_cost_us_max <= 100000 + 20000)

    def test_frozen_device_is_stale(self):
        r = make(max_age_ms=2000)
        run(r.bus, r.clock, 1500)
        r.slave.frozen = True
        run(r.bus, r.clock, 3500)
        self.assertTrue(r.drv.stale)
        self.assertFalse(r.rec.online)
        run(r.bus, r.clock, 6000)
        self.assertFalse(r.rec.online, "a frozen device stays offline")
        r.slave.frozen = False  # it recovers: the offline probe reads its alive counter
        run(r.bus, r.clock, 12000)
        self.assertFalse(r.drv.stale)
        self.assertTrue(r.rec.online)

    def test_frozen_device_stays_stale_across_the_wrap(self):
        # Issue 15 item 5: the alive counter's age saturates; ticks_diff alone reads it as the
        # future from day 6.2 and as fresh again from day 12.4. Two weeks in one-hour hops
        # (the bus works 50 ms in each), the ms tick wrapping on day 1.
        r = make(start_us=(TICKS_MAX - 86400000) * 1000, max_age_ms=2000)
        run(r.bus, r.clock, 1500)
        self.assertTrue(r.rec.online)
        r.slave.frozen = True
        run(r.bus, r.clock, 3500)
        self.assertTrue(r.drv.stale)
        for hour in range(14 * 24):
            r.clock.us += 3600 * 1000000
            run(r.bus, r.clock, 50)
            self.assertTrue(r.drv.stale, "fresh again after %d h" % hour)
            self.assertFalse(r.rec.online, "online again after %d h" % hour)
        r.slave.frozen = False  # it recovers: the counter moves again
        run(r.bus, r.clock, 12000)
        self.assertTrue(r.rec.online)

    def test_error_kinds_are_counted(self):
        r = make(bus_cfg={"offline_after": 50})
        run(r.bus, r.clock, 1000)
        r.slave.corrupt = True
        run(r.bus, r.clock, 600)
        r.slave.corrupt = False
        r.slave.wrong_unit = 9
        run(r.bus, r.clock, 600)
        r.slave.wrong_unit = 0
        r.slave.exception = rtu.DEVICE_FAILURE
        run(r.bus, r.clock, 600)
        r.slave.exception = 0
        h = r.drv.health
        self.assertTrue(h.crc > 0)
        self.assertTrue(h.unexpected > 0)
        self.assertTrue(h.exceptions > 0)
        self.assertEqual(h.last_exception, rtu.DEVICE_FAILURE)

    def test_resync_after_garbage(self):
        r = make()
        r.slave.garbage = 5
        run(r.bus, r.clock, 1500)
        self.assertTrue(r.rec.online)
        self.assertTrue(r.bus.link.resyncs > 0)
        self.assertEqual(r.drv.health.crc + r.drv.health.malformed, 0)


class Stop(unittest.TestCase):
    def test_stop_preempts_polling_and_reads_back(self):
        r = make(poll_ms=100, slow_poll_ms=100)
        r.sp.ev_w = -3000
        r.sp.ev_session = True
        run(r.bus, r.clock, 1500)
        self.assertEqual(rtu_s16(r.slave.hr[0]), -3000)
        worst = 0
        for k in range(20):
            run(r.bus, r.clock, 37 + k * 3)  # land anywhere inside a poll transaction
            t0 = r.clock.now_ms()
            r.bus.submit_stop(t0)
            self.assertEqual(r.bus.stop_state, STOP_PENDING)
            while not r.drv.stop_acked:
                run(r.bus, r.clock, 1)
            worst = max(worst, r.drv.stop_ack_ms - t0)
            while r.bus.stop_state != STOP_CONFIRMED:
                run(r.bus, r.clock, 1)
            self.assertEqual(r.slave.hr[0], 0)
            self.assertEqual(r.slave.ir[3], 0)
            run(r.bus, r.clock, 300)
            self.assertEqual(r.slave.hr[0], 0, "the hold keeps the charger at 0 W")
            r.bus.release_stop()
            run(r.bus, r.clock, 300)
            self.assertEqual(rtu_s16(r.slave.hr[0]), -3000)
        # one poll in flight (<= 6 registers) + t3.5 + the stop write, at 9600 baud
        self.assertTrue(worst <= 60, f"stop acknowledged after {worst} ms")
        st = r.bus.stats()  # what the console and telemetry show
        self.assertEqual(st["stops"], 20)
        self.assertEqual(st["transactions"], r.bus.transactions)
        self.assertTrue(st["transactions"] > 100 and st["errors"] == 0, st)
        self.assertEqual(st["stop_state"], STOP_NONE)


class StopConfirmedByPower(unittest.TestCase):
    """Issue 15 item 4: the charger's stop is confirmed by what it does (its measured power),
    not by reading back the setpoint that was just written."""

    def test_not_confirmed_while_power_still_flows(self):
        r = make(poll_ms=100)
        r.sp.ev_w = -3000
        r.sp.ev_session = True
        run(r.bus, r.clock, 1500)
        self.assertEqual(r.rec.power_w, -3000)
        r.slave.stuck_power_w = -3000  # 0 W accepted, the power has not followed yet
        r.bus.submit_stop(r.clock.now_ms())
        run(r.bus, r.clock, 2000)
        self.assertTrue(r.drv.stop_acked)
        self.assertEqual(r.slave.ir[3], 0, "setpoint in effect read back at 0")
        self.assertEqual(r.bus.stop_state, STOP_PENDING, "confirmed while still discharging")
        r.slave.stuck_power_w = -60  # within the tolerance (100 W) of 0 W
        run(r.bus, r.clock, 300)
        self.assertEqual(r.bus.stop_state, STOP_CONFIRMED)

    def test_no_session_confirms_whatever_the_meter_shows(self):
        r = make(poll_ms=100)
        r.sp.ev_w = 2000
        r.sp.ev_session = True
        run(r.bus, r.clock, 1500)
        r.slave.stuck_power_w = 400  # meter offset
        r.slave.hr[1] = 0  # the session is closed: contactors open (state 1, idle)
        r.slave.ir[0] = 1
        r.bus.submit_stop(r.clock.now_ms())
        run(r.bus, r.clock, 300)
        self.assertEqual(r.bus.stop_state, STOP_CONFIRMED)


class StopDuringRetry(unittest.TestCase):
    """Issue 15 item 3: a stop must not wait behind the retries of a setpoint write whose reply
    is lost, and no stale setpoint may reach the charger after the stop."""

    def check(self, timeout_ms, delay_ms):
        r = make(bus_cfg={"timeout_ms": timeout_ms, "retries": 2})
        r.sp.ev_session = True
        run(r.bus, r.clock, 1500)
        r.slave.drop_reply_w = -3000  # the charger applies -3000 W; its reply is lost
        r.sp.ev_w = -3000
        req = r.bus.req
        while not (r.bus._busy and req.fn == rtu.FC_WRITE_SINGLE and req.values[0] == 0x10000 - 3000):
            run(r.bus, r.clock, 1)
        run(r.bus, r.clock, delay_ms)  # the stop lands in the first attempt or in a retry
        t0 = r.clock.now_ms()
        n0 = r.slave.sp_writes
        r.bus.submit_stop(t0)
        r.sp.ev_w = 0  # the app zeroes the setpoints with the stop
        while r.bus.stop_state != STOP_CONFIRMED:
            run(r.bus, r.clock, 1)
            self.assertTrue(r.clock.now_ms() - t0 < 10000, "stop never confirmed")
        run(r.bus, r.clock, 500)
        after = [r.slave.sp_log[k & 15] for k in range(n0, r.slave.sp_writes)]
        self.assertEqual(after[0], 0, "the first setpoint after the stop is the stop")
        self.assertEqual([w for w in after if w != 0], [], "stale setpoint after the stop")
        self.assertEqual(r.slave.hr[0], 0)
        return r.drv.stop_ack_ms - t0

    def test_stop_preempts_the_retries(self):
        worst = 0
        for timeout_ms in (200, 1000):
            for delay_ms in (0, 5, 30, timeout_ms // 2, timeout_ms + 20, 2 * timeout_ms + 40):
                worst = max(worst, self.check(timeout_ms, delay_ms))
        # reply window of the pre-empted write + t3.5 + the stop write and its reply, at 9600
        self.assertTrue(worst <= 120, f"stop acknowledged after {worst} ms")


class NoAllocation(unittest.TestCase):
    def test_bus_steps_allocate_nothing(self):
        import micropython

        r = make(poll_ms=100, slow_poll_ms=200, watchdog_s=2)
        r.sp.ev_session = True
        run(r.bus, r.clock, 3000)
        r.bus.submit_stop(r.clock.now_ms())
        run(r.bus, r.clock, 500)
        r.bus.release_stop()
        run(r.bus, r.clock, 500)
        n0 = r.bus.transactions
        micropython.heap_lock()
        try:
            for k in range(3):
                r.sp.ev_w = 1000 + k  # setpoint writes, heartbeats, polls, a stop and its release
                run(r.bus, r.clock, 700)
                r.bus.submit_stop(r.clock.now_ms())
                run(r.bus, r.clock, 300)
                r.bus.release_stop()
        finally:
            micropython.heap_unlock()
        self.assertTrue(r.bus.transactions - n0 > 30)
        self.assertEqual(r.bus.errors, 0)


class Config(unittest.TestCase):
    def test_bad_settings_name_the_key(self):
        try:
            settings(charger.SCHEMA, {"watchdog_s": 1}, "charger")
        except ConfigError as e:
            self.assertIn("charger.watchdog_s", str(e))
        else:
            self.assertTrue(False, "no error")
        self.assertRaises(ConfigError, settings, charger.SCHEMA, {"unit": 300}, "charger")
        self.assertRaises(ConfigError, settings, charger.SCHEMA, {"bogus": 1}, "charger")
        uart = FakeUart(VClock(), RefChargerSlave(1), baud=19200)
        try:
            Bus(uart, {"baud": 9600})  # disagrees with the UART
        except ConfigError as e:
            self.assertIn("bus.baud: 9600 but the UART is set to 19200", str(e))  # the section
        else:
            self.assertTrue(False, "no error")
        self.assertEqual(Bus(uart, {"baud": 19200}).link.t35_us // 10, 200)

    def test_start_in_the_upper_half_of_the_tick_range(self):
        # ms and us ticks both above 2**29 at start (an ESP32 up for more than 6.2 days): every
        # "not before" time must start from now, not from 0 (that would read as the future).
        r = make(start_us=600000000000, watchdog_s=3)
        self.assertTrue(r.clock.now_us() > 1 << 29 and r.clock.now_ms() > 1 << 29)
        run(r.bus, r.clock, 3000)
        self.assertTrue(r.rec.online)
        self.assertTrue(r.slave.hb_writes >= 2)
        self.assertTrue(r.bus.link.wait_us < 1000000)

    def test_ticks_wrap_does_not_stop_polling(self):
        start = (TICKS_MAX - 700) * 1000  # ms ticks wrap 0.7 s into the run
        r = make(start_us=start)
        run(r.bus, r.clock, 3000)
        self.assertTrue(r.rec.online)
        self.assertTrue(r.drv.health.ok >= 8)
