# A gateway node for the live telemetry tests, run on the MicroPython unix port:
# the gateway as main.py builds it (gateway.wiring.build: the real config, MQTT
# client, telemetry, discovery, commands and console) on a sim board without a
# plant, with a stand-in control task that moves the shared records every 100 ms
# instead of the safety, control and bus services (the plant tests run those).
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
from gateway.clock import ticks_diff
from gateway.ports.sim import SimBoard
from gateway.wiring import build as build_gateway


def build(folder, with_console):
    board = SimBoard({"name": "node1", "port": "sim", "storage": folder})
    ctx = build_gateway(board, folder + "/config.json", console=with_console,
                        out=lambda s: print(s, file=sys.stderr))
    ctx.stops = 0
    ctx.tel = ctx.telemetry
    if ctx.tel is not None:
        stop = ctx.tel.actions["stop_now"]

        def stop_now():
            ctx.stops += 1
            stop()

        ctx.tel.actions["stop_now"] = stop_now
    return ctx


async def control_standin(ctx):
    """Moves the records like a running gateway would (integers only). The permits stay
    as the gateway built them (boot: blocked), so saving the config is never deferred."""
    m, ch, inv = ctx.meter, ctx.charger, ctx.inverter
    ch.online = inv.online = ch.plugged = True
    k = 0
    while True:
        await asyncio.sleep_ms(100)
        now = ctx.clock.now_ms()
        k = (k + 1) % 200
        tri = k if k < 100 else 200 - k  # 0..100..0 over 20 s
        m.grid_w = 20 * tri - 1000
        m.house_w = 800 + 5 * tri
        m.v_mv = 230000 + tri
        m.f_millihz = 50000 - tri
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
            tel = ctx.tel
            out(json.dumps({"stats": {
                "lag_max_ms": ctx.lag.max_ms, "heap_peak": peak, "heap_live": live,
                "heap_free": gc.mem_free(), "connected": cl and cl.connected,
                "connects": cl and cl.connects, "attempts": cl and cl.attempts,
                "drops": cl and cl.drops, "sent": cl and cl.sent,
                "states": tel and tel.states, "discovered": tel and tel.discovered,
                "received": cl and cl.received, "accepted": tel and tel.commands.accepted,
                "rejected": tel and tel.commands.rejected,
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
    ctx = build(folder, with_console)
    gc.collect()
    print(json.dumps({"boot": {"heap_before": boot, "heap_after_build": gc.mem_alloc(),
                               "heap_total": gc.mem_alloc() + gc.mem_free()}}))
    tasks = [asyncio.create_task(ctx.monitor()), asyncio.create_task(control_standin(ctx)),
             asyncio.create_task(stats(ctx, _stats_out(with_console))),
             asyncio.create_task(ctx.config.run(2000))]
    if ctx.console is not None:
        tasks.append(asyncio.create_task(ctx.console.run()))
    if ctx.tel is not None:
        await ctx.tel.run()
    await asyncio.Event().wait()  # the other tasks run on until the process is stopped


asyncio.run(main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "console"))
