# Board support: the only layer that touches hardware.
#
# A board object offers (duck-typed; sim.py and esp32.py implement it):
#   clock                      .now_ms() -> 30-bit ticks (gateway.clock)
#   set_interlock(on)          drive the export interlock; False = de-energised = export
#                              blocked (the safe state). Allocation-free: callable from an IRQ.
#   interlock_on()             the level last driven
#   contact()                  transfer-switch position: CONTACT_GRID, CONTACT_ISLAND or
#                              CONTACT_UNKNOWN (no reading, implausible NO/NC pair, broken wire)
#   contact_irq(handler)       handler(position) runs on every edge, before anything else
#                              (on the ESP32 a soft IRQ; on the host, the plant-link reader)
#   uart(name)                 RS-485 UART (see modbus docs): write/tx_done/end_tx/any/readinto
#   analog                     metering front end, or None (see gateway.metering)
#   led(on), watchdog_start(timeout_ms), watchdog_feed(), reset_cause()
#   storage                    folder for config and state files ("" = current folder)
#   tasks()                    coroutines the port itself needs running (host: the plant link)
#   report(key, value)         optional state report to the simulator (no-op on hardware)
#   close()
# Pin numbers, UART settings and calibration come from the board file
# (boards/*.json), never from code.
from micropython import const

CONTACT_GRID = const(0)
CONTACT_ISLAND = const(1)
CONTACT_UNKNOWN = const(-1)


class BoardError(Exception):
    pass


def load_spec(path):
    import json

    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as e:
        raise BoardError("cannot read board file %s: %s" % (path, e))
    except ValueError as e:
        raise BoardError("board file %s is not valid JSON: %s" % (path, e))
    if not isinstance(spec, dict) or "port" not in spec:
        raise BoardError("board file %s: missing key 'port'" % path)
    return spec


def open_board(spec):
    """Build the board object named by spec['port'] (imported lazily)."""
    port = spec["port"]
    if port == "sim":
        from gateway.ports.sim import SimBoard

        return SimBoard(spec)
    if port == "esp32":
        from gateway.ports.esp32 import Esp32Board

        return Esp32Board(spec)
    raise BoardError("board 'port' must be 'sim' or 'esp32', not %r" % (port,))
