# Entry logic shared by the board and the unix port: load the board and the
# configuration, enter the safe state FIRST, then start the supervised services.
#
# Environment (unix port; on the board the defaults are files on flash):
#   GATEWAY_BOARD       board file (default boards/sim.json on the host, /board.json on flash)
#   GATEWAY_CONFIG      configuration file (default config.json in the board's storage)
#   GATEWAY_DURATION_S  stop cleanly after this many seconds (default: run until stopped)
import gc
import os
import sys

import asyncio
import gateway
from gateway import ports
from gateway.clock import ticks_diff
from gateway.model import Charger, Inverter, Meter, Permits, Setpoints
from gateway.safety import (
    REASON_FAULT_EXCEPTION,
    REASON_FAULT_TASK,
    STATE_FAULT,
)
from gateway.supervisor import Supervisor

_RECOVERABLE = (REASON_FAULT_EXCEPTION, REASON_FAULT_TASK)


def _default_board_path():
    # On flash the board file sits at the root; on the host, runs start in the repository.
    return "/board.json" if sys.platform == "esp32" else "boards/sim.json"


class Gateway:
    """Everything one running gateway owns. Services only read records and
    submit requests; the safety task alone drives the interlock (besides the
    contact IRQ and the safe-state path, which can only de-energise it)."""

    def __init__(self, board, cfg=None, out=print):
        self.board = board
        self.clock = board.clock
        self.cfg = cfg or {}
        self.out = out
        self.meter = Meter()
        self.charger = Charger()
        self.inverter = Inverter()
        self.permits = Permits()
        self.setpoints = Setpoints()
        self.stopping = False
        self.loop_lag_ms_max = 0
        self.heap_peak_bytes = 0
        self.log_lines = []
        self.sup = Supervisor(self.clock, self.safe_state, self.log)
        self.extra_services = []  # (name, factory) added by tests or later issues
        self.safety = None
        self.bus = None
        self._reason_shown = -1
        self.safe_state("boot")  # the very first thing: export blocked, no setpoints
        sections = self.cfg
        self.safety_tick_ms = sections.get("app", {}).get("safety_tick_ms", 20)
        self.fault_quiet_ms = sections.get("app", {}).get("fault_quiet_ms", 10000)
        from gateway.safety import Safety

        self.safety = Safety(sections.get("safety"), self.meter, None, None, self.permits)
        from gateway.control import Controller

        try:
            self.control = Controller(sections.get("control"))
        except ValueError as e:
            self.log("config: control settings invalid (%s): defaults, mode off" % e)
            self.control = Controller({"mode": "off"})
        if self.safety.config_error:
            self.log("config: safety settings invalid (%s): defaults loaded, FAULT latched"
                     % self.safety.config_error)

    # --- logging -----------------------------------------------------------------
    def log(self, msg):
        line = "[%d] %s" % (self.clock.now_ms(), msg)
        self.log_lines.append(line)
        if len(self.log_lines) > 50:
            self.log_lines.pop(0)
        self.out(line)

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
        s = self.setpoints
        s.ev_w = s.batt_w = s.export_limit_w = 0
        s.ev_session = False
        self.safe_reason = reason

    def on_contact(self, position):
        """Contact edge (IRQ context): de-energise first, then tell safety. No allocation."""
        self.board.set_interlock(False)
        self.permits.export = False
        s = self.safety
        if s is not None:
            s.contact_edge(self.clock.now_ms(), position)

    # --- services ------------------------------------------------------------------
    async def safety_service(self):
        """The safety tick: judge, drive the interlock, request and confirm stops."""
        s = self.safety
        board = self.board
        clock = self.clock
        period = self.safety_tick_ms
        sent = 0
        shown = -1
        while not self.stopping:
            now = clock.now_ms()
            state = s.tick(now, board.contact())
            seq = s.n_edges
            board.set_interlock(s.interlock_on)
            if s.n_edges != seq:  # an edge landed between the read and the write
                board.set_interlock(False)
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
                    self.log("safety: fault cleared after %d ms without failures"
                             % self.fault_quiet_ms)
            if state != shown or self._reason_shown != s.reason:
                shown = state
                self._reason_shown = s.reason
                self._show_safety()
            await asyncio.sleep_ms(period)

    def request_stop(self, seq):
        """Top-priority stop to every device (charger discharge 0, export limit 0)."""
        self.setpoints.ev_w = 0
        self.setpoints.export_limit_w = 0
        if self.bus is not None:
            self.bus.urgent_stop(seq)

    def stop_done(self, seq):
        """True once every device read back its safe values for stop `seq`."""
        return True if self.bus is None else self.bus.stop_confirmed(seq)

    def _show_safety(self):
        from gateway import safety

        s = self.safety
        name = safety.STATE_NAMES[s.state].upper()
        why = safety.REASON_NAMES.get(s.reason, str(s.reason))
        self.log("safety: %s (%s); interlock %s" % (
            name, why, "ON: export permitted" if s.interlock_on else "off: export blocked"))
        self.board.report("safety", "%s(%s)" % (name, why))

    async def control_service(self):
        """One control step per metering window (or per period when the meter is late)."""
        ctrl = self.control
        clock = self.clock
        meter = self.meter
        period = ctrl.period_ms
        seen = meter.seq
        t_last = clock.now_ms()
        while not self.stopping:
            now = clock.now_ms()
            if meter.seq != seen or ticks_diff(now, t_last) >= period:
                seen = meter.seq
                t_last = now
                ctrl.step(now, meter, self.charger, self.inverter, self.permits,
                          self.setpoints)
                self.sup.progress("control")
            await asyncio.sleep_ms(10)

    async def metering_service(self):
        from gateway.metering import config as mcfg
        from gateway.metering import service

        an = self.board.analog
        await service.run(an, self.meter, an.cfg if hasattr(an, "cfg") else
                          mcfg.validate(self.board.spec["analog"]), self.clock)

    async def monitor(self, period_ms=10):
        """Event-loop lag (how late a 10 ms sleep wakes) and heap high-water mark,
        reported to the board once a second (the simulator logs them)."""
        clock = self.clock
        last_report = clock.now_ms()
        while True:
            t0 = clock.now_ms()
            await asyncio.sleep_ms(period_ms)
            now = clock.now_ms()
            lag = ticks_diff(now, t0) - period_ms
            self.loop_lag_ms_max = max(self.loop_lag_ms_max, lag)
            used = gc.mem_alloc()
            self.heap_peak_bytes = max(self.heap_peak_bytes, used)
            if ticks_diff(now, last_report) >= 1000:
                last_report = now
                self.board.report("stats", self.stats_line())

    def stats_line(self):
        return "lag_ms=%d heap_peak=%d exceptions=%d" % (
            self.loop_lag_ms_max, self.heap_peak_bytes, self.exceptions())

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

    async def run(self, duration_ms=None):
        loop = asyncio.get_event_loop()
        loop.set_exception_handler(self.sup.loop_exception_handler)
        sup = self.sup
        app_cfg = self.cfg.get("app", {})
        sup.critical("safety", app_cfg.get("watchdog_silence_ms", 2000))
        self.board.watchdog_start(self.board.spec.get("watchdog_ms", 5000))
        tasks = [asyncio.create_task(sup.supervise("safety", self.safety_service)),
                 asyncio.create_task(sup.feed_watchdog(self.board, 500, self._on_stall)),
                 asyncio.create_task(sup.supervise("monitor", self.monitor))]
        sup.critical("control", app_cfg.get("watchdog_silence_ms", 2000))
        tasks.append(asyncio.create_task(sup.supervise("control", self.control_service)))
        if self.board.analog is not None:
            tasks.append(asyncio.create_task(sup.supervise("metering", self.metering_service)))
        for coro in self.board.tasks():
            tasks.append(asyncio.create_task(coro))
        for name, factory in self.extra_services:
            tasks.append(asyncio.create_task(sup.supervise(name, factory)))
        try:
            await self.watch_stop(duration_ms)
        finally:
            self.safe_state("stop")
            self.board.report("stats", self.stats_line())
            for t in tasks:
                t.cancel()
            await asyncio.sleep_ms(0)
            loop.set_exception_handler(None)  # the loop outlives this gateway

    def _on_stall(self, name):
        self.safe_state("stalled " + name)
        self.log("watchdog: %s made no progress; not feeding" % name)


