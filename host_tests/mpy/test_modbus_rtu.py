# The Modbus RTU codec: CRC, every builder and parser, every error path, resync, no allocation.
import unittest

from gateway.modbus import rtu


def crc_bitwise(data):
    """Reference CRC-16/MODBUS computed bit by bit (independent of the table)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(*b):
    return bytearray(b)


def sealed(*b):
    f = bytearray(b)
    c = crc_bitwise(f)
    f.append(c & 0xFF)
    f.append(c >> 8)
    return f


class Rng:
    """xorshift32: the same pseudo-random stream on both runtimes."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n


class Crc(unittest.TestCase):
    def test_check_value(self):
        data = b"123456789"
        self.assertEqual(rtu.crc16(data, 0, len(data)), 0x4B37)

    def test_spec_example_frame(self):
        # MODBUS over Serial Line V1.02 example: read 3 holding registers from 0x006B of unit 17.
        f = frame(0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87)
        self.assertTrue(rtu.crc_ok(f, 0, 8))
        f[7] ^= 1
        self.assertFalse(rtu.crc_ok(f, 0, 8))

    def test_table_matches_bitwise(self):
        r = Rng(12345)
        buf = bytearray(64)
        for n in (1, 2, 7, 33, 64):
            for i in range(n):
                buf[i] = r.below(256)
            self.assertEqual(rtu.crc16(buf, 0, n), crc_bitwise(buf[:n]))

    def test_crc_of_slice_inside_buffer(self):
        buf = bytearray(b"xx123456789yy")
        self.assertEqual(rtu.crc16(buf, 2, 11), 0x4B37)

    def test_too_short_is_never_ok(self):
        self.assertFalse(rtu.crc_ok(bytearray(b"\x01\x03\x00"), 0, 3))


class Builders(unittest.TestCase):
    def setUp(self):
        self.buf = bytearray(rtu.ADU_MAX)

    def test_read_holding(self):
        n = rtu.build_read(self.buf, 1, 3, 0, 10)
        self.assertEqual(bytes(self.buf[:n]), bytes(frame(1, 3, 0, 0, 0, 10, 0xC5, 0xCD)))

    def test_read_input(self):
        n = rtu.build_read(self.buf, 0x11, 4, 0x0108, 2)
        self.assertEqual(bytes(self.buf[:n]), bytes(sealed(0x11, 4, 1, 8, 0, 2)))

    def test_write_single_signed(self):
        n = rtu.build_write_single(self.buf, 2, 0x7E, -1500)
        self.assertEqual(bytes(self.buf[:n]), bytes(sealed(2, 6, 0, 0x7E, 0xFA, 0x24)))

    def test_write_multiple(self):
        vals = [0x000A, 0x0102, -2]
        n = rtu.build_write_multiple(self.buf, 0x11, 1, vals, 3)
        want = sealed(0x11, 0x10, 0, 1, 0, 3, 6, 0, 0x0A, 1, 2, 0xFF, 0xFE)
        self.assertEqual(bytes(self.buf[:n]), bytes(want))
        self.assertEqual(n, 9 + 2 * 3)

    def test_slave_side_replies(self):
        n = rtu.build_read_reply(self.buf, 1, 4, [1, 0xFFFF], 2)
        self.assertEqual(bytes(self.buf[:n]), bytes(sealed(1, 4, 4, 0, 1, 0xFF, 0xFF)))
        n = rtu.build_write_reply(self.buf, 1, 16, 0x7C, 13)
        self.assertEqual(bytes(self.buf[:n]), bytes(sealed(1, 16, 0, 0x7C, 0, 13)))
        n = rtu.build_exception(self.buf, 9, 3, 2)
        self.assertEqual(bytes(self.buf[:n]), bytes(sealed(9, 0x83, 2)))

    def test_bad_arguments_are_clear_errors(self):
        b = self.buf
        self.assertRaises(ValueError, rtu.build_read, b, 0, 3, 0, 1)  # broadcast: no reply
        self.assertRaises(ValueError, rtu.build_read, b, 248, 3, 0, 1)
        self.assertRaises(ValueError, rtu.build_read, b, 1, 5, 0, 1)
        self.assertRaises(ValueError, rtu.build_read, b, 1, 3, 0, 0)
        self.assertRaises(ValueError, rtu.build_read, b, 1, 3, 0, 126)
        self.assertRaises(ValueError, rtu.build_read, b, 1, 3, 0xFFFF, 2)
        self.assertRaises(ValueError, rtu.build_write_single, b, 1, 0x10000, 0)
        self.assertRaises(ValueError, rtu.build_write_multiple, b, 1, 0, [0] * 124, 124)
        self.assertRaises(ValueError, rtu.build_write_multiple, b, 1, 0, [], 0)


