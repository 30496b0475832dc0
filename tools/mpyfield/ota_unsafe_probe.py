# The OTA switch and unsafe moments, on the MicroPython unix port (tools/gwhost/benchota.py).
# The firmware's Updater.switch runs against a gateway whose contact, permits and charger
# power this probe sets; the slot's set_boot() records whether the moment was safe.
# Prints one JSON line: {"cases": [{"name", "ok", "unsafe_switches", "switched"}]}.
import json

import asyncio
from gateway.clock import Clock
from gateway.log import Log
from gateway.model import Charger, Permits, Setpoints
from gateway.ota import Updater
from gateway.ports import CONTACT_GRID, CONTACT_ISLAND


class Board:
    def __init__(self):
        self.pos = CONTACT_GRID

    def contact(self):
        return self.pos


class Bus:
    def __init__(self):
        self.stop_state = 0
        self.stops = 0

    def submit_stop(self, now):
        self.stops += 1
        self.stop_state = 2 if self.stops >= 2 else 1  # the first stop is never confirmed


class Gw:
    def __init__(self):
        self.clock = Clock()
        self.board = Board()
        self.permits = Permits()
        self.charger = Charger()
        self.setpoints = Setpoints()
        self.bus = Bus()
        self.log = Log(10, self.clock)
        self.safe_calls = 0

    def islanded(self):
        return self.board.pos == CONTACT_ISLAND or self.permits.island or \
            self.permits.discharge or self.charger.power_w < 0

    def safe_state(self, reason):
        self.safe_calls += 1
        self.permits.export = False


class Part:
    def __init__(self, gw, rec, label):
        self.gw = gw
        self.rec = rec
        self.label = label

    def info(self):
        return (0, 0, 0, 0, self.label, False)

    def set_boot(self):
        self.rec["switched"] += 1
        if self.gw.islanded():
            self.rec["unsafe_switches"] += 1


class Slots:
    def __init__(self, gw, rec):
        self.gw = gw
        self.rec = rec

    def running(self):
        return Part(self.gw, self.rec, "ota_0")

    def get_next_update(self):
        return Part(self.gw, self.rec, "ota_1")


CFG = {"switch_wait_s": 60, "stop_wait_s": 3, "commit_s": 60, "healthy_s": 5}


async def case(name, setup, clear, during_stop=None):
    gw = Gw()
    rec = {"name": name, "switched": 0, "unsafe_switches": 0}
    up = Updater(gw, Slots(gw, rec), None, "sim", CFG)
    setup(gw)
    t = asyncio.create_task(up.switch("9.9"))
    await asyncio.sleep_ms(1500)
    waited = rec["switched"] == 0 and (gw.safe_calls == 0 or during_stop is not None)
    clear(gw)
    if during_stop is not None:
        await asyncio.sleep_ms(700)  # in the stop wait now (the bus never confirms)
        during_stop(gw)
        await asyncio.sleep_ms(1500)
        waited = waited and rec["switched"] == 0
        clear(gw)
    for _ in range(100):
        if rec["switched"]:
            break
        await asyncio.sleep_ms(100)
    t.cancel()
    rec["ok"] = waited and rec["switched"] == 1 and rec["unsafe_switches"] == 0 and \
        gw.bus.stops >= 1
    return rec


def island(gw):
    gw.board.pos = CONTACT_ISLAND
    gw.permits.island = True
    gw.permits.discharge = True
    gw.charger.power_w = -2500


def discharge(gw):
    gw.permits.discharge = True
    gw.charger.power_w = -4000
    gw.setpoints.ev_w = -4000


def clear(gw):
    gw.board.pos = CONTACT_GRID
    gw.permits.island = gw.permits.discharge = False
    gw.charger.power_w = 0
    gw.setpoints.ev_w = 0


async def main():
    out = [await case("update requested during an island (car backs up the house)", island,
                      clear),
           await case("update requested while the car discharges", discharge, clear),
           await case("an island begins during the stop wait", lambda g: None, clear, island)]
    print(json.dumps({"cases": out}))


asyncio.run(main())
