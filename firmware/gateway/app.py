# The running gateway: records, the safe state and the control-cycle services.
#
# Data flows one way per cycle: metering fills Meter, the bus task fills Charger
# and Inverter, safety judges (Permits, the interlock), control decides
# (Setpoints), the bus task writes them. Telemetry and the console only read
# these records and submit validated requests. gateway.wiring.build() builds a
# Gateway together with the bus, telemetry and the console; this module never
# imports gateway.wiring. Entry: gateway.wiring.main() (firmware/main.py).
import gc

import asyncio
from gateway.clock import ticks_diff
from gateway.control import Controller
from gateway.log import Log
from gateway.modbus.bus import STOP_CONFIRMED, STOP_PENDING
from gateway.model import Charger, Counters, Inverter, Lag, Meter, Permits, Setpoints
from gateway.plan import Planner, wall_s
from gateway.safety import (
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_TASK,
    REASON_NAMES,
    STATE_FAULT,
    STATE_NAMES,
    Safety,
)
from gateway.supervisor import Supervisor
from gateway.tariff import Tariff, TariffError

_RECOVERABLE = (REASON_FAULT_EXCEPTION, REASON_FAULT_TASK)

SCHEMA = {
    "safety_tick_ms": (20, 5, 200),  # safety tick period
    "fault_quiet_ms": (10000, 1000, 3600000),  # clean running before an exception fault clears
    "watchdog_silence_ms": (2000, 500, 60000),  # a critical task silent this long: not fed
    "console": (True, None, None),  # serial console on the REPL UART / stdin
}


def largest_free_block():
    """The biggest bytearray the heap can still hold (fragmentation), in bytes, by a
    binary search of trial allocations in 16-byte steps; -1 where the runtime has no
    gc.mem_free (CPython). Allocates: called once, when the gateway stops."""
    if not hasattr(gc, "mem_free"):
        return -1
    gc.collect()
    lo, hi = 0, gc.mem_free()
    while hi - lo > 16:
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
        except MemoryError:
            hi = mid
            continue
        b = None  # noqa: F841 - dropped before the next try
        gc.collect()
        lo = mid
    return lo

