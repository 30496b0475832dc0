"""The simulated house of a live run: the plant model joined to its Modbus devices and
to the sim board's link, on the wall clock.

    plant (gwhost.plant.Plant)  <- setpoints written by the firmware over Modbus
         |                         (PlantState fields, timestamped as they arrive)
         +-> PlantState -> pymodbus devices (gwhost.simbus) -> the firmware's bus task
         +-> PlantLink: contact edges at their moment, analog truth every 50 ms
    interlock level from the link -> plant.set_interlock (the hardware path)

Times: `rel` seconds since the run began (scenario time = start_s + rel); the plant
link and the devices stamp events with time.monotonic(); `self.t0` joins the two.
"""

import time

from gwhost.plant import Plant
from gwhost.simstate import PlantState

V_NOM_MV = 230000
F_NOM_MHZ = 50000
_ENERGY = ("island_export_wh", "backup_unserved_wh", "ev_discharge_wh", "ev_charge_wh",
           "grid_import_wh", "grid_export_wh", "ev_to_grid_wh")
STOP_FIELDS = ("ev_setpoint_w", "inv_export_limit_w", "inv_limit_pct")


class StampedState(PlantState):
    """PlantState that remembers when the devices wrote each setpoint (even the same value)."""

    def __init__(self, **kw):
        object.__setattr__(self, "writes", [])
        super().__init__(**kw)

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in STOP_FIELDS and getattr(self, "_live", False):
            self.writes.append((time.monotonic(), name, value))


