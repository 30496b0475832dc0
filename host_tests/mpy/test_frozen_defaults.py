# mpytest: heap=512k
# (the 64-bit tier loads every settings module's bytecode into the heap; the ESP32-like
# tier runs them frozen at 110 KB, as a board does)
#
# Frozen into an image, as production runs the firmware, an int outside +-8191 inside a
# constant tuple (every SCHEMA spec is one) becomes a long object, and arithmetic on it
# allocates on every use: a safety tick or control step with config.json silent would
# allocate. The rule: every place that materialises a default takes it through
# gateway.schema.default(), which gives a small int. This test runs every config default
# through every such path and proves, under heap_lock, that computing with each value
# allocates nothing. Only the frozen ESP32-like runtime (make test-esp32like) can fail it;
# elsewhere it still checks that every path yields every key.
import sys
import unittest

import micropython
from gateway import control_cfg, plan_cfg, safety_cfg, schema, wiring
from gateway.metering import config as metering_config
from gateway.modbus.settings import settings


def _allocates(v):
    micropython.heap_lock()
    try:
        v - v  # a small int stays one; a long makes a new object
        return False
    except MemoryError:
        return True
    finally:
        micropython.heap_unlock()


class FrozenDefaults(unittest.TestCase):
    def assert_small_ints(self, where, d, schema_table):
        for k in schema_table:
            self.assertTrue(k in d, "%s.%s: no value" % (where, k))
        bad = [k for k, v in d.items() if type(v) is int and _allocates(v)]
        self.assertEqual(bad, [], "%s: defaults that allocate when used: %s" % (where, bad))

    @unittest.skipUnless(sys.implementation.name == "micropython" and sys.maxsize <= 0x7FFFFFFF,
                         "a long below 2**31 exists only on a 32-bit MicroPython")
    def test_the_probe_sees_a_long(self):
        big = 1 << 29
        big = big + big + big  # 3 * 2**29: a long on a 32-bit word
        self.assertTrue(_allocates(big))
        self.assertFalse(_allocates(big >> 2))

    def test_config_store_defaults(self):
        schemas = wiring.schemas()
        for sec, d in schema.defaults(schemas).items():
            self.assert_small_ints(sec, d, schemas[sec])

    def test_module_fillers(self):
        self.assert_small_ints("control", control_cfg.make_config(), control_cfg.SCHEMA)
        self.assert_small_ints("plan", plan_cfg.make_config(), plan_cfg.SCHEMA)
        self.assert_small_ints("safety", safety_cfg.validate({}), safety_cfg.SCHEMA)
        schemas = wiring.schemas()
        for sec in ("bus", "charger"):
            self.assert_small_ints(sec, settings(schemas[sec], {}, sec), schemas[sec])
        from gateway.devices import solax, sunspec

        for mod in (solax, sunspec):
            self.assert_small_ints("inverter", settings(mod.SCHEMA, {}, "inverter"), mod.SCHEMA)

    def test_metering_defaults(self):
        an = metering_config.validate({"channels": [{"role": "grid", "pin": 39}]})
        self.assert_small_ints("analog", an, ())
        self.assert_small_ints("analog.channels[0]", an["channels"][0],
                               metering_config.CHANNEL_SCHEMA)
