"""The metering service: one window every ~200 ms into the shared Meter record.

    await run(frontend, meter, cfg, clock)        # cfg: config.validate(board["analog"])

For path "adc" it drives gateway.metering.adc.AdcMeter with the board's analog front end;
for path "atm90e32" it polls a gateway.metering.atm90e32.Atm90e32 (pass it as `frontend`)
every window period. It never holds the interpreter longer than one capture chunk
(about a half-cycle + 2 * lead_us, ~11-13 ms at 50 Hz) or the processing of one chunk: it
yields to asyncio after each capture and after each chunk's math, and it sleeps until
shortly before the zero crossing it wants to capture from. Between chunks it takes a ~1 ms
peak probe of each skipped half-cycle (judged at once, without a yield), so the voltage
reference is looked at every half-cycle; a capture without voltage is published at once.
On the ESP32 the capture loop is plain Python, so the contact's soft IRQ still runs
between two ADC reads; only asyncio tasks wait for the end of the chunk.

`window(meter_engine, frontend, meter, now_ms)` is the same loop without asyncio for
lockstep runs (virtual time: the front end's idle_us stands in for the sleeps).
"""

def window(eng, fe, meter, clock_ms):
    """One whole window synchronously (lockstep / benchmarks). clock_ms() -> ms tick."""
    eng.begin(fe.now_us())
    while not eng.done(fe.now_us()):
        wait = eng.plan(fe.now_us())
        if wait >= 1000:
            fe.idle_us((wait // 1000) * 1000)
            continue
        n = fe.capture(eng.bufs, eng.n_plan, eng.period_us)
        eng.feed(n, fe.t0_us, fe.dt_ns, fe.skew_ns)
    eng.finish(meter, clock_ms())


async def run(frontend, meter, cfg, clock, engine=None, on_window=None):
    """Forever: fill `meter` once per window. clock: gateway.clock.Clock (now_ms()).
    on_window(now_ms), when given, runs right after each window is published (the app's
    fast path: an invalid reference de-energises the interlock before the safety tick)."""
    import asyncio  # here: lockstep users of window() do not pay for it

    if cfg["path"] == "atm90e32":
        period = cfg["cycles"] * 1000 // cfg["nominal_hz"]
        while True:
            now = clock.now_ms()
            frontend.poll(meter, now)
            if on_window is not None:
                on_window(now)
            await asyncio.sleep_ms(period)
    if engine is None:
        from gateway.metering.adc import AdcMeter  # not loaded on an ATM90E32 board

        engine = AdcMeter(cfg)
    eng = engine
    fe = frontend
    while True:
        eng.begin(fe.now_us())
        while not eng.done(fe.now_us()):
            wait = eng.plan(fe.now_us())
            if wait >= 1000:
                await asyncio.sleep_ms(wait // 1000)
                continue
            probe = eng.probing
            n = fe.capture(eng.bufs, eng.n_plan, eng.period_us)
            # The capture held the loop: let others run before the chunk's math, unless
            # it is a probe (~1 ms) or the voltage is gone (published without a turn).
            if not probe and not eng.volt_lost(n):
                await asyncio.sleep_ms(0)
            eng.feed(n, fe.t0_us, fe.dt_ns, fe.skew_ns)
            if not eng.lost():
                await asyncio.sleep_ms(0)
        now = clock.now_ms()
        if eng.finish(meter, now) and on_window is not None:
            on_window(now)
        await asyncio.sleep_ms(0)  # a lost voltage ended the window without a turn
