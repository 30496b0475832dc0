# Drives the firmware's Modbus bus on the MicroPython unix port for host tests and the bench.
#
#   micropython tools/mpybus/drive.py      (first stdin line: the setup JSON)
# (Not in argv: on this unix port an argument longer than 255 bytes aborts the interpreter with
# "FATAL: uncaught NLR" before any Python code runs.)
# Setup: {"path": pty, "baud": 9600, "parity": "E", "stop": 1, "bus": {...bus settings},
#         "devices": [{"type": "charger"|"sunspec"|"solax", "name": "ev", "cfg": {...}}]}
# Then one JSON command per stdin line, one JSON reply per stdout line (prefixed "R "):
#   {"op": "read", "unit", "fn", "start", "count"}    one-off read: status, regs
#   {"op": "write", "unit", "start", "values"}        one-off write (06 for one value, else 16)
#   {"op": "run", "ms"}                               let the bus work; reply after ms
#   {"op": "hammer", "unit", "fn", "start", "count", "n"}   n one-off reads back to back
#   {"op": "setpoints", "ev_w", "ev_session", "export_limit_w", "batt_w"}
#   {"op": "snapshot"}                                records, health, driver state, bus stats
#   {"op": "stop", "max_ms"}                          submit_stop; reply when confirmed
#   {"op": "release"}
#   {"op": "stop_during_write", "dev", "ev_w", "delay_ms", "max_ms", "hold_ms"}
#                                                     set ev_w, wait until that setpoint write is
#                                                     on the wire, delay_ms later submit_stop;
#                                                     reply when confirmed (+ hold_ms), with the
#                                                     link's frame counts at the stop and at the end
#   {"op": "until_offline", "dev", "max_ms"}          ms until the device shows offline
#   {"op": "alloc", "ms"}                             heap bytes allocated per transaction
#   {"op": "heap_lock", "ms"}                         step the bus (not the loop) with the heap
#                                                     locked: an allocation fails the command
#   {"op": "reset"}                                   zero the lag / transaction-time maxima
#   {"op": "quit"}
# The bus task and a loop-lag monitor run in the background all the time.
import asyncio
import gc
import json
import select
import sys
import time

from gateway.clock import Clock, ticks_diff
from gateway.modbus import rtu
from gateway.modbus.bus import STOP_CONFIRMED, Bus
from gateway.modbus.settings import settings
from gateway.model import Charger, Inverter, Setpoints
from gateway.ports.sim_uart import SimUart

_LAG_EDGES_US = (1000, 2000, 3000, 5000, 10000, 20000, 50000)


class Lag:
    """Event-loop lag: how late a 1 ms sleep wakes up (histogram by _LAG_EDGES_US)."""

    def __init__(self):
        self.max_us = 0
        self.n = 0
        self.hist = [0] * (len(_LAG_EDGES_US) + 1)
        self.active = False  # measured only while a command lets the bus work (run, stop...)

    def reset(self):
        self.max_us = 0
        self.n = 0
        for i in range(len(self.hist)):
            self.hist[i] = 0

    async def run(self):
        edges = _LAG_EDGES_US
        while True:
            t = time.ticks_us()
            was = self.active
            await asyncio.sleep_ms(1)
            lag = time.ticks_diff(time.ticks_us(), t) - 1000
            if not (was and self.active):
                continue  # this driver's own JSON work (snapshots) is not the firmware's lag
            self.n += 1
            self.max_us = max(self.max_us, lag)
            i = 0
            while i < len(edges) and lag >= edges[i]:
                i += 1
            self.hist[i] += 1


def make_device(d, sp):
    kind = d["type"]
    cfg = d.get("cfg", {})
    if kind == "charger":
        from gateway.devices import charger as m

        rec = Charger()
        drv = m.RefCharger(settings(m.SCHEMA, cfg, "charger"), rec, sp)
    elif kind == "sunspec":
        from gateway.devices import sunspec as m

        rec = Inverter()
        drv = m.SunSpecInverter(settings(m.SCHEMA, cfg, "sunspec"), rec, sp)
    elif kind == "solax":
        from gateway.devices import solax as m

        rec = Inverter()
        drv = m.SolaxHybrid(settings(m.SCHEMA, cfg, "solax"), rec, sp)
    else:
        raise ValueError("unknown device type " + kind)
    return drv


