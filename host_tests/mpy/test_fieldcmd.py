# Provisioning from the console: Wi-Fi, MQTT broker and time zone are applied, saved at
# once (config and secrets atomically), secrets never echoed; bad input is refused clearly;
# an unprovisioned board says what to type.
import json
import unittest

from gateway import fieldcmd, mqtt, netmgr, sntp, tz
from gateway.config import Config


class MemFs:
    def __init__(self):
        self.files = {}

    def read(self, p):
        if p not in self.files:
            raise OSError(2, "no file")
        return self.files[p]

    def write(self, p, d):
        self.files[p] = bytes(d)

    def rename(self, a, b):
        self.files[b] = self.files.pop(a)

    def remove(self, p):
        self.files.pop(p, None)

    def exists(self, p):
        return p in self.files


class Ctx:
    """The fields of gateway.model.View that the commands read."""

    net = sntp = tz = ota = persist = counters = None


def make():
    fs = MemFs()
    cfg = Config({"net": netmgr.SCHEMA, "mqtt": mqtt.SCHEMA, "time": sntp.SCHEMA}, "config.json",
                 "secrets.json", fs=fs, rules={"time": tz.rule})
    cfg.load()
    c = Ctx()
    c.config = cfg
    return c, fs


class Provisioning(unittest.TestCase):
    def test_wifi_saved_and_password_masked(self):
        c, fs = make()
        self.assertIn("not provisioned", fieldcmd.unprovisioned_hint(c.config))
        out = fieldcmd.run(c, "wifi", ["home-net", "s3cret-pass"])
        self.assertFalse("s3cret-pass" in " ".join(out))
        self.assertIn("********", out[0])
        self.assertEqual(json.loads(fs.files["config.json"])["net"],
                         {"ssid": "home-net", "mode": "wifi"})
        self.assertEqual(json.loads(fs.files["secrets.json"]),
                         {"net": {"password": "s3cret-pass"}})
        self.assertFalse("s3cret" in fs.files["config.json"].decode())
        self.assertIsNone(fieldcmd.unprovisioned_hint(c.config))
        # a restart reads both back
        cfg2 = Config(c.config.schemas, "config.json", "secrets.json", fs=fs)
        cfg2.load()
        self.assertEqual((cfg2.data["net"]["ssid"], cfg2.data["net"]["password"]),
                         ("home-net", "s3cret-pass"))

    def test_broker_with_password(self):
        c, fs = make()
        out = fieldcmd.run(c, "broker", ["192.168.1.10", "1884", "gw", "mqtt-pw"])
        self.assertFalse("mqtt-pw" in out[0])
        d = c.config.data["mqtt"]
        self.assertEqual((d["host"], d["port"], d["user"], d["password"]),
                         ("192.168.1.10", 1884, "gw", "mqtt-pw"))
        self.assertEqual(json.loads(fs.files["secrets.json"])["mqtt"]["password"], "mqtt-pw")

    def test_time_zone_checked_before_saving(self):
        c, fs = make()
        out = fieldcmd.run(c, "tz", ["GMT0BST,M3.5.0/1,M10.5.0"])
        self.assertIn("daylight BST +60 min", out[0])
        self.assertEqual(json.loads(fs.files["config.json"])["time"]["tz"],
                         "GMT0BST,M3.5.0/1,M10.5.0")
        try:
            fieldcmd.run(c, "tz", ["CET-1CEST"])
            msg = "accepted"
        except ValueError as e:
            msg = str(e)
        self.assertIn("rules", msg)
        self.assertEqual(c.config.data["time"]["tz"], "GMT0BST,M3.5.0/1,M10.5.0")

    def test_bad_wifi_input(self):
        c, _ = make()
        self.assertIn("8-63", fieldcmd.run(c, "wifi", ["net", "short"])[0])
        self.assertIn("error", fieldcmd.run(c, "wifi", ["only-ssid"])[0])
        self.assertIsNone(fieldcmd.run(c, "nonsense", []))

    def test_config_file_with_a_bad_zone_is_rejected(self):
        c, fs = make()
        fs.files["config.json"] = b'{"time": {"tz": "XYZ"}}'
        cfg = Config(c.config.schemas, "config.json", "secrets.json", fs=fs,
                     rules={"time": tz.rule})
        cfg.load()
        self.assertIn("time zone 'XYZ'", cfg.error)
        self.assertEqual(cfg.data["time"]["tz"], sntp.SCHEMA["tz"][0])