def _load_config(board):
    """Interim loader: the JSON file named by GATEWAY_CONFIG (or config.json in storage)."""
    import json

    path = (os.getenv("GATEWAY_CONFIG") if hasattr(os, "getenv") else None) or \
        ((board.storage + "/") if board.storage else "") + "config.json"
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return {}
    except ValueError as e:
        print("config: %s is not valid JSON (%s): defaults, safe state" % (path, e))
        return {}


def main():
    if hasattr(sys, "platform") and sys.platform == "esp32":
        import micropython

        micropython.alloc_emergency_exception_buf(100)
    path = os.getenv("GATEWAY_BOARD") if hasattr(os, "getenv") else None
    path = path or _default_board_path()
    spec = ports.load_spec(path)
    board = ports.open_board(spec)
    board.set_interlock(False)
    dur = os.getenv("GATEWAY_DURATION_S") if hasattr(os, "getenv") else None
    duration_ms = int(float(dur) * 1000) if dur else None
    gw = Gateway(board, _load_config(board))
    board.contact_irq(gw.on_contact)
    gw.log("gateway %s on board %s (%s), reset cause %s" % (
        gateway.VERSION, board.name, spec["port"], board.reset_cause()))
    gw.log("SAFE STATE: interlock de-energised (export blocked), charger 0 W, "
           "inverter export limit 0 W")
    gc.collect()
    try:
        asyncio.run(gw.run(duration_ms))
    except KeyboardInterrupt:
        gw.safe_state("ctrl-c")
    finally:
        gw.safe_state("exit")
        board.close()
    gw.log("stopped in safe state: interlock %s" % ("ON" if board.interlock_on() else "off"))
    return 0
