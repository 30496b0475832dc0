"""The physical truth behind the simulated Modbus devices (the plug between devices and plant).

The simulated charger and inverters (simcharger, simsunspec, simsolax) never model physics
themselves: they show what this object says and write what they are told into it. One writer
per field:

  the plant writes, the devices read        the devices write, the plant reads
  ------------------------------------      -----------------------------------------------
  ev_plugged, ev_soc_pct                     ev_setpoint_w   (+ charge, - discharge, W)
  ev_power_w   (measured, + charging)        ev_session      (contactors closed)
  ev_min_w, ev_max_charge_w,                 inv_limit_pct   (active power limit, % of rating)
  ev_max_discharge_w, ev_fault               inv_export_limit_w (grid export limit, W)
  grid_ok      (grid present, in window)     batt_setpoint_w (+ charge; None: inverter decides)
  pv_w         (available PV, W)
  house_w      (household load, W)
  batt_w, batt_soc_pct, inv_ac_w (+ export)

A plant model (the lead's simulator) owns one PlantState, sets `autonomous = False` and does
the physics itself. Standing alone (tests, bench), step() is a minimal plant: first-order
ramps toward the setpoints and SoC integration, enough to make the devices look alive.
"""

import threading


class PlantState:
    def __init__(self, **kw):
        self.lock = threading.Lock()  # hold it for multi-field updates; single ints need none
        self.autonomous = True
        # car + charger
        self.ev_plugged = True
        self.ev_soc_pct = 55
        self.ev_capacity_wh = 60000
        self.ev_power_w = 0
        self.ev_min_w = 150
        self.ev_max_charge_w = 11000
        self.ev_max_discharge_w = 10000
        self.ev_fault = 0
        self.ev_ramp_w_per_s = 3000
        self.ev_setpoint_w = 0
        self.ev_session = False
        # grid, PV, house, home battery, inverter
        self.grid_ok = True
        self.pv_w = 2000
        self.house_w = 600
        self.inv_rated_w = 10000
        self.inv_limit_pct = 100
        self.inv_export_limit_w = 10000
        self.batt_capacity_wh = 10000
        self.batt_max_w = 5000
        self.batt_soc_pct = 60
        self.batt_w = 0
        self.batt_setpoint_w = None
        self.inv_ac_w = 0
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(f"PlantState has no field {k!r}")
            setattr(self, k, v)
        self._soc_ev = self.ev_soc_pct * self.ev_capacity_wh / 100.0
        self._soc_batt = self.batt_soc_pct * self.batt_capacity_wh / 100.0

    def ev_target_w(self):
        if not (self.ev_plugged and self.ev_session and self.grid_ok_for_ev()):
            return 0
        sp = self.ev_setpoint_w
        if 0 < abs(sp) < self.ev_min_w:
            return 0
        return max(-self.ev_max_discharge_w, min(self.ev_max_charge_w, sp))

    def grid_ok_for_ev(self):
        return True  # the charger itself does not island-protect in this stand-in

    def step(self, dt_s):
        """Minimal plant: ramps and SoC integration (only while autonomous)."""
        if not self.autonomous:
            return
        with self.lock:
            tgt = self.ev_target_w()
            d = tgt - self.ev_power_w
            lim = self.ev_ramp_w_per_s * dt_s
            self.ev_power_w = int(self.ev_power_w + max(-lim, min(lim, d)))
            self._soc_ev = max(0.0, min(self.ev_capacity_wh,
                                        self._soc_ev + self.ev_power_w * dt_s / 3600.0))
            self.ev_soc_pct = int(self._soc_ev * 100 / self.ev_capacity_wh)
            pv = min(self.pv_w, self.inv_rated_w * self.inv_limit_pct // 100)
            if self.batt_setpoint_w is None:  # self-consumption: cover the house, store surplus
                b = pv - self.house_w
            else:
                b = self.batt_setpoint_w
            b = max(-self.batt_max_w, min(self.batt_max_w, b))
            if (b > 0 and self.batt_soc_pct >= 100) or (b < 0 and self.batt_soc_pct <= 0):
                b = 0
            self.batt_w = int(b)
            self._soc_batt = max(0.0, min(self.batt_capacity_wh,
                                          self._soc_batt + b * dt_s / 3600.0))
            self.batt_soc_pct = int(self._soc_batt * 100 / self.batt_capacity_wh)
            ac = pv - self.batt_w  # + = the inverter delivers to the AC side
            export = ac - self.house_w - self.ev_power_w
            if export > self.inv_export_limit_w:  # curtail PV to hold the export limit
                ac -= export - self.inv_export_limit_w
            self.inv_ac_w = int(ac)