class Gateway:
    """Everything one running gateway owns. The safety task alone energises the
    interlock; the contact IRQ and the safe-state path can only de-energise it.

    config: the validated gateway.config.Config (see gateway.wiring.build, which
    builds a whole gateway: use it rather than this class directly).
    """

    def __init__(self, board, config, out=print):
        self.board = board
        self.clock = board.clock
        self.out = out
        self.meter = Meter()
        self.charger = Charger()
        self.inverter = Inverter()
        self.permits = Permits()
        self.setpoints = Setpoints()
        self.counters = Counters()
        self.log = Log(40, self.clock, echo=self._echo)
        self.safety = None
        self.bus = None  # the services gateway.wiring.build() adds: the RS-485 bus, ...
        self.client = None  # ... the MQTT client, telemetry, the console and their context
        self.telemetry = None
        self.console = None
        self.view = None
        self.stopping = False
        self.lag = Lag()  # event-loop lag, measured by monitor()
        self.heap_peak_bytes = 0
        self.heap_live_bytes = 0  # after the last once-a-second collection
        self.heap_min_free_bytes = -1  # -1: not measured yet
        self.heap_largest_free_bytes = -1  # measured once, when the gateway stops
        self.safe_reason = "boot"
        self._stop_seq = 0
        self.extra_services = []  # (name, factory): tests and optional services
        self.sup = Supervisor(self.clock, self.safe_state, self.log.error)
        self.safe_state("boot")  # the very first thing: export blocked, no setpoints
        self.config = config
        config.busy = self.flash_busy  # saving waits for a moment a flash write may stall
        data = config.data
        a = data["app"]
        self.safety_tick_ms = a["safety_tick_ms"]
        self.fault_quiet_ms = a["fault_quiet_ms"]
        inv = self.inverter if data["inverter"]["kind"] != "none" else None
        self.safety = Safety(data["safety"], self.meter, self.charger, inv, self.permits)
        if config.fault:  # any section that failed: never a silently different behaviour
            self.safety.config_fault(config.fault)
        if self.safety.config_error:
            self.log.error("config: %s: failed sections at defaults, FAULT latched (export"
                           " blocked)" % self.safety.config_error)
        self.control = Controller(data["control"])
        self._init_plan(data)

    def _init_plan(self, data):
        """The price schedule (config, then the retained MQTT topic) and the planner."""
        self.tariff = Tariff()
        sched = data.get("tariff", {}).get("schedule")
        if sched:
            try:
                self.tariff.load_json(sched)
            except TariffError as e:
                self.log.error("config: %s (no schedule)" % e)
        self.planner = Planner(data.get("plan"), self.tariff)

    def _echo(self, level, msg):
        self.out("[%d] %s %s" % (self.clock.now_ms(), level, msg))

    # --- the safe state ----------------------------------------------------------
    def safe_state(self, reason):
        """Interlock de-energised, every setpoint 0, permits withdrawn. Never raises."""
        try:
            self.board.set_interlock(False)
        except Exception:  # noqa: BLE001 - nothing may stop the rest of the safe state
            pass
        s = self.safety
        if s is not None and reason not in ("stop", "exit", "ctrl-c"):
            try:
                s.enter_fault(REASON_FAULT_TASK if reason.startswith("stalled")
                              else REASON_FAULT_EXCEPTION, self.clock.now_ms())
            except Exception:  # noqa: BLE001
                pass
        p = self.permits
        p.export = p.discharge = p.charge = p.island = False
        p.limit_w = 0
        sp = self.setpoints
        sp.ev_w = sp.batt_w = sp.export_limit_w = 0
        sp.ev_session = False
        self.safe_reason = reason

    def on_contact(self, position):
        """Contact edge (IRQ context): de-energise first, then tell safety. No allocation."""
        self.board.set_interlock(False)
        self.permits.export = False
        s = self.safety
        now = self.clock.now_ms()
        if s is not None:
            s.contact_edge(now, position)
        b = self.bus
        if b is not None:  # queue the Modbus stop now rather than at the next safety tick
            b.submit_stop(now)

    # --- safety ----------------------------------------------------------------------
    async def safety_service(self):
        """The safety tick: judge, drive the interlock, request and confirm stops."""
        s = self.safety
        board = self.board
        clock = self.clock
        period = self.safety_tick_ms
        sent = 0
        shown = -1
        shown_reason = -1
        while not self.stopping:
            now = clock.now_ms()
            state = s.tick(now, board.contact())
            seq = s.n_edges
            board.set_interlock(s.interlock_on)
            if s.n_edges != seq:  # an edge landed between the read and the write
                board.set_interlock(False)
            if not s.stop_needed and self.bus is not None and self.bus.hold:
                self.bus.release_stop()  # permitted again: the drivers may follow setpoints
            if s.stop_needed:
                if s.stop_seq != sent:
                    sent = s.stop_seq
                    self.request_stop(sent)
                if self.stop_done(sent):
                    s.stop_confirmed(clock.now_ms(), sent)
            self.sup.progress("safety")
            if state == STATE_FAULT and s.fault_reason in _RECOVERABLE and \
                    self.sup.quiet_for(now, self.fault_quiet_ms):
                # The failed service has run cleanly since: release the latch; the full
                # reconnection delay still has to pass before anything is permitted.
                if s.clear_fault(now):
                    self.log.info("safety: fault cleared after %d ms without failures"
                                  % self.fault_quiet_ms)
            if state != shown or s.reason != shown_reason:
                shown = state
                shown_reason = s.reason
                self._show_safety()
            await asyncio.sleep_ms(period)

    def request_stop(self, seq):
        """Top-priority stop to every device: every power setpoint 0 (car, home battery,
        export limit); the bus holds its devices there until the stop is released."""
        sp = self.setpoints
        sp.ev_w = 0
        sp.batt_w = 0
        sp.export_limit_w = 0
        self._stop_seq = seq
        b = self.bus
        if b is not None and b.stop_state != STOP_PENDING:  # pending: its drivers keep at it
            b.submit_stop(self.clock.now_ms())

    def stop_done(self, seq):
        """True once every device read back its safe values for stop `seq`. Without a bus
        nothing can run, but nothing confirms either: the stop stays pending (blocked)."""
        b = self.bus
        return b is not None and seq == self._stop_seq and b.stop_state == STOP_CONFIRMED

    def _show_safety(self):
        s = self.safety
        name = STATE_NAMES[s.state].upper()
        why = REASON_NAMES.get(s.reason, str(s.reason))
        self.log.info("safety: %s (%s); interlock %s" % (
            name, why, "ON: export permitted" if s.interlock_on else "off: export blocked"))
        self.board.report("safety", "%s(%s)" % (name, why))

    # --- control and metering ----------------------------------------------------------
    async def control_service(self):
        """One control step per metering window (or per period when the meter is late)."""
        ctrl = self.control
        clock = self.clock
        meter = self.meter
        cnt = self.counters
        period = ctrl.period_ms
        seen = meter.seq
        t_last = clock.now_ms()
        while not self.stopping:
            now = clock.now_ms()
            dt = ticks_diff(now, t_last)
            if meter.seq != seen or dt >= period:
                seen = meter.seq
                t_last = now
                ctrl.step(now, meter, self.charger, self.inverter, self.permits,
                          self.setpoints)
                cnt.charger_starts = ctrl.starts
                if meter.valid:
                    cnt.add_energy(meter.grid_w, self.charger.power_w, self.inverter.pv_w, dt)
                self.sup.progress("control")
            await asyncio.sleep_ms(10)

    async def plan_service(self):
        """Once a second: the planner with the wall clock (idle until the clock is set)."""
        pl = self.planner
        while not self.stopping:
            now_s, tod_s = wall_s(pl.cfg["utc_offset_min"])  # live: read each time
            if now_s >= 0:
                pl.update(now_s, tod_s, self.control, self.meter, self.charger,
                          self.inverter)
            await asyncio.sleep_ms(1000)

    async def metering_service(self):
        from gateway.metering import service

        an = self.board.analog
        await service.run(an, self.meter, an.cfg, self.clock, on_window=self.on_meter)

    def on_meter(self, now):
        """Right after each metering window: while export is permitted, an invalid window
        (no voltage reference, no zero crossings, CT open, clipped) de-energises the
        interlock and queues the Modbus stop at once, like a contact edge; the safety tick
        that follows judges the same window and latches the block. No allocation."""
        if self.meter.valid or not self.permits.export:
            return
        self.board.set_interlock(False)
        self.permits.export = False
        b = self.bus
        if b is not None:
            b.submit_stop(now)

    def apply_settings(self, changes):
        """Changes accepted by the console or MQTT (already validated): each LIVE key to
        the module that uses it (telemetry and commands read their live section dict
        themselves); any other key takes effect at the next start."""
        cfg = self.config
        for sec, key, value in changes:
            if not cfg.is_live(sec, key):
                continue
            if sec == "control":
                self.control.apply_setting(key, value)
            elif sec == "safety":
                self.safety.apply_setting(key, value)
            elif sec == "plan":
                self.planner.apply_setting(key, value)

    def flash_busy(self):
        """True while a config write must wait. A flash page write stalls the ESP32's
        interpreter ~80 ms (community-measured, not measured here): the contact IRQ's
        Python handler (interlock drop, stop request) waits for the flash operation in
        progress, the safety tick for the whole save. So no write during island backup or
        while the car discharges (set or measured); charging or idle in NORMAL is a moment
        that comes within seconds. The hardware interlock on the contact and the
        inverter's certified protection are not delayed (docs/telemetry.md)."""
        return self.permits.island or self.setpoints.ev_w < 0 or self.charger.power_w < 0

    def stop_now(self):
        """The 'stop now' button: no charging, no discharging, until a mode is chosen."""
        self.config.set("control.mode", "off")
        self.log.warning("stop now: control mode off")

    # --- supervision ---------------------------------------------------------------------
    async def monitor(self, period_ms=10):
        """Event-loop lag (how late a 10 ms sleep wakes) and heap high-water mark,
        reported to the board once a second (the simulator logs them)."""
        clock = self.clock
        last_report = clock.now_ms()
        while True:
            t0 = clock.now_ms()
            await asyncio.sleep_ms(period_ms)
            now = clock.now_ms()
            self.lag.add(ticks_diff(now, t0) - period_ms)
            if ticks_diff(now, last_report) >= 1000:
                last_report = now
                gc.collect()  # the chosen point of each second: what stays is live data
                self.heap_live_bytes = gc.mem_alloc()
                self.heap_peak_bytes = max(self.heap_peak_bytes, self.heap_live_bytes)
                free = gc.mem_free()
                if self.heap_min_free_bytes < 0 or free < self.heap_min_free_bytes:
                    self.heap_min_free_bytes = free
                self.board.report("stats", self.stats_line())

    def stats_line(self):
        c = self.counters
        b = self.bus
        if b is not None:
            c.modbus_ok = b.transactions - b.errors
            c.modbus_errors = b.errors
        return ("lag_ms=%d heap=%d heap_peak=%d heap_free_min=%d heap_largest_free=%d "
                "exceptions=%d mb_tx=%d mb_err=%d mqtt_drops=%d" % (
                    self.lag.max_ms, self.heap_live_bytes, self.heap_peak_bytes,
                    self.heap_min_free_bytes,
                    self.heap_largest_free_bytes, self.exceptions(),
                    c.modbus_ok + c.modbus_errors, c.modbus_errors, c.mqtt_drops))

    def exceptions(self):
        n = 0
        for v in self.sup.failures.values():
            n += v
        return n

    async def watch_stop(self, duration_ms):
        t0 = self.clock.now_ms()
        while not self.stopping:
            if getattr(self.board, "stop_requested", False):
                break
            if duration_ms is not None and ticks_diff(self.clock.now_ms(), t0) >= duration_ms:
                break
            await asyncio.sleep_ms(50)
        self.stopping = True

    def _on_stall(self, name):
        self.safe_state("stalled " + name)
        self.log.error("watchdog: %s made no progress; not feeding" % name)

    async def run(self, duration_ms=None):
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(self.sup.loop_exception_handler)
        sup = self.sup
        silence = self.config.data["app"]["watchdog_silence_ms"]
        sup.critical("safety", silence)
        sup.critical("control", silence)
        self.board.watchdog_start(self.board.spec.get("watchdog_ms", 5000))
        services = [("safety", self.safety_service), ("control", self.control_service),
                    ("monitor", self.monitor), ("plan", self.plan_service)]
        if self.board.analog is not None:
            services.append(("metering", self.metering_service))
        tasks = [asyncio.create_task(sup.supervise(n, f)) for n, f in services]
        tasks.append(asyncio.create_task(sup.feed_watchdog(self.board, 500, self._on_stall)))
        for coro in self.board.tasks():
            tasks.append(asyncio.create_task(coro))
        for name, factory in self.extra_services:
            tasks.append(asyncio.create_task(sup.supervise(name, factory)))
        try:
            await self.watch_stop(duration_ms)
        finally:
            self.safe_state("stop")
            self.heap_largest_free_bytes = largest_free_block()
            self.board.report("stats", self.stats_line())
            for t in tasks:
                t.cancel()
            await asyncio.sleep_ms(0)
            loop.set_exception_handler(None)  # the loop outlives this gateway
