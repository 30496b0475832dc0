# Modbus RTU codec: request builders and reply parsers on preallocated buffers.
#
# Sources: MODBUS over Serial Line V1.02 (RTU framing: address, PDU, CRC-16 with
# polynomial 0xA001 reflected, initial 0xFFFF, low byte first on the wire) and
# MODBUS Application Protocol V1.1b3 (functions 03, 04, 06, 16; exception replies
# carry function | 0x80 and one code byte).
#
# Nothing here allocates on the parse path: parsers return an int status instead of
# raising (raising a fresh exception object allocates on MicroPython). error() turns
# a status into the typed exception for callers outside the hot path.
from micropython import const

FC_READ_HOLDING = const(3)
FC_READ_INPUT = const(4)
FC_WRITE_SINGLE = const(6)
FC_WRITE_MULTIPLE = const(16)
MAX_READ = const(125)  # registers per read (spec 6.3/6.4)
MAX_WRITE = const(123)  # registers per write multiple (spec 6.12)
ADU_MAX = const(256)  # largest RTU frame: 1 address + 253 PDU + 2 CRC

# Status codes (ints: no allocation). Exception replies are EXC_BASE - code.
OK = const(0)
E_TIMEOUT = const(-1)  # no byte arrived within the response timeout
E_CRC = const(-2)  # a frame of the expected shape with a bad CRC
E_ADDRESS = const(-3)  # a valid frame from another slave address
E_FUNCTION = const(-4)  # a valid frame from our slave with another function code
E_MALFORMED = const(-5)  # truncated, wrong length/byte count, bad echo, garbage
E_PREEMPTED = const(-6)  # withdrawn by the master: a stop took the line (no fault of the slave)
EXC_BASE = const(-256)  # a Modbus exception reply: status = EXC_BASE - code

# Exception codes (application protocol 7)
ILLEGAL_FUNCTION = const(1)
ILLEGAL_ADDRESS = const(2)
ILLEGAL_VALUE = const(3)
DEVICE_FAILURE = const(4)
ACKNOWLEDGE = const(5)
DEVICE_BUSY = const(6)

