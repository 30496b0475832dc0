# ESP32 board support (machine). Thin on purpose: everything above it is the
# same code that runs on the host; this file only maps the board file onto pins.
#
# Board file keys used here (see boards/README.md):
#   interlock: {"pin": 26, "active": 1}       relay driver; de-energised = export blocked
#   contact:   {"pin": 27, "island_level": 0, "pull": "up", "nc_pin": 14 | null}
#              With an NC pin, the position counts only when NO and NC disagree
#              (plausibility); equal levels (broken wire, missing supply) read UNKNOWN.
#   led:       {"pin": 2, "active": 1} | null
#   uarts:     {"rs485": {"id": 2, "tx": 17, "rx": 16, "de_pin": 4 | null, "baud": 9600,
#               "parity": "E", "stop": 1, "rxbuf": 512}}
#   analog:    metering front end section (gateway.metering), or "meter_ic" for an ATM90E32
#   storage:   "" (flash root)
# Every Python IRQ on the ESP32 is soft: it runs at the next bytecode boundary,
# so its latency is the longest non-yielding stretch of the whole program.
import machine

from gateway.clock import Clock
from gateway.ports import CONTACT_GRID, CONTACT_ISLAND, CONTACT_UNKNOWN, BoardError

_PARITY = {"N": None, "E": 0, "O": 1}  # machine.UART parity: 0 even, 1 odd


class Esp32Uart:
    """RS-485 half duplex: DE high while sending, low as soon as the last bit left."""

    def __init__(self, cfg):
        self.baud = cfg.get("baud", 9600)
        self.parity = cfg.get("parity", "E")
        self.stop = cfg.get("stop", 1)
        if self.parity not in _PARITY:
            raise BoardError("uart parity must be N, E or O")
        self._u = machine.UART(cfg["id"], baudrate=self.baud, bits=8,
                               parity=_PARITY[self.parity], stop=self.stop,
                               tx=cfg["tx"], rx=cfg["rx"], rxbuf=cfg.get("rxbuf", 512))
        de = cfg.get("de_pin")
        self._de = machine.Pin(de, machine.Pin.OUT, value=0) if de is not None else None

    def write(self, buf):
        if self._de is not None:
            self._de.value(1)
        return self._u.write(buf)

    def tx_done(self):
        return self._u.txdone()

    def end_tx(self):
        if self._de is not None:
            self._de.value(0)

    def any(self):
        return self._u.any()

    def readinto(self, buf, n):
        got = self._u.readinto(buf, n)
        return got or 0

    def flush_input(self):
        while self._u.any():
            self._u.read()

    def close(self):
        self._u.deinit()


class Esp32Board:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.get("name", "esp32")
        self.clock = Clock()
        self.storage = spec.get("storage", "")
        il = spec["interlock"]
        self._il_active = il.get("active", 1)
        # Construct the output at its inactive level: the relay never pulses at boot.
        self._il = machine.Pin(il["pin"], machine.Pin.OUT, value=1 - self._il_active)
        self._il_on = False
        c = spec["contact"]
        pull = machine.Pin.PULL_UP if c.get("pull", "up") == "up" else machine.Pin.PULL_DOWN
        self._c = machine.Pin(c["pin"], machine.Pin.IN, pull)
        self._c_island = c.get("island_level", 0)
        nc = c.get("nc_pin")
        self._nc = machine.Pin(nc, machine.Pin.IN, pull) if nc is not None else None
        self._irq_user = None
        ld = spec.get("led")
        self._led = machine.Pin(ld["pin"], machine.Pin.OUT, value=0) if ld else None
        self._led_active = ld.get("active", 1) if ld else 1
        self._wdt = None
        self._uarts = {}
        self.analog = None
        an = spec.get("analog")
        if an:
            from gateway.ports.esp32_analog import frontend

            self.analog = frontend(an)  # the ADC front end or the ATM90E32 driver

    def set_interlock(self, on):
        self._il_on = bool(on)
        self._il.value(self._il_active if on else 1 - self._il_active)

    def interlock_on(self):
        return self._il_on

    def led(self, on):
        if self._led is not None:
            self._led.value(self._led_active if on else 1 - self._led_active)

    def contact(self):
        island = self._c.value() == self._c_island
        if self._nc is not None and (self._nc.value() == self._c_island) == island:
            return CONTACT_UNKNOWN
        return CONTACT_ISLAND if island else CONTACT_GRID

    def _on_edge(self, pin):
        h = self._irq_user
        if h is not None:
            h(self.contact())

    def contact_irq(self, handler):
        self._irq_user = handler
        trig = machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING
        self._c.irq(handler=self._on_edge, trigger=trig)
        if self._nc is not None:
            self._nc.irq(handler=self._on_edge, trigger=trig)

    def uart(self, name):
        if name not in self._uarts:
            cfg = (self.spec.get("uarts") or {}).get(name)
            if cfg is None:
                raise BoardError("board file has no uart %r" % name)
            self._uarts[name] = Esp32Uart(cfg)
        return self._uarts[name]

    def watchdog_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=max(1000, timeout_ms))

    def watchdog_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset_cause(self):
        c = machine.reset_cause()
        if c == machine.WDT_RESET:
            return "watchdog"
        if c == machine.HARD_RESET:
            return "hard"
        if c == machine.SOFT_RESET:
            return "soft"
        if c == machine.DEEPSLEEP_RESET:
            return "deepsleep"
        return "power"

    def report(self, key, value):
        pass

    def tasks(self):
        return []

    def close(self):
        for u in self._uarts.values():
            u.close()
