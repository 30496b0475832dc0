# What every device driver shares: the poll schedule from its profile, register images (the
# last good snapshot of each block), liveness, the watchdog refresh cadence and the stop
# sequence. A device module adds its profile (register map as data) and a few small methods:
#   decode(block, now_ms)          turn the block's image into record fields
#   command(req, now_ms) -> bool   the next setpoint / heartbeat / init write, if any
#   command_done(req, now_ms)
#   stop_fill(req, step) -> int    the stop sequence (safe writes, then read-backs): 1 req
#                                  filled, 0 nothing to do (done), -1 not possible yet
#   stop_result(req, step, now_ms) -> int   next step, or -1 once the safe values read back
# Everything after __init__/attach runs in the bus task and allocates nothing.
from array import array

from gateway.clock import saturate_age, ticks_add, ticks_diff
from gateway.modbus.bus import COMMAND, SAFETY, Health
from micropython import const

TAG_CMD = const(64)  # tags below: poll entries; from here: the driver's commands
TAG_STOP = const(128)  # stop steps: TAG_STOP + step

# Settings every driver takes (each device module extends this in its own SCHEMA).
COMMON_SCHEMA = {
    "unit": (1, 1, 247),  # slave address
    "poll_ms": (500, 50, 60000),  # fast blocks: live measurements
    "slow_poll_ms": (5000, 100, 600000),  # slow blocks: limits, scale factors, read-backs
    "max_age_ms": (3000, 200, 600000),  # older data: device offline, record stale
    "timeout_ms": (0, 0, 5000),  # response timeout for this device; 0: the bus default
}


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


