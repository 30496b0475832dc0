# SNTP probe on the MicroPython unix port (run by tools/gwhost/benchfield.py).
# argv: PORT SYNCS [blocking]. Runs the firmware's Sntp against 127.0.0.1:PORT SYNCS
# times while a 10 ms monitor task measures event-loop lag; after each sync compares
# the SNTP wall clock with the host clock (time.time_ns, the clock chronyd serves).
# With "blocking" it instead measures the pattern micropython-lib's ntptime uses
# (settimeout(1) + recv) against a silent port. Prints one JSON line.
import json
import socket
import sys
import time

import asyncio
from gateway.clock import Clock, ticks_diff
from gateway.sntp import Sntp

EPOCH_2000_NS = 946684800 * 1000000000


def host_utc_ms():
    return (time.time_ns() - EPOCH_2000_NS) // 1000000


async def monitor(st):
    clock = st["clock"]
    while not st["done"]:
        t0 = clock.now_ms()
        await asyncio.sleep_ms(10)
        lag = ticks_diff(clock.now_ms(), t0) - 10
        st["lag"] = max(st["lag"], lag)


async def main(port, n):
    clock = Clock()
    cfg = {"server": "127.0.0.1", "port": port, "sync_s": 60, "retry_s": 1, "timeout_ms": 1500,
           "tz": "UTC0"}
    s = Sntp(cfg, clock)
    st = {"clock": clock, "done": False, "lag": 0}
    mon = asyncio.create_task(monitor(st))
    await asyncio.sleep_ms(50)
    addr = socket.getaddrinfo("127.0.0.1", port)[0][-1]
    errs = []
    offs = []
    rtts = []
    for i in range(n):
        await s.sync_once(addr)
        t = clock.now_ms()
        mine = s.wall.now_s(t) * 1000 + s.wall.now_ms_of_s(t)
        errs.append(mine - host_utc_ms())
        if i:
            offs.append(s.offset_ms)
        rtts.append(s.rtt_ms)
        await asyncio.sleep_ms(300)
    st["done"] = True
    await mon
    print(json.dumps({"syncs": s.syncs, "offsets_ms": offs, "errors_vs_host_ms": errs,
                      "rtt_ms": rtts, "loop_lag_ms_max": st["lag"]}))


def blocking(port):
    """The ntptime pattern: a blocking recv with a 1 s timeout; nothing answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    q = bytearray(48)
    q[0] = 0x1B
    t0 = time.ticks_ms()
    try:
        s.sendto(q, socket.getaddrinfo("127.0.0.1", port)[0][-1])
        s.recv(48)
    except OSError:
        pass
    s.close()
    print(json.dumps({"blocked_ms": time.ticks_diff(time.ticks_ms(), t0)}))


if len(sys.argv) > 3 and sys.argv[3] == "blocking":
    blocking(int(sys.argv[1]))
else:
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
