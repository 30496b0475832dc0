# The records that flow through one control cycle: measure -> judge -> decide.
#
# Each is allocated once at boot and updated in place (int attributes only), so
# producers (metering, the bus task) and consumers (safety, control, telemetry)
# share them without copying or allocating. Units are in the names.
# Power sign conventions: grid_w + = import; ev_w / batt_w + = charging, - = discharging;
# pv_w >= 0. Times are 30-bit ticks in ms (gateway.clock).
from micropython import const

# Validity / freshness: t_ms is the tick of the last good update; a consumer
# judges age with clock.ticks_diff(now_ms, rec.t_ms) against its own limit.
PHASES = const(3)


class Meter:
    """Signed real power at the grid connection and the voltage reference."""

    def __init__(self):
        self.t_ms = 0  # tick of the last window
        self.valid = False  # False: no window yet, no voltage reference, CT open, clipped
        self.seq = 0  # window counter (wraps at 2**30)
        self.grid_w = 0  # + import, sum of phases
        self.house_w = 0  # household consumption CT (without the car), when fitted
        self.v_mv = 0  # rms voltage of the reference phase, mV
        self.f_millihz = 0  # mains frequency, millihertz (50 Hz = 50000)
        self.rocof_mhz_s = 0  # rate of change of frequency, mHz/s
        self.flags = 0  # metering.FLAG_* bits (no_voltage, ct_open, clipped, ...)
        self.ph_w = [0] * PHASES  # per-phase signed power where measured
        self.ph_ma = [0] * PHASES  # per-phase rms current, mA


class Charger:
    """The bidirectional DC charger as last read over Modbus."""

    def __init__(self):
        self.t_ms = 0
        self.online = False
        self.plugged = False
        self.session = False  # a charging session is open (contactors closed)
        self.state = 0  # profile state code
        self.fault = 0
        self.soc_pct = 0
        self.power_w = 0  # measured AC power, + charging
        self.setpoint_w = 0  # setpoint read back from the device
        self.min_w = 150  # smallest non-zero power the charger can hold
        self.max_charge_w = 0
        self.max_discharge_w = 0  # magnitude
        self.grid_ok = True  # the device's own view of the grid, where it reports one


class Inverter:
    """The home's (hybrid) inverter as last read over Modbus."""

    def __init__(self):
        self.t_ms = 0
        self.online = False
        self.pv_w = 0
        self.batt_w = 0  # + charging
        self.batt_soc_pct = 0
        self.has_battery = False
        self.export_limit_w = 0  # read back
        self.grid_ok = True  # the inverter's own grid status (connected, in window)


GRID_UNKNOWN = const(-1)  # Permits.grid: no usable meter window (invalid, stale, flagged)
GRID_DOWN = const(0)  # contact not at GRID, voltage lost or tripped, a device without grid
GRID_UP = const(1)


class Permits:
    """What the safety supervisor allows this cycle (read by control)."""

    def __init__(self):
        self.grid = GRID_UNKNOWN  # safety's judgement of the grid at its last tick
        self.state = 0  # safety.STATE_*
        self.export = False  # interlock energised: energy may flow toward the grid connection
        self.discharge = False  # car / battery may feed the house
        self.charge = False  # car may draw power
        self.island = False  # house confirmed isolated: backup mode
        self.limit_w = 0  # magnitude cap on any setpoint (re-arm ramp), W
        self.reason = 0  # safety.REASON_* for telemetry


class Setpoints:
    """What control decided this cycle (written to the devices by the bus task)."""

    def __init__(self):
        self.t_ms = 0
        self.ev_w = 0  # + charge, - discharge
        self.ev_session = False  # keep / open the charger session
        self.batt_w = 0  # home battery, + charge
        self.export_limit_w = 0  # inverter export limit (0 = no export)
        self.reason = 0  # control.REASON_*: why not charging / discharging


class Plan:
    """The planner's decision, handed to the controller (gateway.plan writes it on its slow
    cadence, gateway.control reads it every cycle; docs/planning.md)."""

    def __init__(self):
        self.force_w = 0  # charge at least this from the grid (0: no plan charging)
        self.floor_pct = 0  # discharge only above this SoC (at least the reserve)
        self.v2h = True  # False: the plan keeps the car's energy in this interval
        self.absorb = True  # False: surplus is worth more exported than stored


class Lag:
    """Event-loop lag: how late a short sleep wakes (Gateway.monitor writes it)."""

    def __init__(self):
        self.max_ms = 0  # worst since boot
        self.window_ms = 0  # worst since the last take_window()

    def add(self, lag_ms):
        if lag_ms > self.window_ms:
            self.window_ms = lag_ms
            self.max_ms = max(self.max_ms, lag_ms)

    def take_window(self):
        """The worst lag since the last call (telemetry: one state period), then restart."""
        v = self.window_ms
        self.window_ms = 0
        return v


