# Safety supervisor: export is blocked the moment any evidence says the grid may
# be gone, backup runs only on a confirmed island, release is slow, and any doubt
# (boot, stale data, offline devices, bad settings, exceptions) fails closed.
#
# Pure core: no I/O, no clock reads (now_ms is a 30-bit tick compared only with
# clock.ticks_diff), small ints only, state preallocated, zero allocation per
# tick(), contact_edge() and stop_confirmed(). The design, the evidence table and
# the limits are in docs/safety.md. This is the second layer behind the certified
# inverter protection and a hardware interlock wired to the same contact.
#
# Per safety tick (the app):   st = s.tick(now_ms, board.contact())
#   then drive the interlock output from s.interlock_on, and while s.stop_needed
#   send top-priority stop commands once per new s.stop_seq; when the devices
#   read back zero export/discharge: s.stop_confirmed(now_ms, seq_sent).
# From the contact's IRQ handler (after it has driven the interlock off itself):
#   s.contact_edge(now_ms, position)
# The contact position is the board's tri-state CONTACT_GRID / CONTACT_ISLAND /
# CONTACT_UNKNOWN (same values as gateway.ports): only exactly CONTACT_ISLAND
# counts as island and only exactly CONTACT_GRID as grid; anything else blocks.
from micropython import const

from gateway.clock import saturate_age, ticks_diff
from gateway.model import GRID_DOWN, GRID_UNKNOWN, GRID_UP, Permits
from gateway.safety_cfg import (  # noqa: F401 - re-exported for the config/MQTT layers
    LIVE,
    PROFILES,
    READ_ONLY,
    READ_ONLY_KEYS,
    SCHEMA,
    validate,
)
from gateway.schema import ConfigError
from gateway.safety_grid import (  # noqa: F401 - reason codes re-exported
    REASON_F_WINDOW,
    REASON_OF,
    REASON_OV,
    REASON_ROCOF,
    REASON_UF,
    REASON_UV,
    REASON_V_LOSS,
    REASON_V_WINDOW,
    GridWindow,
)

CONTACT_GRID = const(0)  # = gateway.ports.CONTACT_GRID
CONTACT_ISLAND = const(1)  # = gateway.ports.CONTACT_ISLAND (closes only when isolated)
CONTACT_UNKNOWN = const(-1)  # implausible NO/NC pair, broken wire, no reading

STATE_BOOT = const(0)  # blocked since start-up, never released yet
STATE_NORMAL = const(1)  # export, discharge and charge permitted (limit_w ramps)
STATE_GRID_LOST_BLOCKED = const(2)  # some evidence unsafe: all blocked
STATE_ISLAND_BACKUP = const(3)  # contact confirms the island: discharge to the house only
STATE_RECONNECT_WAIT = const(4)  # all evidence safe, reconnection delay running
STATE_FAULT = const(5)  # latched: all blocked until the cause is cleared
STATE_NAMES = ("boot", "normal", "grid_lost_blocked", "island_backup", "reconnect_wait", "fault")

REASON_OK = const(0)
REASON_RAMP = const(1)  # normal, limit_w still ramping up
REASON_WAIT = const(2)  # reconnection delay running
REASON_ISLAND = const(3)  # backup on a confirmed island
REASON_BOOT = const(4)  # no tick yet
REASON_STOP_PENDING = const(5)  # delay done, devices have not yet confirmed the stop
REASON_CONTACT = const(10)  # switch in / moving to / from island, or position unknown
REASON_METER_INVALID = const(11)  # no window, no voltage reference, CT open, clipped
REASON_METER_STALE = const(12)
REASON_METER_FLAGS = const(13)  # a Meter.flags bit in meter_flag_mask
REASON_CHARGER_OFFLINE = const(22)  # offline or its data older than device_stale_ms
REASON_CHARGER_GRID = const(23)  # Charger.grid_ok False
REASON_INVERTER_OFFLINE = const(24)
REASON_INVERTER_GRID = const(25)
REASON_TICK_GAP = const(26)  # no tick for tick_gap_ms (or time ran backwards): unobserved
REASON_FAULT_STOP = const(30)  # devices did not confirm the stop within stop_confirm_ms
REASON_FAULT_CONFIG = const(31)  # invalid settings: defaults loaded, latched for good
REASON_FAULT_EXCEPTION = const(32)  # for enter_fault(): unhandled exception
REASON_FAULT_WATCHDOG = const(33)  # for enter_fault(): reset by the watchdog
REASON_FAULT_TASK = const(34)  # for enter_fault(): a critical task stalled
REASON_NAMES = {
    0: "ok", 1: "ramp", 2: "wait", 3: "island", 4: "boot", 5: "stop_pending",
    10: "contact", 11: "meter_invalid", 12: "meter_stale", 13: "meter_flags",
    14: "voltage_lost", 15: "undervoltage", 16: "overvoltage", 17: "underfrequency",
    18: "overfrequency", 19: "rocof", 20: "voltage_window", 21: "frequency_window",
    22: "charger_offline", 23: "charger_grid", 24: "inverter_offline", 25: "inverter_grid",
    26: "tick_gap",
    30: "stop_timeout", 31: "config", 32: "exception", 33: "watchdog", 34: "task_stalled",
}