# CRC-16/MODBUS lookup table: entry i is 2 bytes (low, high) at 2*i.
_CRC_TABLE = (
    b"\x00\x00\xc1\xc0\x81\xc1\x40\x01\x01\xc3\xc0\x03\x80\x02\x41\xc2\x01\xc6\xc0\x06\x80\x07"
    b"\x41\xc7\x00\x05\xc1\xc5\x81\xc4\x40\x04\x01\xcc\xc0\x0c\x80\x0d\x41\xcd\x00\x0f\xc1\xcf"
    b"\x81\xce\x40\x0e\x00\x0a\xc1\xca\x81\xcb\x40\x0b\x01\xc9\xc0\x09\x80\x08\x41\xc8\x01\xd8"
    b"\xc0\x18\x80\x19\x41\xd9\x00\x1b\xc1\xdb\x81\xda\x40\x1a\x00\x1e\xc1\xde\x81\xdf\x40\x1f"
    b"\x01\xdd\xc0\x1d\x80\x1c\x41\xdc\x00\x14\xc1\xd4\x81\xd5\x40\x15\x01\xd7\xc0\x17\x80\x16"
    b"\x41\xd6\x01\xd2\xc0\x12\x80\x13\x41\xd3\x00\x11\xc1\xd1\x81\xd0\x40\x10\x01\xf0\xc0\x30"
    b"\x80\x31\x41\xf1\x00\x33\xc1\xf3\x81\xf2\x40\x32\x00\x36\xc1\xf6\x81\xf7\x40\x37\x01\xf5"
    b"\xc0\x35\x80\x34\x41\xf4\x00\x3c\xc1\xfc\x81\xfd\x40\x3d\x01\xff\xc0\x3f\x80\x3e\x41\xfe"
    b"\x01\xfa\xc0\x3a\x80\x3b\x41\xfb\x00\x39\xc1\xf9\x81\xf8\x40\x38\x00\x28\xc1\xe8\x81\xe9"
    b"\x40\x29\x01\xeb\xc0\x2b\x80\x2a\x41\xea\x01\xee\xc0\x2e\x80\x2f\x41\xef\x00\x2d\xc1\xed"
    b"\x81\xec\x40\x2c\x01\xe4\xc0\x24\x80\x25\x41\xe5\x00\x27\xc1\xe7\x81\xe6\x40\x26\x00\x22"
    b"\xc1\xe2\x81\xe3\x40\x23\x01\xe1\xc0\x21\x80\x20\x41\xe0\x01\xa0\xc0\x60\x80\x61\x41\xa1"
    b"\x00\x63\xc1\xa3\x81\xa2\x40\x62\x00\x66\xc1\xa6\x81\xa7\x40\x67\x01\xa5\xc0\x65\x80\x64"
    b"\x41\xa4\x00\x6c\xc1\xac\x81\xad\x40\x6d\x01\xaf\xc0\x6f\x80\x6e\x41\xae\x01\xaa\xc0\x6a"
    b"\x80\x6b\x41\xab\x00\x69\xc1\xa9\x81\xa8\x40\x68\x00\x78\xc1\xb8\x81\xb9\x40\x79\x01\xbb"
    b"\xc0\x7b\x80\x7a\x41\xba\x01\xbe\xc0\x7e\x80\x7f\x41\xbf\x00\x7d\xc1\xbd\x81\xbc\x40\x7c"
    b"\x01\xb4\xc0\x74\x80\x75\x41\xb5\x00\x77\xc1\xb7\x81\xb6\x40\x76\x00\x72\xc1\xb2\x81\xb3"
    b"\x40\x73\x01\xb1\xc0\x71\x80\x70\x41\xb0\x00\x50\xc1\x90\x81\x91\x40\x51\x01\x93\xc0\x53"
    b"\x80\x52\x41\x92\x01\x96\xc0\x56\x80\x57\x41\x97\x00\x55\xc1\x95\x81\x94\x40\x54\x01\x9c"
    b"\xc0\x5c\x80\x5d\x41\x9d\x00\x5f\xc1\x9f\x81\x9e\x40\x5e\x00\x5a\xc1\x9a\x81\x9b\x40\x5b"
    b"\x01\x99\xc0\x59\x80\x58\x41\x98\x01\x88\xc0\x48\x80\x49\x41\x89\x00\x4b\xc1\x8b\x81\x8a"
    b"\x40\x4a\x00\x4e\xc1\x8e\x81\x8f\x40\x4f\x01\x8d\xc0\x4d\x80\x4c\x41\x8c\x00\x44\xc1\x84"
    b"\x81\x85\x40\x45\x01\x87\xc0\x47\x80\x46\x41\x86\x01\x82\xc0\x42\x80\x43\x41\x83\x00\x41"
    b"\xc1\x81\x81\x80\x40\x40"
)