class View:
    """Everything the console and telemetry read, built once by gateway.wiring.build():
    the records (read only), the config and log, the gateway's own measurements, and
    the name tables. No probing: every attribute is here, None where not fitted."""

    def __init__(self, clock, log, config, meter, charger, inverter, permits, setpoints,
                 counters, lag):
        self.clock = clock
        self.log = log  # gateway.log.Log
        self.config = config  # gateway.config.Config
        self.meter = meter
        self.charger = charger
        self.inverter = inverter
        self.permits = permits
        self.setpoints = setpoints
        self.counters = counters
        self.lag = lag  # Lag
        self.state_names = ()  # safety.STATE_NAMES: Permits.state -> text
        self.safety_reasons = {}  # safety.REASON_NAMES: Permits.reason -> text
        self.control_reasons = ()  # control.REASON_NAMES: Setpoints.reason -> text
        self.bus = None  # gateway.modbus.bus.Bus (stats()), or None: no bus
        self.bus_error = None  # why there is no bus (text), or None
        self.client = None  # gateway.mqtt.MQTTClient once telemetry is built
        self.planner = None  # gateway.plan.Planner
        self.tariff = None  # gateway.tariff.Tariff (the retained price topic lands here)
        self.actions = {}  # {"stop_now": fn} for commands
        # the field services (gateway/fieldwire.py); None where not fitted
        self.net = None  # gateway.netmgr.NetManager or ports.sim_net.Always
        self.sntp = None  # gateway.sntp.Sntp or fieldwire.HostTime
        self.tz = None  # gateway.tz.TZ
        self.ota = None  # gateway.ota.Updater
        self.persist = None  # gateway.persist.Persist


# W*ms in one Wh: energy is integrated in W*ms remainders so no step ever needs a float.
_WMS_PER_WH = const(3600000)
_MAX_ABS_W = const(100000)  # clamp: 1e5 W * 1e4 ms + remainder stays below 2**30
_MAX_DT_MS = const(10000)


class Counters:
    """Event and energy counters for telemetry and the console.

    Each producer increments its own fields in place (the bus task modbus_*,
    the MQTT client mqtt_drops, control charger_starts and add_energy once per
    cycle); telemetry reads them and rolls the day over with new_day().
    """

    def __init__(self):
        self.modbus_ok = 0  # completed Modbus transactions
        self.modbus_errors = 0  # timeouts, CRC errors, exception replies
        self.mqtt_drops = 0  # telemetry messages dropped by the bounded queue
        self.charger_starts = 0  # charger sessions opened (contactor cycles)
        self.day = 0  # day index the energy counters belong to (set by new_day)
        self.import_wh = 0  # energy today, Wh: grid import
        self.export_wh = 0  # grid export
        self.ev_in_wh = 0  # into the car (AC side)
        self.ev_out_wh = 0  # out of the car
        self.pv_wh = 0
        self._imp = 0  # remainders, W*ms (< 3.6e6 between calls)
        self._exp = 0
        self._evi = 0
        self._evo = 0
        self._pv = 0

    def add_energy(self, grid_w, ev_w, pv_w, dt_ms):
        """Integrate one interval (signs as in Meter/Setpoints). Allocates nothing."""
        if dt_ms <= 0:
            return
        dt_ms = min(dt_ms, _MAX_DT_MS)
        grid_w = _clamp(grid_w)
        ev_w = _clamp(ev_w)
        pv_w = _clamp(pv_w)
        if grid_w > 0:
            self._imp += grid_w * dt_ms
            q = self._imp // _WMS_PER_WH
            self.import_wh += q
            self._imp -= q * _WMS_PER_WH
        elif grid_w < 0:
            self._exp -= grid_w * dt_ms
            q = self._exp // _WMS_PER_WH
            self.export_wh += q
            self._exp -= q * _WMS_PER_WH
        if ev_w > 0:
            self._evi += ev_w * dt_ms
            q = self._evi // _WMS_PER_WH
            self.ev_in_wh += q
            self._evi -= q * _WMS_PER_WH
        elif ev_w < 0:
            self._evo -= ev_w * dt_ms
            q = self._evo // _WMS_PER_WH
            self.ev_out_wh += q
            self._evo -= q * _WMS_PER_WH
        if pv_w > 0:
            self._pv += pv_w * dt_ms
            q = self._pv // _WMS_PER_WH
            self.pv_wh += q
            self._pv -= q * _WMS_PER_WH

    def new_day(self, day):
        """Start the daily energy counters again (event counters keep counting)."""
        self.day = day
        self.import_wh = self.export_wh = self.ev_in_wh = self.ev_out_wh = self.pv_wh = 0
        self._imp = self._exp = self._evi = self._evo = self._pv = 0


def _clamp(w):
    if w > _MAX_ABS_W:
        return _MAX_ABS_W
    if w < -_MAX_ABS_W:
        return -_MAX_ABS_W
    return w
