# The board file's "analog" section: schema, defaults and validation (runs at start-up).
#
# SCHEMA follows the project rule {key: (default, lo, hi)}: ints with bounds, bools and
# strings (default, None, None), choices (default, (a, b, ...), None). The channel list and
# the optional linearisation table have their own shapes, checked here. Errors are
# gateway.schema.ConfigError (the one validator's) naming the key, e.g.
# "analog.channels[1].ma_per_v: ...". Every key applies at start (LIVE is empty).
from gateway.schema import ConfigError
from gateway.schema import section as _section

SCHEMA = {
    "path": ("adc", ("adc", "atm90e32"), None),  # direct ADC path or the metering IC
    "mode": ("uv", ("uv", "raw"), None),  # ESP32: read_uv() or raw codes + "lin" table
    "v_pin": (36, 0, 48),  # ADC1 pin of the voltage reference
    "v_mv_per_v": (406400, 1000, 5000000),  # mains mV rms per ADC V rms (divider/AC-AC)
    "v_bias_uv": (1650000, 100000, 3200000),  # nominal DC level of the V input, uV
    "v_min_mv": (100000, 0, 400000),  # below: no voltage reference
    "zc_hyst_mv": (10000, 0, 100000),  # zero-crossing hysteresis, mains mV
    "nominal_hz": (50, 45, 65),
    "cycles": (10, 2, 25),  # window length in mains cycles
    "timeout_ms": (300, 100, 900),  # a window ends after this even without crossings
    "period_us": (200, 40, 1000),  # target time between sample sets
    "buf_n": (96, 24, 256),  # samples per channel and chunk
    "lead_us": (500, 100, 3000),  # capture starts this long before a predicted crossing
    "max_hold_ms": (13, 5, 25),  # longest capture chunk (interpreter held)
    "clip_lo_uv": (60000, 0, 3300000),  # a sample at or below: clipped
    "clip_hi_uv": (3050000, 0, 3300000),  # a sample at or above: clipped
    "open_tol_uv": (300000, 10000, 3000000),  # DC level this far from bias: CT open
    "kernel": ("auto", ("auto", "viper", "python"), None),
}

CHANNEL_SCHEMA = {
    "pin": (39, 0, 48),
    "role": ("grid", ("grid", "house", "aux"), None),
    "phase": (0, 0, 2),  # Meter.ph_w index (grid channels)
    "ma_per_v": (166667, 1, 10000000),  # primary mA rms per ADC V rms: 100 A:50 mA CT, 12 ohm
    "phase_us": (0, -2000, 2000),  # voltage time shift for this CT: a CT lagging d us needs -d
    "bias_uv": (1650000, 100000, 3200000),
    "invert": (False, None, None),  # CT fitted the other way round
    "ic_input": (-1, -1, 2),  # path atm90e32: IC phase input A/B/C (-1: channel index)
}

MAX_CHANNELS = 6
LIVE = ()


def check(d, schema, where):
    """A new dict with defaults applied and every value checked; unknown keys are errors."""
    return _section(where, schema, d, strict=True)


def _lin(table, where):
    """[[code, uv], ...] (increasing codes 0..4095) -> 33 values in 0.1 mV every 128 codes."""
    if not isinstance(table, list) or len(table) < 2:
        raise ConfigError("%s: needs at least two [code, uv] points" % where)
    pts = []
    for i, p in enumerate(table):
        if (not isinstance(p, list) or len(p) != 2 or not isinstance(p[0], int)
                or not isinstance(p[1], int)):
            raise ConfigError("%s[%d]: must be [code, uv]" % (where, i))
        if pts and p[0] <= pts[-1][0]:
            raise ConfigError("%s[%d]: codes must increase" % (where, i))
        if not 0 <= p[0] <= 4095 or not 0 <= p[1] <= 3276700:
            raise ConfigError("%s[%d]: code 0..4095, uv 0..3276700" % (where, i))
        pts.append(p)
    out = []
    j = 0
    for k in range(33):
        code = k * 128
        while j < len(pts) - 2 and pts[j + 1][0] < code:
            j += 1
        (c0, u0), (c1, u1) = pts[j], pts[j + 1]
        uv = u0 + (u1 - u0) * (code - c0) // (c1 - c0)
        out.append(min(32767, max(0, uv // 100)))
    return out


def _rule(cfg):
    """Rules across keys of the flat section."""
    if cfg["clip_lo_uv"] >= cfg["clip_hi_uv"]:
        raise ConfigError("analog.clip_lo_uv: must be below clip_hi_uv")


def validate(section):
    """The validated "analog" section: SCHEMA keys plus "channels" (list) and "lin"."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError("analog: must be an object")
    flat = {}
    for k, v in section.items():
        if k not in ("channels", "lin", "sim", "atm90e32"):
            flat[k] = v
    cfg = _section("analog", SCHEMA, flat, strict=True, rule=_rule)
    chans = section.get("channels", [{}])
    if not isinstance(chans, list) or not 1 <= len(chans) <= MAX_CHANNELS:
        raise ConfigError("analog.channels: 1..%d channel objects" % MAX_CHANNELS)
    cfg["channels"] = [check(c, CHANNEL_SCHEMA, "analog.channels[%d]" % i)
                       for i, c in enumerate(chans)]
    lin = section.get("lin")
    cfg["lin"] = _lin(lin, "analog.lin") if lin is not None else None
    if cfg["mode"] == "raw" and cfg["lin"] is None:
        raise ConfigError("analog.lin: required when mode is raw")
    cfg["sim"] = section.get("sim", {})
    cfg["atm90e32"] = section.get("atm90e32", {})
    cfg["_valid"] = True
    return cfg