def crc16(buf, start, end):
    """CRC-16/MODBUS of buf[start:end] (no slicing, no allocation)."""
    crc = 0xFFFF
    t = _CRC_TABLE
    for i in range(start, end):
        k = ((crc ^ buf[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ (t[k] | (t[k + 1] << 8))
    return crc


def _seal(buf, n):
    """Append the CRC (low byte first) after n bytes; return the frame length."""
    c = crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


def crc_ok(buf, start, end):
    """True when buf[start:end] is a frame whose last two bytes are its CRC."""
    if end - start < 4:
        return False
    c = crc16(buf, start, end - 2)
    return buf[end - 2] == (c & 0xFF) and buf[end - 1] == (c >> 8)


def _check_unit(unit):
    if not 1 <= unit <= 247:
        raise ValueError("slave address must be 1..247")


# ---- requests (master side) -------------------------------------------------------------------


def build_read(buf, unit, fn, start, count):
    """Read holding (03) or input (04) registers; returns the frame length (8)."""
    _check_unit(unit)
    if fn != FC_READ_HOLDING and fn != FC_READ_INPUT:
        raise ValueError("read function must be 3 or 4")
    if not 1 <= count <= MAX_READ or not 0 <= start <= 0xFFFF or start + count > 0x10000:
        raise ValueError("read range")
    buf[0] = unit
    buf[1] = fn
    buf[2] = start >> 8
    buf[3] = start & 0xFF
    buf[4] = 0
    buf[5] = count
    return _seal(buf, 6)


def build_write_single(buf, unit, reg, value):
    """Write single register (06); value is taken modulo 2**16 (signed allowed)."""
    _check_unit(unit)
    if not 0 <= reg <= 0xFFFF:
        raise ValueError("register address")
    value &= 0xFFFF
    buf[0] = unit
    buf[1] = FC_WRITE_SINGLE
    buf[2] = reg >> 8
    buf[3] = reg & 0xFF
    buf[4] = value >> 8
    buf[5] = value & 0xFF
    return _seal(buf, 6)


def build_write_multiple(buf, unit, start, values, count):
    """Write multiple registers (16) from values[0:count]; returns the frame length."""
    _check_unit(unit)
    if not 1 <= count <= MAX_WRITE or not 0 <= start <= 0xFFFF or start + count > 0x10000:
        raise ValueError("write range")
    buf[0] = unit
    buf[1] = FC_WRITE_MULTIPLE
    buf[2] = start >> 8
    buf[3] = start & 0xFF
    buf[4] = 0
    buf[5] = count
    buf[6] = count << 1
    j = 7
    for i in range(count):
        v = values[i] & 0xFFFF
        buf[j] = v >> 8
        buf[j + 1] = v & 0xFF
        j += 2
    return _seal(buf, j)


# ---- replies (slave side: simulators, tests, fuzzing) -----------------------------------------


def build_read_reply(buf, unit, fn, values, count):
    """Normal reply to 03/04 carrying values[0:count]."""
    buf[0] = unit
    buf[1] = fn
    buf[2] = count << 1
    j = 3
    for i in range(count):
        v = values[i] & 0xFFFF
        buf[j] = v >> 8
        buf[j + 1] = v & 0xFF
        j += 2
    return _seal(buf, j)


def build_write_reply(buf, unit, fn, reg, value):
    """Normal reply to 06 (reg, value echoed) or 16 (start, count)."""
    value &= 0xFFFF
    buf[0] = unit
    buf[1] = fn
    buf[2] = reg >> 8
    buf[3] = reg & 0xFF
    buf[4] = value >> 8
    buf[5] = value & 0xFF
    return _seal(buf, 6)


def build_exception(buf, unit, fn, code):
    """Exception reply: function | 0x80 and the exception code (5 bytes)."""
    buf[0] = unit
    buf[1] = (fn | 0x80) & 0xFF
    buf[2] = code & 0xFF
    return _seal(buf, 3)


# ---- parsing replies (master side) ------------------------------------------------------------


def reply_len(fn, count):
    """Length of the normal reply to a request of function fn (count registers for reads)."""
    if fn == FC_READ_HOLDING or fn == FC_READ_INPUT:
        return 5 + (count << 1)
    return 8


def find_reply(buf, n, unit, fn, count):
    """Resync: offset of the first complete, CRC-valid reply to (unit, fn) in buf[0:n], or -1.

    Garbage before the reply (line noise, a late reply's tail) is skipped by trying every
    offset where the slave address and our function (or its exception form) appear.
    """
    full = reply_len(fn, count)
    exc = fn | 0x80
    last = n - 5  # the shortest frame (an exception) is 5 bytes
    i = 0
    while i <= last:
        if buf[i] == unit:
            f = buf[i + 1]
            if f == fn:
                if i + full <= n and crc_ok(buf, i, i + full):
                    return i
            elif f == exc and crc_ok(buf, i, i + 5):
                return i
        i += 1
    return -1


def check_reply(buf, off, unit, fn, start, count, value, regs):
    """Validate the CRC-valid reply at buf[off]; fill regs[0:count] for reads. Returns a status.

    start/count/value describe the request: for 06 `value` is the register value written
    (echo check), for 16 `count` is the number of registers written.
    """
    if buf[off] != unit:
        return E_ADDRESS
    f = buf[off + 1]
    if f == (fn | 0x80):
        return EXC_BASE - buf[off + 2]
    if f != fn:
        return E_FUNCTION
    if fn == FC_READ_HOLDING or fn == FC_READ_INPUT:
        if buf[off + 2] != count << 1:
            return E_MALFORMED
        j = off + 3
        for i in range(count):
            regs[i] = (buf[j] << 8) | buf[j + 1]
            j += 2
        return OK
    a = (buf[off + 2] << 8) | buf[off + 3]
    b = (buf[off + 4] << 8) | buf[off + 5]
    if a != start:
        return E_MALFORMED
    if fn == FC_WRITE_SINGLE:
        return OK if b == value & 0xFFFF else E_MALFORMED
    return OK if b == count else E_MALFORMED


def classify(buf, n, unit, fn, count):
    """Why buf[0:n] (no valid reply found in it) failed: the most specific status."""
    if n <= 0:
        return E_TIMEOUT
    if crc_ok(buf, 0, n):
        # A well-formed frame, but not the reply we wait for.
        if buf[0] != unit:
            return E_ADDRESS
        if buf[1] & 0x7F != fn:
            return E_FUNCTION
        return E_MALFORMED  # right slave and function, wrong length or byte count
    if buf[0] == unit and n >= 5:
        want = 5 if buf[1] == (fn | 0x80) else reply_len(fn, count)
        if n == want:
            return E_CRC
    return E_MALFORMED


def is_exception(status):
    return status <= EXC_BASE


def exception_code(status):
    return EXC_BASE - status if status <= EXC_BASE else 0


# ---- typed exceptions (for callers off the hot path) ------------------------------------------


class ModbusError(Exception):
    pass


class Timeout(ModbusError):
    pass


class CrcError(ModbusError):
    pass


class MalformedFrame(ModbusError):
    pass


class Preempted(ModbusError):
    """The request was withdrawn (not sent, or its reply given up) because a stop came first."""


class UnexpectedReply(ModbusError):
    """A reply from another slave address or with another function code."""

    def __init__(self, unit, fn, why):
        super().__init__(f"unexpected {why} in reply to unit {unit} function {fn}")
        self.unit = unit
        self.fn = fn
        self.why = why  # "address" or "function"


class ModbusException(ModbusError):
    """The slave answered with a Modbus exception response."""

    def __init__(self, code, unit=0, fn=0):
        super().__init__(f"exception {code} from unit {unit} function {fn}")
        self.code = code
        self.unit = unit
        self.fn = fn


def error(status, unit=0, fn=0):
    """The typed exception for a failed status (allocates), or None for OK."""
    if status >= 0:
        return None
    if status <= EXC_BASE:
        return ModbusException(EXC_BASE - status, unit, fn)
    if status == E_TIMEOUT:
        return Timeout(f"no reply from unit {unit} function {fn}")
    if status == E_CRC:
        return CrcError(f"CRC error in reply from unit {unit}")
    if status == E_ADDRESS:
        return UnexpectedReply(unit, fn, "address")
    if status == E_FUNCTION:
        return UnexpectedReply(unit, fn, "function")
    if status == E_PREEMPTED:
        return Preempted(f"request to unit {unit} function {fn} withdrawn: a stop took the line")
    return MalformedFrame(f"malformed reply from unit {unit} function {fn}")


def check(status, unit=0, fn=0):
    """Raise the typed exception for a failed status."""
    if status < 0:
        raise error(status, unit, fn)
    return status
