# Safety settings: profiles resolve to the documented numbers, bad settings get a
# clear error naming the key, and a Safety built from bad settings fails closed.
import unittest

from gateway.safety import (
    READ_ONLY,
    READ_ONLY_KEYS,
    REASON_FAULT_CONFIG,
    SCHEMA,
    STATE_FAULT,
    Safety,
    validate,
)
from gateway.schema import ConfigError
from safety_rig import Rig


class Profiles(unittest.TestCase):
    def test_eu_defaults(self):
        c = validate(None)
        self.assertEqual(c["profile"], "eu")
        self.assertEqual(c["reconnect_ms"], 60000)
        self.assertEqual(c["v_nom_mv"] * c["uv1_pm"] // 1000, 184000)  # 184 V
        self.assertEqual(c["v_nom_mv"] * c["ov1_pm"] // 1000, 253000)  # 253 V
        self.assertEqual((c["uf1_mhz"], c["of1_mhz"]), (47500, 51500))
        self.assertEqual(c["ov1_mean_s"], 600)
        self.assertEqual(c["ramp_w_s"], 11000 // 600)  # 10 % of the maximum per minute
        self.assertEqual(c["stop_confirm_ms"], 1000)
        self.assertTrue(c["backup"])

    def test_ieee_profile(self):
        c = validate({"profile": "ieee1547"})
        self.assertEqual(c["reconnect_ms"], 300000)
        self.assertEqual((c["uv2_pm"], c["uv2_ms"]), (450, 160))
        self.assertEqual((c["ov2_pm"], c["ov2_ms"]), (1200, 160))
        self.assertEqual((c["uf2_mhz"], c["of2_mhz"]), (56500, 62000))
        self.assertEqual((c["rc_v_lo_pm"], c["rc_v_hi_pm"]), (917, 1050))
        self.assertEqual(c["ov1_mean_s"], 0)
        self.assertEqual(c["ramp_w_s"], 11000 // 300)

    def test_override_keeps_the_rest_of_the_profile(self):
        c = validate({"profile": "ieee1547", "reconnect_ms": 120000, "limit_max_w": 7200})
        self.assertEqual(c["reconnect_ms"], 120000)
        self.assertEqual(c["of2_ms"], 160)
        self.assertEqual(c["ramp_w_s"], 7200 // 300)

    def test_every_key_is_read_only(self):
        self.assertTrue(READ_ONLY)
        self.assertEqual(len(READ_ONLY_KEYS), len(SCHEMA))
        for k in SCHEMA:
            self.assertIn(k, READ_ONLY_KEYS)

    def test_schema_shape(self):
        for k in SCHEMA:
            default, lo, hi = SCHEMA[k]
            if isinstance(lo, tuple):
                self.assertIn(default, lo)
            elif isinstance(default, bool):
                self.assertIsNone(lo)
            else:
                self.assertTrue(lo <= default <= hi, k)


class BadSettings(unittest.TestCase):
    def bad(self, cfg, key):
        try:
            validate(cfg)
        except ConfigError as e:
            self.assertIn("safety." + key, str(e))
            return
        self.assertTrue(False, "no error for %r" % (cfg,))

    def test_unknown_key(self):
        self.bad({"reconect_ms": 5000}, "reconect_ms")

    def test_wrong_types(self):
        self.bad({"reconnect_ms": "60"}, "reconnect_ms")
        self.bad({"reconnect_ms": True}, "reconnect_ms")
        self.bad({"backup": 1}, "backup")
        self.bad({"profile": "vde"}, "profile")

    def test_out_of_range(self):
        self.bad({"reconnect_ms": 999999999}, "reconnect_ms")
        self.bad({"reconnect_ms": 500}, "reconnect_ms")  # below 1 s once not "profile"
        self.bad({"stop_confirm_ms": 50}, "stop_confirm_ms")

    def test_windows_must_nest(self):
        self.bad({"rc_v_lo_pm": 700}, "rc_v_lo_pm")  # reconnect below the UV1 trip
        self.bad({"rc_f_hi_mhz": 52000}, "of1_mhz: 51500 must be at least rc_f_hi_mhz")
        self.bad({"uv2_pm": 900}, "uv1_pm")  # fast stage above the slow one

    def test_not_a_dict(self):
        self.assertRaises(ConfigError, validate, [("reconnect_ms", 1)])

    def test_bad_settings_fail_closed(self):
        r = Rig({"reconnect_ms": "soon"})
        self.assertEqual(r.s.state, STATE_FAULT)
        self.assertEqual(r.p.reason, REASON_FAULT_CONFIG)
        self.assertIn("reconnect_ms", r.s.config_error)
        self.assertFalse(r.s.clear_fault(r.t))
        r.run(120000, 100)  # perfect evidence, two minutes: still nothing permitted
        self.assertEqual(r.s.state, STATE_FAULT)
        self.assertFalse(r.p.export or r.p.discharge or r.p.charge or r.s.interlock_on)

    def test_meter_is_required(self):
        self.assertRaises(TypeError, Safety, None, None)