# Evidence bits (Safety.evidence): the sources that hold the release right now
EV_CONTACT = const(1)
EV_METER = const(2)  # invalid, stale, flagged or lost reference
EV_VOLTAGE = const(4)
EV_FREQUENCY = const(8)
EV_ROCOF = const(16)
EV_CHARGER = const(32)
EV_INVERTER = const(64)

_SEQ = const(0x3FFFFFFF)  # sequence counters wrap like ticks (compare with ticks_diff)


def _position(v):
    # exact matches only: True == 1 and False == 0 still work, -1 / None / 2 are unknown
    if v == CONTACT_ISLAND:
        return CONTACT_ISLAND
    if v == CONTACT_GRID:
        return CONTACT_GRID
    return CONTACT_UNKNOWN


def _bit(reason):
    if reason == REASON_UV or reason == REASON_OV or reason == REASON_V_WINDOW:
        return EV_VOLTAGE
    if reason == REASON_UF or reason == REASON_OF or reason == REASON_F_WINDOW:
        return EV_FREQUENCY
    return EV_ROCOF


class Safety:
    """The safety state machine. See the module header and docs/safety.md.

    cfg: the `safety` settings section (validated here; an invalid one loads the
    defaults and latches FAULT/config, the message in .config_error).
    meter (required), charger, inverter: the shared gateway.model records, read
    each tick; charger / inverter None = not fitted. permits: the Permits record
    to fill in place (a new one if None).
    """

    def __init__(self, cfg=None, meter=None, charger=None, inverter=None, permits=None):
        if meter is None:
            raise TypeError("Safety needs the Meter record (the voltage reference)")
        self.config_error = None
        try:
            c = validate(cfg)
        except ConfigError as e:
            c = validate(None)
            self.config_error = str(e)
        self.cfg = c
        self.meter = meter
        self.charger = charger
        self.inverter = inverter
        self.permits = permits if permits is not None else Permits()
        self.grid = GridWindow(c)
        self._reconnect_ms = c["reconnect_ms"]
        self._ramp_w_s = c["ramp_w_s"]
        self._limit_max_w = c["limit_max_w"]
        self._ramp_full_ms = (c["limit_max_w"] * 1000 + c["ramp_w_s"] - 1) // c["ramp_w_s"]
        self._c_stable_ms = c["contact_stable_ms"]
        self._meter_stale_ms = c["meter_stale_ms"]
        self._dev_stale_ms = c["device_stale_ms"]
        self._flag_mask = c["meter_flag_mask"]
        self._stop_ms = c["stop_confirm_ms"]
        self._gap_ms = c["tick_gap_ms"]
        self._backup = c["backup"]
        # outputs (besides the Permits record)
        self.state = STATE_BOOT
        self.reason = REASON_BOOT
        self.fault_reason = 0
        self.evidence = 0  # EV_* bits holding the release at the last tick
        self.interlock_on = False  # drive the interlock output from this (True = export)
        self.stop_needed = True  # boot: the devices may still be running as before a reset
        self.stop_seq = 1  # bumped on each new stop request and each repeat
        self.escalated = False  # a stop missed its deadline and is not confirmed yet
        self.limit_w = 0
        self.ramping = False
        # counters / measurements for telemetry (wrap at 2**30)
        self.n_blocks = 0
        self.n_edges = 0
        self.n_faults = 0
        self.n_gaps = 0
        self.n_stop_timeouts = 0
        self.n_stop_repeats = 0
        self.stop_latency_ms = -1  # block -> stop_confirmed, last one
        self.stop_latency_max_ms = 0
        # internal state
        self._stop_seq0 = 1  # stop_seq when the pending stop was requested
        self._stop_t = 0  # deadline base (block time, then each repeat)
        self._block_t = 0
        self._stop_t_set = False  # False: take the next tick's now_ms as block time
        self._released = False
        self._ok = False  # all evidence release-safe since _ok_t
        self._ok_t = 0
        self._ramp_t = 0
        self._first = True
        self._last_ms = 0
        self._blk = 0  # reason that blocks a permitting state now (0: none)
        self._hold = 0  # reason that holds the release now (0: none)
        self._c_level = CONTACT_UNKNOWN  # contact position ...
        self._c_t = 0  # since when at this level
        self._irq_level = CONTACT_UNKNOWN
        self._irq_t = 0
        self._edge_seq = 0
        self._seen_seq = 0
        self._seen_t = [0, 0, 0]  # freshness watch: meter, charger, inverter t_ms ...
        self._seen_at = [0, 0, 0]  # ... and the tick it was first seen
        if self.config_error is not None:
            self.enter_fault(REASON_FAULT_CONFIG)
        self._apply()

    # ---- the interrupt path ------------------------------------------------

    def contact_edge(self, now_ms, position):
        """The contact moved (call from the IRQ path): blocks at once, never waits.

        position: CONTACT_GRID / CONTACT_ISLAND / CONTACT_UNKNOWN after the edge.
        Any edge blocks export and leaves backup (a bounce may hide an edge), and
        restarts the contact's stable window. Allocation-free.
        """
        self._irq_level = _position(position)
        self._irq_t = now_ms
        self._edge_seq = (self._edge_seq + 1) & _SEQ
        self.n_edges = (self.n_edges + 1) & _SEQ
        self._edge_block(now_ms)

    def _edge_block(self, now_ms):
        st = self.state
        if st == STATE_NORMAL or st == STATE_ISLAND_BACKUP:
            self._block(now_ms, REASON_CONTACT)
        self._ok = False
        self._blank()

    # ---- the safety tick ---------------------------------------------------

    def tick(self, now_ms, contact):
        """One safety tick; `contact`: the sampled position (CONTACT_*).

        Fills the Permits record and interlock_on / stop_needed; returns the state.
        """
        seq = self._edge_seq
        gap = False
        first = self._first
        if first:
            self._first = False
            dt = 0
        else:
            dt = ticks_diff(now_ms, self._last_ms)
            if dt < 0 or dt > self._gap_ms:
                # nobody watched (a stalled task, a clock jump): the grid may have gone
                # and come back unseen, so this counts like an unsafe sample
                gap = True
                self.n_gaps = (self.n_gaps + 1) & _SEQ
                dt = 0 if dt < 0 else self._gap_ms
        self._last_ms = now_ms
        if not self._stop_t_set:
            self._stop_t = now_ms
            self._block_t = now_ms
            self._stop_t_set = True
        # contact: a pending edge first, then this tick's sample
        edge = seq != self._seen_seq
        if edge:
            self._seen_seq = seq
            self._c_level = self._irq_level
            self._c_t = self._irq_t
        pos = _position(contact)
        if pos != self._c_level or first or gap:  # the stable window starts here
            self._c_level = pos
            self._c_t = now_ms
        self._c_t = saturate_age(now_ms, self._c_t, self._c_stable_ms)
        c_stable = ticks_diff(now_ms, self._c_t) >= self._c_stable_ms
        self._judge(now_ms, dt, pos != CONTACT_GRID or edge, c_stable)
        p = self.permits
        if pos == CONTACT_ISLAND:
            p.grid = GRID_DOWN  # the transfer switch isolates the house
        elif pos != CONTACT_GRID and p.grid == GRID_UP:
            p.grid = GRID_UNKNOWN  # the contact cannot tell
        if gap:
            self._blk = REASON_TICK_GAP
            self._hold = REASON_TICK_GAP
        self._escalate(now_ms)
        self._step(now_ms, pos == CONTACT_ISLAND and c_stable and not edge)
        self._apply()
        if self._edge_seq != seq:  # an edge landed while this tick ran: it wins
            self._edge_block(self._irq_t)
        return self.state

    def _judge(self, now, dt, contact_unsafe, c_stable):
        """Sets _blk (blocks now), _hold (holds the release) and evidence bits."""
        bits = 0
        blk = 0
        hold = 0
        if contact_unsafe:
            bits = EV_CONTACT
            blk = REASON_CONTACT
        elif not c_stable:
            bits = EV_CONTACT
            hold = REASON_CONTACT
        m = self.meter
        g = self.grid
        r = 0
        if not m.valid:
            r = REASON_METER_INVALID
        elif self._stale(now, m.t_ms, 0, self._meter_stale_ms):
            r = REASON_METER_STALE
        elif m.flags & self._flag_mask:
            r = REASON_METER_FLAGS
        elif m.v_mv < g.v_loss_mv or m.f_millihz <= 0:
            r = REASON_V_LOSS  # never "in window" without a voltage
        if r:
            g.reset()
            bits |= EV_METER
        else:
            r = g.update(now, dt, m.v_mv, m.f_millihz, m.rocof_mhz_s)
            if r:
                bits |= _bit(r)
            else:
                w = g.window(m.v_mv, m.f_millihz, m.rocof_mhz_s)
                if w:
                    bits |= _bit(w)
                    if not hold:
                        hold = w
        if r and not blk:
            blk = r
        # the grid as this tick judges it (Permits.grid, for telemetry and the console)
        if r == REASON_V_LOSS or (r and not bits & EV_METER):
            grid = GRID_DOWN
        elif r:
            grid = GRID_UNKNOWN  # no usable meter window
        else:
            grid = GRID_UP
        r = self._device(now, self.charger, 1, REASON_CHARGER_OFFLINE, REASON_CHARGER_GRID)
        if r:
            bits |= EV_CHARGER
            if not blk:
                blk = r
            if r == REASON_CHARGER_GRID:
                grid = GRID_DOWN
        r = self._device(now, self.inverter, 2, REASON_INVERTER_OFFLINE, REASON_INVERTER_GRID)
        if r:
            bits |= EV_INVERTER
            if not blk:
                blk = r
            if r == REASON_INVERTER_GRID:
                grid = GRID_DOWN
        self.permits.grid = grid
        self._blk = blk
        self._hold = blk if blk else hold
        self.evidence = bits

    def _device(self, now, d, i, offline, no_grid):
        if d is None:
            return 0
        if not d.online or self._stale(now, d.t_ms, i, self._dev_stale_ms):
            return offline
        return 0 if d.grid_ok else no_grid

    def _stale(self, now, t, i, limit):
        # age from the record's own tick, plus a watch on how long that tick has
        # not changed (catches an age that wrapped past 2**29 ms)
        if t != self._seen_t[i]:
            self._seen_t[i] = t
            self._seen_at[i] = now
        else:
            s = saturate_age(now, self._seen_at[i], limit)
            self._seen_at[i] = s
            if ticks_diff(now, s) > limit:
                return True
        a = ticks_diff(now, t)
        return a > limit or a < -limit

    def _escalate(self, now):
        if not self.stop_needed or ticks_diff(now, self._stop_t) < self._stop_ms:
            return
        self._stop_t = now  # repeat once per stop_confirm_ms until confirmed
        self.stop_seq = (self.stop_seq + 1) & _SEQ
        self.n_stop_repeats = (self.n_stop_repeats + 1) & _SEQ
        if not self.escalated:
            self.escalated = True
            self.n_stop_timeouts = (self.n_stop_timeouts + 1) & _SEQ
        if self.state != STATE_FAULT:
            self.enter_fault(REASON_FAULT_STOP, now)

    def _step(self, now, island_ok):
        st = self.state
        if st == STATE_FAULT:
            if self.fault_reason != REASON_FAULT_STOP or self.stop_needed:
                self.reason = self.fault_reason
                return
            self.fault_reason = 0  # the devices did stop: leave through the full delay
            self._ok = False
        elif st == STATE_NORMAL:
            if self._blk:
                self._block(now, self._blk)
            else:
                self._ramp(now)
            return
        elif st == STATE_ISLAND_BACKUP:
            if island_ok and self._backup:
                self.reason = REASON_ISLAND
            else:
                self._block(now, REASON_TICK_GAP if self._blk == REASON_TICK_GAP
                            else REASON_CONTACT)
            return
        # blocked: BOOT, GRID_LOST_BLOCKED, RECONNECT_WAIT (or just out of FAULT)
        if island_ok and self._backup and not self.stop_needed:
            self.state = STATE_ISLAND_BACKUP
            self.reason = REASON_ISLAND
            self._released = True
            self._ok = False
            return
        if self._hold:
            self._ok = False
            self.state = STATE_GRID_LOST_BLOCKED if self._released else STATE_BOOT
            self.reason = self._hold
            return
        if not self._ok:
            self._ok = True
            self._ok_t = now
        self._ok_t = saturate_age(now, self._ok_t, self._reconnect_ms)
        done = ticks_diff(now, self._ok_t) >= self._reconnect_ms
        if done:
            if not self.stop_needed:
                self.state = STATE_NORMAL
                self._released = True
                self._ramp_t = now
                self.ramping = True
                self._ramp(now)
                return
        self.state = STATE_RECONNECT_WAIT if self._released else STATE_BOOT
        self.reason = REASON_STOP_PENDING if done else REASON_WAIT

    def _ramp(self, now):
        if self.ramping:
            d = ticks_diff(now, self._ramp_t)
            if d >= self._ramp_full_ms:
                self.ramping = False
            else:
                self.limit_w = (d if d > 0 else 0) * self._ramp_w_s // 1000
                self.reason = REASON_RAMP
                return
        self.limit_w = self._limit_max_w
        self.reason = REASON_OK

    def _block(self, now, reason):
        self.state = STATE_GRID_LOST_BLOCKED
        self.reason = reason
        self.n_blocks = (self.n_blocks + 1) & _SEQ
        self._ok = False
        self.ramping = False
        self._request_stop(now)

    def _request_stop(self, now):
        if self.stop_needed:
            return  # the pending stop keeps its (earlier) deadline
        self.stop_needed = True
        self.escalated = False
        self.stop_seq = (self.stop_seq + 1) & _SEQ
        self._stop_seq0 = self.stop_seq
        if now is None:
            self._stop_t_set = False
        else:
            self._stop_t = now
            self._block_t = now
            self._stop_t_set = True

    def _apply(self):
        p = self.permits
        st = self.state
        if st != STATE_NORMAL and st != STATE_ISLAND_BACKUP:
            self._blank()
            return
        p.state = st
        p.reason = self.reason
        if st == STATE_NORMAL:
            p.export = True
            p.discharge = True
            p.charge = True
            p.island = False
            p.limit_w = self.limit_w
        else:
            p.export = False  # the grid side stays blocked throughout
            p.discharge = True
            p.charge = False
            p.island = True
            p.limit_w = self._limit_max_w
        self.interlock_on = p.export

    def _blank(self):
        p = self.permits
        self.interlock_on = False
        p.export = False
        p.discharge = False
        p.charge = False
        p.island = False
        p.limit_w = 0
        p.state = self.state
        p.reason = self.reason
        if self.state != STATE_NORMAL:
            self.limit_w = 0

    # ---- the app's reports -------------------------------------------------

    def stop_confirmed(self, now_ms, seq):
        """The devices read back zero export/discharge after the stop sent for `seq`.

        Ignored (False) when no stop is pending or `seq` is older than the pending
        request (a read-back from before the block proves nothing).
        """
        if not self.stop_needed or ticks_diff(seq, self._stop_seq0) < 0:
            return False
        self.stop_needed = False
        self.escalated = False
        lat = ticks_diff(now_ms, self._block_t) if self._stop_t_set else 0
        self.stop_latency_ms = lat if lat > 0 else 0
        self.stop_latency_max_ms = max(self.stop_latency_max_ms, self.stop_latency_ms)
        return True

    def config_fault(self, msg):
        """The configuration failed validation (gateway.config): latch FAULT/config for
        good (export blocked until the file is fixed and the gateway restarted)."""
        self.config_error = msg
        self.enter_fault(REASON_FAULT_CONFIG)

    def apply_setting(self, key, value):
        """A live change (already validated): only `backup` (LIVE); the others wait
        for the next start. Turning backup off leaves ISLAND_BACKUP at the next tick."""
        if key == "backup":
            self.cfg[key] = value
            self._backup = value

    def enter_fault(self, reason, now_ms=None):
        """Latch FAULT (all blocked, stop requested), e.g. REASON_FAULT_EXCEPTION."""
        if self.state != STATE_FAULT or (self.fault_reason == REASON_FAULT_STOP
                                          and reason != REASON_FAULT_STOP):
            # A stop-timeout FAULT clears itself when the devices confirm; a task fault
            # on top of it must not vanish with it: it takes over and needs clear_fault()
            # (which hands back to the stop timeout while the stop is still overdue).
            self.n_faults = (self.n_faults + 1) & _SEQ
            self.fault_reason = reason
            self.state = STATE_FAULT
        self.reason = self.fault_reason
        self._ok = False
        self.ramping = False
        self._request_stop(now_ms)
        self._blank()

    def clear_fault(self, now_ms):
        """Clear a FAULT set by enter_fault(); True if cleared. The full delay follows.

        Refused for config faults (fix the file, restart) and for stop timeouts
        (they clear themselves once the devices confirm the stop). While a stop is
        overdue the cleared fault becomes a stop-timeout FAULT (still True).
        """
        r = self.fault_reason
        if self.state != STATE_FAULT or r == REASON_FAULT_CONFIG or r == REASON_FAULT_STOP:
            return False
        if self.escalated:
            self.fault_reason = REASON_FAULT_STOP
            self.reason = REASON_FAULT_STOP
            self._blank()
            return True
        self.fault_reason = 0
        self._ok = False
        self.state = STATE_GRID_LOST_BLOCKED if self._released else STATE_BOOT
        self.reason = REASON_WAIT
        self._blank()
        return True