class House:
    def __init__(self, scen, start_s, link, baud=9600, warmup_s=0.0):
        self.scen = scen
        self.start_s = start_s
        self.link = link
        self.baud = baud
        self.metering_stalled = False  # fault injection: no analog truth is sent
        # The plant starts warmup_s early so the gateway has re-armed by the measured start,
        # as a gateway that has been running all along would have.
        start_s = max(0.0, start_s - warmup_s)
        self.start_s = start_s
        self.plant = Plant(scen, start_s=start_s)
        self.state = StampedState(autonomous=False)
        hb = scen.home_battery
        if hb is None:  # a hybrid inverter with no battery connected reports it empty
            self.state.batt_soc_pct = 0
            self.state.batt_max_w = 0
        else:
            self.state.batt_soc_pct = int(hb["soc_start_pct"])
            self.state.batt_max_w = int(max(hb["max_charge_w"], hb["max_discharge_w"]))
        self.bus = None
        self.t0 = time.monotonic()
        self.rel = 0.0
        self._grid_up = None
        self._island = None
        self.events = []  # one dict per grid loss inside the measured part of the run
        self.measure_from = 0.0  # rel s: the warm-up before it is not counted
        self._base = None
        self._event_times = self._grid_edges()
        self._sync_state()
        self.state._live = True

    # --- scenario events --------------------------------------------------------------
    def _grid_edges(self):
        """Scenario times (s) at which the grid or the switch changes."""
        edges = []
        for t0, t1, _island in self.scen.events:  # (start s, end s, switch at island)
            edges += [t0, t1]
        return sorted(x - self.start_s for x in edges if x > self.start_s)

    def next_event_s(self, now_rel):
        for t in self._event_times:
            if t > now_rel:
                return t
        return None

    # --- devices ---------------------------------------------------------------------
    def start_bus(self):
        from gwhost.simbus import SimBus
        from gwhost.simdevices import house_devices

        self.bus = SimBus(house_devices(self.state), baud=self.baud, state=self.state).start()
        self.t0 = time.monotonic()
        return self.bus

    def inject(self, what):
        if what == "kill_devices" and self.bus is not None:
            for unit in list(self.bus.devices):
                self.bus.silent.add(unit)
        elif what == "kill_link":
            self.link.close()
        elif what == "stall_metering":  # the analog feed stops; the link (interlock) stays
            self.metering_stalled = True
        elif what == "resume_metering":
            self.metering_stalled = False

    # --- stepping ----------------------------------------------------------------------
    def _sync_state(self):
        p, s = self.plant, self.state
        s.ev_plugged = bool(p.ev_plugged)
        s.ev_soc_pct = p.ev_soc_reported
        s.ev_power_w = round(p.ev_reported_w)
        s.grid_ok = bool(p.grid_up)
        s.pv_w = round(p.pv_w - p.curtailed_w)
        s.house_w = round(p.load_w)
        s.batt_w = round(p.batt_w)
        if p.scen.home_battery is not None:
            s.batt_soc_pct = int(p.batt_soc_pct)
        s.inv_ac_w = round(p.pv_w - p.curtailed_w - p.batt_w)

    def advance_to(self, rel):
        # From the plant's own clock, so rounding never accumulates (10.4 ms steps rounded
        # to 10 ms each lost 2 s in 2 min).
        p, s = self.plant, self.state
        dt_ms = round((self.start_s + rel) * 1000) - p.t_ms
        p.set_ev_session(bool(s.ev_session))
        p.set_ev_setpoint(s.ev_setpoint_w if s.ev_session else 0)
        lim = s.inv_export_limit_w
        p.set_export_limit(None if lim is None or lim >= s.inv_rated_w else lim)
        if s.batt_setpoint_w is not None:
            p.set_batt_setpoint(s.batt_setpoint_w)
        p.set_interlock(self.link.interlock)
        if dt_ms > 0:
            p.step(dt_ms)
            self.rel = rel
        self._sync_state()
        if self._base is None and rel >= self.measure_from:
            self._base = {k: getattr(p, k) for k in _ENERGY}
        _, _, up, isl = p.inputs()  # the grid and the switch at this moment
        t_now = time.monotonic()  # the moment the plant makes it happen (plant's clock)
        if isl != self._island:
            self._island = isl
            self.link.send_contact(1 if isl else 0)
        if up != self._grid_up:
            if self._grid_up and not up and rel >= self.measure_from:
                self.events.append({"t_s": round(p.t_ms / 1000.0, 3), "rel": round(rel, 3),
                                    "wall": t_now, "switch": "island" if isl else "grid",
                                    "interlock_at_loss": self.link.interlock,
                                    "ev_w_at_loss": round(p.ev_w)})
            self._grid_up = up
            self.send_truth()

    def send_truth(self):
        if self.metering_stalled:
            return
        p = self.plant
        up = p.grid_up_now
        # The voltage reference sits on the grid side of the transfer switch.
        grid_w = p.meter_grid_w if p.meter_valid else p.grid_w
        house_w = p.load_w - p.unserved_w
        self.link.send_truth(V_NOM_MV if up else 0, F_NOM_MHZ, up,
                             [(grid_w, 0, False), (house_w, 0, False)])

    # --- results ---------------------------------------------------------------------
    def trace_row(self, link):
        p = self.plant
        r = link.reports.get("safety")
        return {
            "t_s": round(self.start_s + self.rel, 1), "pv_w": round(p.pv_w - p.curtailed_w),
            "load_w": round(p.load_w), "ev_w": round(p.ev_w), "batt_w": round(p.batt_w),
            "grid_w": round(p.grid_w), "grid_up": bool(p.grid_up),
            "switch_island": bool(p.switch_island), "ev_soc_pct": round(p.ev_soc_pct, 2),
            "unserved_w": round(p.unserved_w), "interlock": bool(link.interlock),
            "safety": r[1] if r else "BOOT",
        }

    def _latencies(self, ev):
        wall = ev["wall"]
        block = 0.0
        if ev["interlock_at_loss"]:
            offs = [t for t, lvl in self.link.interlock_edges if not lvl and t >= wall - 0.001]
            block = (offs[0] - wall) * 1000 if offs else None
        seen = {}
        for t, name, value in self.state.writes:
            if t < wall:
                continue
            if name == "ev_setpoint_w" and value >= 0 and "ev" not in seen:
                seen["ev"] = t
            if name in ("inv_export_limit_w", "inv_limit_pct") and value == 0 and "inv" not in seen:
                seen["inv"] = t
        stop = (max(seen.values()) - wall) * 1000 if len(seen) == 2 else None
        return block, stop

    def metrics(self):
        p = self.plant
        blocks, stops = [], []
        for ev in self.events:
            b, s = self._latencies(ev)
            ev["block_latency_ms"] = None if b is None else round(b, 2)
            ev["modbus_stop_latency_ms"] = None if s is None else round(s, 2)
            blocks.append(b)
            stops.append(s)
            del ev["wall"]
        base = self._base or {k: getattr(p, k) for k in _ENERGY}
        e = {k: getattr(p, k) - base[k] for k in _ENERGY}
        return {
            "grid_loss_events": len(self.events),
            "block_latency_ms_max": _worst(blocks),
            "modbus_stop_latency_ms_max": _worst(stops),
            "island_export_wh": round(e["island_export_wh"], 4),
            "backup_unserved_wh": round(e["backup_unserved_wh"], 3),
            "ev_discharge_wh": round(e["ev_discharge_wh"], 3),
            "ev_charge_wh": round(e["ev_charge_wh"], 3),
            "grid_import_wh": round(e["grid_import_wh"], 3),
            "grid_export_wh": round(e["grid_export_wh"], 3),
            "ev_to_grid_wh": round(e["ev_to_grid_wh"], 4),
            "events": self.events,
        }

    def close(self):
        if self.bus is not None:
            self.bus.close()


def _worst(values):
    """Largest latency; a loss that was never answered counts as infinitely late (None -> -1)."""
    if not values:
        return 0
    if any(v is None for v in values):
        return -1
    return round(max(values), 2)