class Parsers(unittest.TestCase):
    def setUp(self):
        self.regs = [0] * rtu.MAX_READ

    def parse(self, f, unit, fn, start, count, value=0):
        off = rtu.find_reply(f, len(f), unit, fn, count)
        if off < 0:
            return rtu.classify(f, len(f), unit, fn, count)
        return rtu.check_reply(f, off, unit, fn, start, count, value, self.regs)

    def test_read_reply(self):
        f = sealed(1, 3, 6, 0x12, 0x34, 0xFF, 0xFE, 0, 0)
        self.assertEqual(self.parse(f, 1, 3, 0, 3), rtu.OK)
        self.assertEqual(self.regs[:3], [0x1234, 0xFFFE, 0])

    def test_write_single_echo(self):
        f = sealed(1, 6, 0, 5, 0xFF, 0x38)
        self.assertEqual(self.parse(f, 1, 6, 5, 1, -200), rtu.OK)
        self.assertEqual(self.parse(f, 1, 6, 5, 1, 200), rtu.E_MALFORMED)  # echo differs
        self.assertEqual(self.parse(f, 1, 6, 6, 1, -200), rtu.E_MALFORMED)

    def test_write_multiple_echo(self):
        f = sealed(1, 16, 0, 0x7C, 0, 13)
        self.assertEqual(self.parse(f, 1, 16, 0x7C, 13), rtu.OK)
        self.assertEqual(self.parse(f, 1, 16, 0x7C, 12), rtu.E_MALFORMED)

    def test_every_exception_code(self):
        for code in (1, 2, 3, 4, 5, 6, 8, 10, 11):
            st = self.parse(sealed(7, 0x84, code), 7, 4, 0, 2)
            self.assertTrue(rtu.is_exception(st))
            self.assertEqual(rtu.exception_code(st), code)
            e = rtu.error(st, 7, 4)
            self.assertIsInstance(e, rtu.ModbusException)
            self.assertEqual(e.code, code)
        self.assertEqual(rtu.exception_code(rtu.E_CRC), 0)

    def test_timeout(self):
        self.assertEqual(rtu.classify(bytearray(8), 0, 1, 3, 1), rtu.E_TIMEOUT)
        self.assertIsInstance(rtu.error(rtu.E_TIMEOUT, 1, 3), rtu.Timeout)

    def test_crc_error(self):
        f = sealed(1, 3, 2, 0, 7)
        f[4] ^= 0x10
        st = self.parse(f, 1, 3, 0, 1)
        self.assertEqual(st, rtu.E_CRC)
        self.assertIsInstance(rtu.error(st), rtu.CrcError)
        bad_exc = sealed(1, 0x83, 2)
        bad_exc[2] = 3
        self.assertEqual(self.parse(bad_exc, 1, 3, 0, 1), rtu.E_CRC)

    def test_wrong_address(self):
        st = self.parse(sealed(2, 3, 2, 0, 7), 1, 3, 0, 1)
        self.assertEqual(st, rtu.E_ADDRESS)
        e = rtu.error(st, 1, 3)
        self.assertIsInstance(e, rtu.UnexpectedReply)
        self.assertEqual(e.why, "address")

    def test_wrong_function(self):
        st = self.parse(sealed(1, 4, 2, 0, 7), 1, 3, 0, 1)
        self.assertEqual(st, rtu.E_FUNCTION)
        self.assertEqual(rtu.error(st, 1, 3).why, "function")

    def test_malformed(self):
        # truncated
        self.assertEqual(self.parse(sealed(1, 3, 4, 0, 7, 0, 8)[:6], 1, 3, 0, 2), rtu.E_MALFORMED)
        # CRC-valid but the byte count disagrees with the request
        self.assertEqual(self.parse(sealed(1, 3, 4, 0, 7, 0, 8), 1, 3, 0, 1), rtu.E_MALFORMED)
        # pure noise
        self.assertEqual(self.parse(frame(0x55, 0xAA, 0x00), 1, 3, 0, 1), rtu.E_MALFORMED)
        self.assertIsInstance(rtu.error(rtu.E_MALFORMED), rtu.MalformedFrame)

    def test_check_raises_typed(self):
        self.assertEqual(rtu.check(rtu.OK), 0)
        self.assertRaises(rtu.Timeout, rtu.check, rtu.E_TIMEOUT)
        self.assertRaises(rtu.ModbusException, rtu.check, rtu.EXC_BASE - 2)
        self.assertRaises(rtu.ModbusError, rtu.check, rtu.E_MALFORMED)
        self.assertIsNone(rtu.error(rtu.OK))