class Driver:
    def __init__(self, cfg, polls):
        """polls: ((fn, start, count, slow), ...) register blocks, from the profile."""
        self.cfg = cfg
        self.unit = cfg["unit"]
        self.health = Health()
        self.bus = None
        self.rec = None  # the model record this driver fills (subclass sets it)
        self.online = False
        self.stale = False  # answering, but its data froze (e.g. alive counter stopped)
        self.t_data_ms = 0  # tick of the last fast-block update
        self._have_data = False
        self.need_init = True  # program the watchdog and (re)write setpoints before anything
        self.stop_done = True
        self.stop_acked = False
        self.stop_ack_ms = 0  # tick at which the first safe write was acknowledged
        self._stop_step = 0
        self._stop_next_ms = 0
        self._probe_ms = 0
        self._probe_i = -1
        self._started = False
        self.stale_block = 0  # poll block holding the device's own heartbeat (subclass sets)
        self._blocks = polls
        self.images = [array("H", bytes(2 * b[2])) for b in polls]
        self._polls = ()
        self._due = []

    # ---- setup -------------------------------------------------------------------------------

    def attach(self, bus):
        self.bus = bus
        self.set_polls(self._blocks)

    def set_polls(self, blocks):
        """(Re)build the poll table; blocks longer than the bus's max_poll_regs are split."""
        self._blocks = blocks
        self.images = [array("H", bytes(2 * b[2])) for b in blocks]
        mx = self.bus.cfg["max_poll_regs"] if self.bus else 125
        entries = []
        for k in range(len(blocks)):
            fn, start, count, slow = blocks[k]
            off = 0
            while off < count:
                n = min(mx, count - off)
                entries.append((fn, start + off, n, slow, k, off, off + n == count))
                off += n
        self._polls = tuple(entries)
        self._due = [0] * len(entries)
        self._first = [0] * len(blocks)  # first poll entry of each block
        for i in range(len(entries) - 1, -1, -1):
            self._first[entries[i][4]] = i

    def block_of(self, fn, addr):
        """(image, index) of a register inside the poll blocks (profile lookup at set-up)."""
        for k in range(len(self._blocks)):
            f, start, count, _ = self._blocks[k]
            if f == fn and start <= addr < start + count:
                return self.images[k], addr - start
        raise ValueError(f"register {addr} (function {fn}) is in no poll block")

    # ---- bus interface -----------------------------------------------------------------------

    def next(self, req, level, now_ms):
        if req.timeout_ms == 0:
            req.timeout_ms = self.cfg["timeout_ms"]
        if level == SAFETY:
            return self._stop_next(req, now_ms)
        if level == COMMAND:
            return self.online and self.command(req, now_ms)
        return self._poll_next(req, now_ms)

    def done(self, req, now_ms):
        tag = req.tag
        if tag < TAG_CMD:
            if not self.online:  # a probe: go on with the next chunk of the block at once
                ok = req.status == 0 and not self._polls[tag][6]
                self._probe_i = tag + 1 if ok else -1
                if ok:
                    self._probe_ms = now_ms
            if req.status == 0:
                e = self._polls[tag]
                img = self.images[e[4]]
                off = e[5]
                for i in range(req.count):
                    img[off + i] = req.regs[i]
                if e[6]:
                    if not e[3]:
                        self.t_data_ms = now_ms
                        self._have_data = True
                    self.decode(e[4], now_ms)
        elif tag < TAG_STOP:
            self.command_done(req, now_ms)
        else:
            self._stop_result(req, now_ms)

    def tick(self, now_ms):
        if not self._started:  # ticks start anywhere (even just before the 2**30 wrap)
            self._started = True
            self._probe_ms = now_ms
        self.t_data_ms = saturate_age(now_ms, self.t_data_ms, self.cfg["max_age_ms"])
        ok = (
            self._have_data
            and self.health.fails < self.bus.cfg["offline_after"]
            and ticks_diff(now_ms, self.t_data_ms) <= self.cfg["max_age_ms"]
            and not self.stale
        )
        if ok != self.online:
            self.online = ok
            if ok:
                self.need_init = True  # back online: it may have rebooted meanwhile
                due = self._due
                for i in range(len(due)):
                    due[i] = now_ms
            else:
                self._probe_ms = now_ms
                self._probe_i = -1
        self.health.online = ok
        if self.rec is not None:
            self.rec.online = ok

    # ---- polling -----------------------------------------------------------------------------

    def _poll_next(self, req, now_ms):
        polls = self._polls
        if not polls:
            return False
        if not self.online:
            # Offline: probe with the first block only, slowly, without retries, so a silent
            # device costs the bus one timeout per offline_poll_ms.
            if ticks_diff(now_ms, self._probe_ms) < 0:
                return False
            self._probe_ms = ticks_add(now_ms, self.bus.cfg["offline_poll_ms"])
            if not self._have_data:  # never seen: probe faster at start-up
                self._probe_ms = ticks_add(now_ms, self.cfg["poll_ms"])
            # the chunks of one block, one after the other: the first block, or while the
            # device is stale the block that can show it alive again (its heartbeat counter)
            i = self._probe_i
            if i < 0:
                i = self._first[self.stale_block if self.stale else 0]
                self._probe_i = i
            e = polls[i]
            req.read(self.unit, e[0], e[1], e[2], i)
            return True
        best = -1
        worst = -1
        for i in range(len(polls)):
            late = ticks_diff(now_ms, self._due[i])
            if late > worst:
                worst = late
                best = i
        if best < 0:
            return False
        e = polls[best]
        period = self.cfg["slow_poll_ms"] if e[3] else self.cfg["poll_ms"]
        # schedule from the due time, not from now, so the rate holds under load
        due = ticks_add(self._due[best], period)
        if ticks_diff(now_ms, due) >= 0:
            due = ticks_add(now_ms, period)
        self._due[best] = due
        req.read(self.unit, e[0], e[1], e[2], best)
        req.tries = 1 + self.bus.cfg["poll_retries"]
        return True

    # ---- stop --------------------------------------------------------------------------------

    def arm_stop(self, now_ms):
        self.stop_done = False
        self.stop_acked = False
        self._stop_step = 0
        self._stop_next_ms = now_ms

    def stop_urgent(self):
        return not self.stop_done and self._stop_step == 0

    def _stop_next(self, req, now_ms):
        if self.stop_done or ticks_diff(now_ms, self._stop_next_ms) < 0:
            return False
        r = self.stop_fill(req, self._stop_step)
        if r > 0:
            req.tag = TAG_STOP + self._stop_step
            req.tries = 1
            return True
        if r == 0:
            self.stop_done = True  # nothing this device can do (it has no such control)
        return False  # r < 0: not possible yet (e.g. not identified): stays pending

    def _stop_result(self, req, now_ms):
        step = req.tag - TAG_STOP
        if req.status != 0:
            self._stop_next_ms = ticks_add(now_ms, self.bus.cfg["stop_retry_ms"])
            return
        if step == 0 and not self.stop_acked:
            self.stop_acked = True
            self.stop_ack_ms = now_ms
        nxt = self.stop_result(req, step, now_ms)
        if nxt < 0:
            self.stop_done = True
        else:
            if nxt <= step:  # read-back disagreed: write again, paced
                self._stop_next_ms = ticks_add(now_ms, self.bus.cfg["stop_retry_ms"])
            self._stop_step = nxt

    # ---- helpers for subclasses ----------------------------------------------------------------

    def hb_due(self, now_ms, last_ms, watchdog_s):
        """True when a watchdog refresh is due: every third of the timeout (<= half of it
        even when a refresh needs its retries and waits behind other traffic)."""
        d = ticks_diff(now_ms, last_ms)
        return d >= watchdog_s * 333 or d < 0  # (< 0: never written, or an absurd gap)

    def decode(self, block, now_ms):
        pass

    def command(self, req, now_ms):
        return False

    def command_done(self, req, now_ms):
        pass

    def stop_fill(self, req, step):
        return 0

    def stop_result(self, req, step, now_ms):
        return -1
