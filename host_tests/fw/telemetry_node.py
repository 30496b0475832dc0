# A gateway node for the live telemetry tests, run on the MicroPython unix port:
# the real config, MQTT client, telemetry, discovery, commands and console, with
# a stand-in control task that moves the shared records every 100 ms (the
# control, safety and bus services come from other parts of the firmware).
#
#   micropython -X heapsize=110k host_tests/fw/telemetry_node.py DIR [console]
#
# DIR holds config.json / secrets.json (created by the test). With "console"
# the serial console reads stdin. Every second one JSON line goes to stdout
# (stderr with the console): {"stats": {...}} with the loop lag and the heap.
import gc
import json
import sys

import asyncio
from gateway import commands, config, mqtt, plan, tariff, telemetry
from gateway.clock import Clock, ticks_diff
from gateway.console import Console
from gateway.log import Log
from gateway.model import Charger, Counters, Inverter, Meter, Permits, Setpoints

from gateway.control_cfg import LIVE as CONTROL_LIVE
from gateway.control_cfg import SCHEMA as CONTROL
from gateway.safety_cfg import SCHEMA as SAFETY


class Ctx:
    pass


def build(folder):
    ctx = Ctx()
    ctx.clock = Clock()
    ctx.log = Log(32, ctx.clock, lambda lv, m: print(lv, m, file=sys.stderr))
    schemas = {"mqtt": mqtt.SCHEMA, "telemetry": telemetry.SCHEMA, "commands": commands.SCHEMA,
               "control": CONTROL, "safety": SAFETY, "plan": plan.SCHEMA,
               "tariff": tariff.SCHEMA}
    ctx.config = config.Config(schemas, folder + "/config.json", folder + "/secrets.json",
                               ctx.log, live={"control": CONTROL_LIVE, "plan": plan.LIVE,
                                              "telemetry": telemetry.LIVE,
                                              "commands": commands.LIVE})
    ctx.config.load()
    ctx.meter, ctx.charger, ctx.inverter = Meter(), Charger(), Inverter()
    ctx.permits, ctx.setpoints, ctx.counters = Permits(), Setpoints(), Counters()
    ctx.lag = telemetry.LoopLag(ctx.clock, 20)
    ctx.stops = 0
    ctx.tariff = tariff.Tariff()  # the retained price topic lands here (state: "plan")
    ctx.planner = plan.Planner(ctx.config.data["plan"], ctx.tariff)

    def stop_now():
        ctx.stops += 1
        ctx.config.apply((("control", "mode", "off"),))

    ctx.tel = telemetry.Telemetry(ctx, "node1", "test", {"stop_now": stop_now})
    ctx.client = ctx.tel.client
    return ctx


async def control_standin(ctx):
    """Moves the records like a running gateway would (integers only)."""
    m, ch, inv, p = ctx.meter, ctx.charger, ctx.inverter, ctx.permits
    ch.online = inv.online = ch.plugged = True
    p.export = p.discharge = p.charge = True
    p.state = 1
    k = 0
    while True:
        await asyncio.sleep_ms(100)
        now = ctx.clock.now_ms()
        k = (k + 1) % 200
        tri = k if k < 100 else 200 - k  # 0..100..0 over 20 s
        m.grid_w = 20 * tri - 1000
        m.house_w = 800 + 5 * tri
        m.v_mv = 230000 + tri
        m.f_mhz = 50000 - tri
        m.valid = True
        m.t_ms = ch.t_ms = inv.t_ms = now
        m.seq += 1
        inv.pv_w = 3000 - 10 * tri
        ch.power_w = ctx.setpoints.ev_w = 1500 - 15 * tri
        ch.soc_pct = 50 + tri // 10
        ctx.counters.add_energy(m.grid_w, ch.power_w, inv.pv_w, 100)


async def stats(ctx, out):
    peak = 0
    t = ctx.clock.now_ms()
    while True:
        await asyncio.sleep_ms(10)
        a = gc.mem_alloc()
        peak = max(peak, a)
        now = ctx.clock.now_ms()
        if ticks_diff(now, t) >= 1000:
            t = now
            gc.collect()
            live = gc.mem_alloc()  # what stays allocated: code, records, buffers
            cl = ctx.client
            out(json.dumps({"stats": {
                "lag_max_ms": ctx.lag.max_ms, "heap_peak": peak, "heap_live": live,
                "heap_free": gc.mem_free(), "connected": cl.connected, "connects": cl.connects,
                "attempts": cl.attempts, "drops": cl.drops, "sent": cl.sent,
                "states": ctx.tel.states, "discovered": ctx.tel.discovered,
                "accepted": ctx.tel.commands.accepted, "rejected": ctx.tel.commands.rejected,
                "mode": ctx.config.data["control"]["mode"], "stops": ctx.stops,
                "safety": ctx.config.data["safety"], "cfg_source": ctx.config.source,
                "cfg_error": ctx.config.error, "mqtt_error": cl.last_error}}))


def _stats_out(with_console):
    if not with_console:
        return print
    return lambda s: print(s, file=sys.stderr)  # stdout belongs to the console


async def main(folder, with_console):
    gc.collect()
    boot = gc.mem_alloc()
    ctx = build(folder)
    gc.collect()
    print(json.dumps({"boot": {"heap_before": boot, "heap_after_build": gc.mem_alloc(),
                               "heap_total": gc.mem_alloc() + gc.mem_free()}}))
    tasks = [asyncio.create_task(ctx.lag.run()), asyncio.create_task(control_standin(ctx)),
             asyncio.create_task(stats(ctx, _stats_out(with_console))),
             asyncio.create_task(ctx.config.run(2000))]
    if with_console:
        tasks.append(asyncio.create_task(Console(ctx).run()))
    await ctx.tel.run()  # returns at once when MQTT is off
    await asyncio.Event().wait()  # the other tasks run on until the process is stopped


asyncio.run(main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "console"))