def rec_dict(rec):
    out = {}
    for k in dir(rec):
        if not k.startswith("_"):
            v = getattr(rec, k)
            if isinstance(v, (int, bool)):
                out[k] = v
    return out


def snapshot(bus, devs, lag):
    out = {"transactions": bus.transactions, "errors": bus.errors, "retries": bus.retries,
           "exceptions": bus.exceptions, "resyncs": bus.link.resyncs, "frames": bus.link.frames,
           "discarded": bus.link.discarded, "busy_us_max": bus.busy_us_max, "step_us_max": bus.step_us_max,
           "timeout_cost_us_max": bus.timeout_cost_us_max, "stop_state": bus.stop_state,
           "hold": bus.hold, "lag_us_max": lag.max_us, "lag_hist": lag.hist,
           "lag_n": lag.n, "devices": {}}
    for name, drv in devs.items():
        h = drv.health
        out["devices"][name] = {
            "rec": rec_dict(drv.rec),
            "health": {"online": h.online, "ok": h.ok, "timeouts": h.timeouts, "crc": h.crc,
                       "exceptions": h.exceptions, "unexpected": h.unexpected,
                       "malformed": h.malformed, "last_exception": h.last_exception},
            "stale": drv.stale, "need_init": drv.need_init,
            "info": drv.info() if hasattr(drv, "info") else {},
        }
    return out


async def command(cmd, bus, devs, sp, lag, clock):
    op = cmd["op"]
    if op == "read":
        st = await bus.transact(cmd["unit"], cmd["fn"], cmd["start"], cmd["count"])
        regs = list(bus.adhoc_regs[: cmd["count"]]) if st == 0 else []
        return {"status": st, "regs": regs, "error": type(rtu.error(st)).__name__}
    if op == "write":
        v = cmd["values"]
        fn = cmd.get("fn", rtu.FC_WRITE_SINGLE if len(v) == 1 else rtu.FC_WRITE_MULTIPLE)
        st = await bus.transact(cmd["unit"], fn, cmd["start"], len(v), v)
        return {"status": st, "error": type(rtu.error(st)).__name__}
    if op == "hammer":  # n one-off reads back to back (fuzzing): outcome counts by status
        hist = {}
        for _ in range(cmd["n"]):
            st = await bus.transact(cmd["unit"], cmd["fn"], cmd["start"], cmd["count"])
            hist[st] = hist.get(st, 0) + 1
        return {"statuses": hist}
    if op == "run":
        await asyncio.sleep_ms(cmd["ms"])
        lag.active = False
        return snapshot(bus, devs, lag)
    if op == "setpoints":
        for k in ("ev_w", "ev_session", "export_limit_w", "batt_w"):
            if k in cmd:
                setattr(sp, k, cmd[k])
        return {}
    if op == "snapshot":
        return snapshot(bus, devs, lag)
    if op == "reset":  # zero the maxima (after warm-up)
        lag.reset()
        bus.busy_us_max = 0
        bus.step_us_max = 0
        bus.timeout_cost_us_max = 0
        return {}
    if op == "stop":
        t0 = clock.now_ms()
        q = bus.req
        inflight = {"busy": bus._busy, "unit": q.unit, "fn": q.fn, "count": q.count,
                    "level": q.level, "tx_bytes": bus.link.txn}
        bus.submit_stop(t0)
        while bus.stop_state != STOP_CONFIRMED and ticks_diff(clock.now_ms(), t0) < cmd.get(
                "max_ms", 2000):
            await asyncio.sleep_ms(1)
        acks = {}
        for name, drv in devs.items():
            acks[name] = ticks_diff(drv.stop_ack_ms, t0) if drv.stop_acked else -1
        conf = ticks_diff(bus.stop_confirmed_ms, t0) if bus.stop_state == STOP_CONFIRMED else -1
        return {"confirmed_ms": conf, "ack_ms": acks, "inflight": inflight}
    if op == "stop_during_write":  # a stop while a setpoint write is in flight or retried
        drv = devs[cmd.get("dev", "ev")]
        want = cmd["ev_w"] & 0xFFFF
        sp.ev_w = cmd["ev_w"]
        q = bus.req
        t0 = clock.now_ms()
        while not (bus._busy and q.owner is drv and q.fn == rtu.FC_WRITE_SINGLE
                   and q.values[0] == want and bus.link.state >= 2):  # _TX or _RX
            if ticks_diff(clock.now_ms(), t0) > cmd.get("max_ms", 2000):
                raise RuntimeError("the setpoint write never went out")
            await asyncio.sleep_ms(0)
        tw = clock.now_ms()
        while ticks_diff(clock.now_ms(), tw) < cmd.get("delay_ms", 0):
            await asyncio.sleep_ms(1)
        inflight = {"busy": bus._busy, "fn": q.fn, "value": q.values[0],
                    "tries_left": bus._tries, "since_write_ms": ticks_diff(clock.now_ms(), tw)}
        frames0 = bus.link.frames
        t0 = clock.now_ms()
        bus.submit_stop(t0)
        while bus.stop_state != STOP_CONFIRMED and ticks_diff(clock.now_ms(), t0) < cmd.get(
                "max_ms", 2000):
            await asyncio.sleep_ms(1)
        ack = ticks_diff(drv.stop_ack_ms, t0) if drv.stop_acked else -1
        conf = ticks_diff(bus.stop_confirmed_ms, t0) if bus.stop_state == STOP_CONFIRMED else -1
        await asyncio.sleep_ms(cmd.get("hold_ms", 0))
        return {"ack_ms": ack, "confirmed_ms": conf, "inflight": inflight,
                "frames_at_stop": frames0, "frames_end": bus.link.frames}
    if op == "release":
        bus.release_stop()
        return {}
    if op == "until_offline":
        drv = devs[cmd["dev"]]
        t0 = clock.now_ms()
        while drv.online and ticks_diff(clock.now_ms(), t0) < cmd.get("max_ms", 10000):
            await asyncio.sleep_ms(2)
        return {"ms": ticks_diff(clock.now_ms(), t0), "online": drv.online,
                "rec_online": drv.rec.online}
    if op == "heap_lock":  # drive bus.step() directly under heap_lock: any allocation raises
        import micropython
        from gateway.clock import TICKS_MAX

        t0 = clock.now_ms()
        n0 = bus.transactions
        micropython.heap_lock()
        try:
            if cmd.get("stop"):
                bus.submit_stop(t0)
            while ticks_diff(clock.now_ms(), t0) < cmd["ms"]:
                ms = bus.step(clock.now_ms(), time.ticks_us() & TICKS_MAX)
                time.sleep_ms(ms)
        finally:
            micropython.heap_unlock()
        return {"transactions": bus.transactions - n0, "stop_state": bus.stop_state}
    if op == "alloc":
        gc.collect()
        gc.disable()
        n0 = bus.transactions
        a0 = gc.mem_alloc()
        await asyncio.sleep_ms(cmd["ms"])
        a1 = gc.mem_alloc()
        n1 = bus.transactions
        gc.enable()
        return {"bytes": a1 - a0, "transactions": n1 - n0}
    raise ValueError("unknown op " + op)


