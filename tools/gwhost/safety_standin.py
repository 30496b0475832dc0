"""A stand-in for the firmware safety supervisor, for lockstep runs only.

The real one (firmware `gateway/safety.py`) is being written separately; when it lands,
the benchmark should drive it instead of this class (same inputs, same Permits record).
This keeps only the rules of the safety model (../shared/architecture.md) that the
benchmark exercises:
- grid lost (no voltage at the connection point) -> block at once: the interlock is
  de-energised in the same cycle (the contact IRQ / voltage window), no export, no charge;
- discharge (backup) only while the contact confirms the island position;
- after the grid returns: export and discharge stay blocked until the grid has been present
  for `reconnect_s` (default 60 s); charging is allowed again at once;
- optional re-arm ramp of `limit_w` (`ramp_w_s`, 0 = none) after the release;
- boot starts blocked, as if the grid had just returned.
"""

from gwhost import fw

Permits = fw.load("gateway.model").Permits

STATE_NORMAL = 0
STATE_BLOCKED = 1  # grid absent, house not confirmed isolated
STATE_ISLAND = 2  # grid absent, contact confirms island: backup allowed
STATE_RECONNECT = 3  # grid back, waiting out the reconnection delay


class SafetyStandIn:
    def __init__(self, reconnect_s=60, ramp_w_s=0, limit_max_w=100000):
        self.reconnect_ms = int(reconnect_s * 1000)
        self.ramp_w_s = ramp_w_s
        self.limit_max_w = limit_max_w
        self.state = STATE_RECONNECT
        self.t_back_ms = 0  # plant time the grid was last seen returning
        self.t_release_ms = None
        self.permits = Permits()

    def tick(self, t_ms, grid_present, contact_island):
        """Update and return self.permits; t_ms is the plant's (non-wrapping) time."""
        p = self.permits
        if not grid_present:
            self.state = STATE_ISLAND if contact_island else STATE_BLOCKED
            self.t_back_ms = None
        elif self.state in (STATE_BLOCKED, STATE_ISLAND):
            self.state = STATE_RECONNECT
            self.t_back_ms = t_ms
        elif self.state == STATE_RECONNECT:
            if self.t_back_ms is None:
                self.t_back_ms = t_ms
            if t_ms - self.t_back_ms >= self.reconnect_ms:
                self.state = STATE_NORMAL
                self.t_release_ms = t_ms
        s = self.state
        p.state = s
        p.export = s == STATE_NORMAL
        p.island = s == STATE_ISLAND
        p.discharge = s in (STATE_NORMAL, STATE_ISLAND)
        p.charge = s in (STATE_NORMAL, STATE_RECONNECT)
        lim = self.limit_max_w
        if self.ramp_w_s:
            if s == STATE_NORMAL:
                lim = min(lim, self.ramp_w_s * (t_ms - self.t_release_ms) // 1000)
            elif s == STATE_RECONNECT:
                lim = 0
        p.limit_w = lim
        p.reason = s
        return p

    @property
    def interlock(self):
        """The interlock output level: True = energised = export permitted."""
        return self.state == STATE_NORMAL
