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
        self.f_mhz = 0  # mains frequency, mHz
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


class Permits:
    """What the safety supervisor allows this cycle (read by control)."""

    def __init__(self):
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