async def main(setup):
    uart = SimUart(setup["path"], setup.get("baud", 9600), setup.get("parity", "E"),
                   setup.get("stop", 1))
    clock = Clock()
    bus = Bus(uart, setup.get("bus", {}), clock)
    sp = Setpoints()
    devs = {}
    for d in setup.get("devices", ()):
        devs[d.get("name", d["type"])] = bus.add(make_device(d, sp))
    lag = Lag()
    tasks = [asyncio.create_task(bus.run()), asyncio.create_task(lag.run())]
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    gc.collect()
    print("R " + json.dumps({"ready": True, "heap_alloc": gc.mem_alloc(), "heap_free": gc.mem_free()}))
    while True:
        ready = False
        for _obj, _ev in poller.ipoll(0):  # ipoll: no allocation while idle
            ready = True
        if not ready:
            await asyncio.sleep_ms(5)
            continue
        line = sys.stdin.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            lag.active = cmd["op"] in ("run", "stop", "alloc", "hammer", "until_offline")
            res = await command(cmd, bus, devs, sp, lag, clock)
        except Exception as e:  # noqa: BLE001 - reported to the host side
            lag.active = False
            sys.print_exception(e)
            res = {"failed": repr(e)}
        lag.active = False
        print("R " + json.dumps(res))
    for t in tasks:
        t.cancel()
    print("R " + json.dumps({"bye": True, "exceptions": bus.exceptions}))


asyncio.run(main(json.loads(sys.stdin.readline())))
