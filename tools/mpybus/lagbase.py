# Event-loop lag of an idle MicroPython asyncio loop (nothing but this monitor): the host's own
# scheduling noise, to read tools/bench-bus loop_lag_ms_max against. Prints max and count > 2 ms.
import asyncio
import sys
import time


async def main(ms):
    mx = 0
    n = 0
    over = 0
    t_end = time.ticks_add(time.ticks_ms(), ms)
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        t = time.ticks_us()
        await asyncio.sleep_ms(1)
        lag = time.ticks_diff(time.ticks_us(), t) - 1000
        n += 1
        mx = max(mx, lag)
        if lag > 2000:
            over += 1
    print(f"{mx} {n} {over}")


asyncio.run(main(int(sys.argv[1])))
