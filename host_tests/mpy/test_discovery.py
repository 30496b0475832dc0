# Home Assistant discovery payloads: one per entity, each a valid config per HA's
# documented keys (the live test checks them again as they arrive at the broker).
import json
import unittest

from gateway import discovery
from gateway.util import Topics

CONTROL = {
    "mode": ("pv", ("off", "pv", "pv_v2h", "v2h", "charge"), None),
    "soc_reserve_pct": (30, 0, 100),
    "soc_max_pct": (90, 10, 100),
}


class Discovery(unittest.TestCase):
    def test_every_message_is_a_valid_config(self):
        tp = Topics("energygw", "gwA", "homeassistant")
        ids = discovery.Ids(tp, "gwA", "Energy gateway", "1.2")
        seen = set()
        n = 0
        for topic, payload in discovery.messages(ids, CONTROL, 5):
            n += 1
            parts = topic.split("/")
            self.assertEqual((parts[0], parts[2], parts[4]), ("homeassistant", "gwA", "config"))
            d = json.loads(payload)
            self.assertTrue(len(payload) < 700, (topic, len(payload)))
            self.assertEqual(d["unique_id"], "gwA_" + parts[3])
            self.assertFalse(d["unique_id"] in seen)
            seen.add(d["unique_id"])
            self.assertEqual(d["availability_topic"], "energygw/gwA/status")
            self.assertEqual(d["device"]["identifiers"], ["gwA"])
            self.assertEqual(d["origin"]["name"], "energy-gateway")
            comp = parts[1]
            if comp in ("sensor", "binary_sensor"):
                self.assertEqual(d["state_topic"], "energygw/gwA/state")
                self.assertTrue("value_json." in d["value_template"])
            else:
                self.assertEqual(d["command_topic"], "energygw/gwA/cmd")
            if comp == "select":
                self.assertEqual(d["options"], ["off", "pv", "pv_v2h", "v2h", "charge"])
                self.assertEqual(d["command_template"], '{"mode": "{{ value }}"}')
            if comp == "number":
                self.assertEqual((d["min"], d["max"], d["step"]),
                                 CONTROL[parts[3]][1:] + (1,))
        self.assertEqual(n, discovery.count(CONTROL))
        self.assertEqual(n, discovery.count(CONTROL, True))
        self.assertTrue("gwA_stop_now" in seen and "gwA_grid_up" in seen)
        self.assertEqual(discovery.count({}, False), n - 4)