class Resync(unittest.TestCase):
    def test_garbage_before_reply(self):
        reply = sealed(1, 3, 2, 0x01, 0x2C)
        # noise that contains the slave address and function code but no valid frame
        f = bytearray(b"\x00\x01\x03\x7f\x01") + reply
        off = rtu.find_reply(f, len(f), 1, 3, 1)
        self.assertEqual(off, 5)
        regs = [0]
        self.assertEqual(rtu.check_reply(f, off, 1, 3, 0, 1, 0, regs), rtu.OK)
        self.assertEqual(regs[0], 300)

    def test_exception_after_garbage(self):
        f = bytearray(b"\xff\xfe") + sealed(1, 0x86, 6)
        off = rtu.find_reply(f, len(f), 1, 6, 1)
        self.assertEqual(off, 2)
        st = rtu.check_reply(f, off, 1, 6, 0, 1, 0, None)
        self.assertEqual(rtu.exception_code(st), rtu.DEVICE_BUSY)

    def test_stale_reply_of_other_unit_is_skipped(self):
        f = sealed(2, 3, 2, 0, 1) + sealed(1, 3, 2, 0, 9)
        off = rtu.find_reply(f, len(f), 1, 3, 1)
        self.assertEqual(off, 7)

    def test_incomplete_is_not_found(self):
        f = sealed(1, 3, 2, 0, 9)
        self.assertEqual(rtu.find_reply(f, 6, 1, 3, 1), -1)


class NoAllocation(unittest.TestCase):
    # No closure here: calling a closure with more than 5 captured names allocates on MicroPython.
    def _run(self):
        rx, tx, n = self.rx, self.tx, self.n
        rtu.build_read(tx, 1, 4, 0, 3)
        rtu.build_write_single(tx, 1, 0, -5)
        rtu.build_write_multiple(tx, 1, 0, self.vals, 3)
        off = rtu.find_reply(rx, n, 1, 4, 3)
        out = self.out  # results go into a preallocated list (a returned tuple allocates)
        out[0] = off
        out[1] = rtu.check_reply(rx, off, 1, 4, 0, 3, 0, self.regs)
        out[2] = rtu.classify(rx, n - 1, 1, 4, 3)

    def test_parse_path_allocates_nothing(self):
        import micropython

        self.rx = bytearray(rtu.ADU_MAX)
        self.tx = bytearray(rtu.ADU_MAX)
        self.regs = [0] * 8
        self.vals = [1, 2, 3]
        self.out = [0, 0, 0]
        good = sealed(1, 4, 6, 0, 1, 0, 2, 0, 3)
        for i in range(len(good)):
            self.rx[i + 3] = good[i]
        self.n = len(good) + 3
        self._run()
        micropython.heap_lock()
        try:
            for _ in range(20):
                self._run()
        finally:
            micropython.heap_unlock()
        self.assertEqual(self.out, [3, rtu.OK, rtu.E_MALFORMED])
        self.assertEqual(self.regs[:3], [1, 2, 3])


class Fuzz(unittest.TestCase):
    def test_garbled_frames_never_raise(self):
        # 3000 frames here (both runtimes, ~1 s); tools/bench-bus drives >= 10,000 through the bus.
        r = Rng(2024)
        buf = bytearray(rtu.ADU_MAX)
        regs = [0] * rtu.MAX_READ
        seen = {}
        for k in range(3000):
            fn = (3, 4, 6, 16)[r.below(4)]
            count = 1 + r.below(10)
            n = r.below(30)
            for i in range(n):
                buf[i] = r.below(256)
            if n >= 2 and r.below(2):
                buf[0] = 1
                buf[1] = fn if r.below(3) else fn | 0x80
            if n >= 4 and r.below(2):  # make it CRC-valid half the time
                rtu._seal(buf, n - 2)
            off = rtu.find_reply(buf, n, 1, fn, count)
            if off >= 0:
                st = rtu.check_reply(buf, off, 1, fn, 0, count, 0, regs)
            else:
                st = rtu.classify(buf, n, 1, fn, count)
            seen[max(rtu.EXC_BASE, st)] = True
            self.assertTrue(st == 0 or st in (-1, -2, -3, -4, -5) or st <= rtu.EXC_BASE)
        self.assertTrue(len(seen) >= 5, "the fuzzer reached too few outcomes")
