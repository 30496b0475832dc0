# Network links on the ESP32 for gateway/netmgr.py: Wi-Fi station (network.WLAN) or
# Ethernet with a LAN8720 PHY (network.LAN, e.g. WT32-ETH01, Olimex ESP32-POE). Nothing here
# waits: connect() starts the join and netmgr polls status() from asyncio.
# Ethernet pins come from the board file (boards/*.json), e.g. WT32-ETH01:
#   "eth": {"phy": "LAN8720", "addr": 1, "mdc": 23, "mdio": 18, "power": 16,
#           "clock": "in", "clock_pin": 0}
# Olimex ESP32-POE: {"phy": "LAN8720", "addr": 0, "mdc": 23, "mdio": 18, "power": 12,
#                    "clock": "out", "clock_pin": 17}
# Not run on this host (no `network` module); netmgr is tested through this interface
# with a scripted stand-in (host_tests/mpy/test_netmgr.py).
import network

# network.WLAN status codes (ESP-IDF, MicroPython esp32 port)
_WIFI = {
    network.STAT_IDLE: "idle",
    network.STAT_CONNECTING: "connecting",
    network.STAT_GOT_IP: "up",
    network.STAT_WRONG_PASSWORD: "wrong_password",
    network.STAT_NO_AP_FOUND: "no_ap",
}


class WifiLink:
    def __init__(self):
        self.w = network.WLAN(network.STA_IF)

    def start(self, cfg):
        self.w.active(True)
        if cfg.get("hostname"):
            network.hostname(cfg["hostname"])
        try:
            self.w.config(reconnects=0)  # netmgr owns retries and their backoff
        except (ValueError, OSError):
            pass

    def connect(self, ssid, pw):
        try:
            self.w.disconnect()
        except OSError:
            pass
        self.w.connect(ssid, pw)

    def status(self):
        st = self.w.status()
        if st == network.STAT_GOT_IP and self.w.isconnected():
            return "up"
        return _WIFI.get(st, "fail" if st < 0 or st >= 200 else "connecting")

    def disconnect(self):
        self.w.disconnect()

    def ip(self):
        return self.w.ifconfig()[0]

    def rssi(self):
        try:
            return self.w.status("rssi")
        except (ValueError, OSError):
            return None


class EthLink:
    def __init__(self, eth):
        from machine import Pin

        clk = Pin.IN if eth.get("clock", "in") == "in" else Pin.OUT
        kw = {"mdc": Pin(eth["mdc"]), "mdio": Pin(eth["mdio"]),
              "phy_type": network.PHY_LAN8720, "phy_addr": eth.get("addr", 0),
              "ref_clk": Pin(eth.get("clock_pin", 0)), "ref_clk_mode": clk}
        if eth.get("power") is not None:
            kw["power"] = Pin(eth["power"])
        self.lan = network.LAN(**kw)

    def start(self, cfg):
        self.lan.active(True)

    def connect(self, ssid, pw):
        pass  # the cable is the connection; DHCP runs by itself

    def status(self):
        return "up" if self.lan.isconnected() else "connecting"

    def disconnect(self):
        pass

    def ip(self):
        return self.lan.ifconfig()[0]

    def rssi(self):
        return None


def open_link(board, cfg):
    """The link the config asks for ("wifi" or "eth"; Ethernet needs "eth" in the board file)."""
    if cfg["mode"] == "eth":
        eth = board.spec.get("eth")
        if not eth:
            raise ValueError("net.mode eth: the board file has no \"eth\" pins")
        return EthLink(eth)
    return WifiLink()
