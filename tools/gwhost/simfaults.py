"""Fault injection for the simulated RS-485 line (used by the wire proxy in simbus).

Each reply a simulated device sends can be turned, with the probability given in the mix,
into one of these faults (what a real bus shows with a bad cable, a busy or rebooting
device, a second master, noise):

  silence        the request is dropped: the device never answers
  late           the reply comes after the master's response timeout
  crc            one bit of the reply flipped, CRC left as it was
  exception      a Modbus exception reply (codes 1, 2, 3, 4, 6) instead of the data
  garbage        random bytes before (and sometimes after) an intact reply
  noise          random bytes instead of the reply
  wrong_address  the reply comes back from another slave address (CRC fixed up)
  truncate       the reply stops early
  fuzz           any of a wide set of mutations, including CRC-valid nonsense (fuzzing)

Device reboots (forget setpoints, silent while booting) are scheduled by SimBus.reboot().
"""

import random
from collections import Counter

KINDS = ("silence", "late", "crc", "exception", "garbage", "noise", "wrong_address",
         "truncate", "fuzz")


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def seal(body):
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


class FaultInjector:
    def __init__(self, mix=None, seed=1, late_s=0.4, exception_codes=(1, 2, 3, 4, 6)):
        self.rng = random.Random(seed)
        self.late_s = late_s
        self.exception_codes = tuple(exception_codes)
        self.set_mix(mix or {})
        self.counts = Counter()
        self.replies = 0

    def set_mix(self, mix):
        for k in mix:
            if k not in KINDS:
                raise ValueError(f"unknown fault kind {k!r} (known: {', '.join(KINDS)})")
        total = sum(mix.values())
        if total > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        self.mix = dict(mix)

    @property
    def injected(self):
        return sum(self.counts.values())

    def choose(self):
        """The fault for the next transaction, or None."""
        self.replies += 1
        r = self.rng.random()
        for kind, p in self.mix.items():
            if r < p:
                self.counts[kind] += 1
                return kind
            r -= p
        return None

    def apply(self, kind, reply, unit, fn):
        """(bytes to send or None, extra delay in s) for a reply under the given fault."""
        rng = self.rng
        if kind is None:
            return reply, 0.0
        if kind == "silence":
            return None, 0.0
        if kind == "late":
            return reply, self.late_s
        if kind == "crc":
            b = bytearray(reply)
            i = rng.randrange(len(b) - 2)
            b[i] ^= 1 << rng.randrange(8)
            return bytes(b), 0.0
        if kind == "exception":
            return seal(bytes((unit, (fn | 0x80) & 0xFF, rng.choice(self.exception_codes)))), 0.0
        if kind == "garbage":
            pre = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            post = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
            return pre + reply + (post if rng.random() < 0.3 else b""), 0.0
        if kind == "noise":
            return bytes(rng.randrange(256) for _ in range(rng.randint(1, 20))), 0.0
        if kind == "wrong_address":
            other = (unit % 247) + 1
            return seal(bytes((other,)) + reply[1:-2]), 0.0
        if kind == "truncate":
            return reply[: rng.randrange(1, len(reply))], 0.0
        return self.fuzz(reply, unit, fn), 0.0

    def fuzz(self, reply, unit, fn):
        """One garbled frame (never None: a fuzz frame always reaches the master)."""
        rng = self.rng
        m = rng.randrange(12)
        if m == 0:
            return bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        if m == 1:
            b = bytearray(reply)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            return bytes(b)
        if m == 2:
            return reply[: rng.randrange(1, len(reply))]
        if m == 3:
            return reply + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        if m == 4:  # CRC-valid, our address and function, random body of random length
            body = bytes((unit, fn)) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
            return seal(body)
        if m == 5:  # CRC-valid read reply whose byte count lies
            n = rng.randint(0, 8)
            body = bytes((unit, fn, (2 * n + rng.choice((-2, 2, 1))) & 0xFF))
            return seal(body + bytes(rng.randrange(256) for _ in range(2 * n)))
        if m == 6:  # exception with any code, valid or not
            return seal(bytes((unit, (fn | 0x80) & 0xFF, rng.randrange(256))))
        if m == 7:
            return reply + reply
        if m == 8:  # CRC-valid frame with a random function code
            return seal(bytes((unit, rng.randrange(256))) + reply[2:-2])
        if m == 9:  # a long run of the slave address (resync worst case)
            return bytes((unit,)) * rng.randint(2, 60) + reply
        if m == 10:
            return bytes((rng.randrange(256),))
        return seal(bytes((rng.randrange(256),)) + reply[1:-2])
