# Safety supervisor settings: schema, grid-code profiles, validation.
#
# Every key here is a safety parameter: READ_ONLY_KEYS lists them all so the
# MQTT command layer refuses to write any of them (architecture: "Safety
# parameters are not writable over MQTT"). They come from the config file (and the
# serial console). Only `backup` applies while running (Safety.apply_setting); every
# other key takes effect at the next start. Unknown keys are errors (strict section),
# and a section that fails latches FAULT (gateway.config, docs/safety.md).
#
# Grid-code values (voltage in permille of v_nom_mv, frequency in mHz, times in
# ms) default to -1 = "take it from the selected profile", so one key switches
# between the European and the IEEE 1547 settings and any single value can
# still be overridden. Sources and the [U] marks are in docs/safety.md.

from gateway.schema import ConfigError, section

_P = -1  # "from the profile"

# profile -> effective values of the keys that default to -1
PROFILES = {
    # VDE-AR-N 4105:2018 / EN 50549-1 style, 230 V 50 Hz [mostly U, see docs/safety.md]
    "eu": {
        "v_nom_mv": 230000,
        "v_loss_pm": 200,  # below 46 V the reference counts as lost at once
        "uv1_pm": 800, "uv1_ms": 3000,  # U<  184 V, 3 s
        "uv2_pm": 450, "uv2_ms": 300,  # U<< 103.5 V, 0.3 s
        "ov1_pm": 1100, "ov1_ms": 0, "ov1_mean_s": 600,  # U>  253 V as 10-min sliding mean
        "ov2_pm": 1150, "ov2_ms": 100,  # U>> 264.5 V, 0.1 s
        "uf1_mhz": 47500, "uf1_ms": 100, "uf2_mhz": 47000, "uf2_ms": 0,
        "of1_mhz": 51500, "of1_ms": 100, "of2_mhz": 52000, "of2_ms": 0,
        "rc_v_lo_pm": 850, "rc_v_hi_pm": 1100,  # reconnect: 195.5-253 V
        "rc_f_lo_mhz": 47500, "rc_f_hi_mhz": 50100,  # reconnect: 47.5-50.1 Hz
        "reconnect_ms": 60000,
        "ramp_s": 600,  # ramp_w_s = limit_max_w / 600: 10 % of the maximum per minute
    },
    # IEEE 1547-2018 defaults (Category I voltage trip times, the faster ones), 60 Hz
    "ieee1547": {
        "v_nom_mv": 120000,
        "v_loss_pm": 200,
        "uv1_pm": 700, "uv1_ms": 2000,
        "uv2_pm": 450, "uv2_ms": 160,
        "ov1_pm": 1100, "ov1_ms": 2000, "ov1_mean_s": 0,
        "ov2_pm": 1200, "ov2_ms": 160,
        "uf1_mhz": 58500, "uf1_ms": 300000, "uf2_mhz": 56500, "uf2_ms": 160,
        "of1_mhz": 61200, "of1_ms": 300000, "of2_mhz": 62000, "of2_ms": 160,
        "rc_v_lo_pm": 917, "rc_v_hi_pm": 1050,
        "rc_f_lo_mhz": 59500, "rc_f_hi_mhz": 60100,
        "reconnect_ms": 300000,
        "ramp_s": 300,  # ramp_w_s = limit_max_w / 300
    },
}

# key: (default, lo, hi); choices: (default, (choices...), None); bools: (default, None, None)
SCHEMA = {
    "profile": ("eu", ("eu", "ieee1547"), None),
    "v_nom_mv": (_P, _P, 480000),
    "v_loss_pm": (_P, _P, 900),
    "uv1_pm": (_P, _P, 1000), "uv1_ms": (_P, _P, 600000),
    "uv2_pm": (_P, _P, 1000), "uv2_ms": (_P, _P, 600000),
    "ov1_pm": (_P, _P, 2000), "ov1_ms": (_P, _P, 600000), "ov1_mean_s": (_P, _P, 600),
    "ov2_pm": (_P, _P, 2000), "ov2_ms": (_P, _P, 600000),
    "uf1_mhz": (_P, _P, 70000), "uf1_ms": (_P, _P, 600000),
    "uf2_mhz": (_P, _P, 70000), "uf2_ms": (_P, _P, 600000),
    "of1_mhz": (_P, _P, 70000), "of1_ms": (_P, _P, 600000),
    "of2_mhz": (_P, _P, 70000), "of2_ms": (_P, _P, 600000),
    "rc_v_lo_pm": (_P, _P, 2000), "rc_v_hi_pm": (_P, _P, 2000),
    "rc_f_lo_mhz": (_P, _P, 70000), "rc_f_hi_mhz": (_P, _P, 70000),
    "reconnect_ms": (_P, _P, 900000),  # all evidence safe this long before release
    "ramp_w_s": (_P, _P, 100000),  # Permits.limit_w rise after release, W per s
    "rocof_mhz_s": (1000, 0, 10000),  # |df/dt| limit, 0 = off (UK G99 LoM: 1 Hz/s)
    "rocof_ms": (500, 0, 10000),
    "limit_max_w": (11000, 100, 100000),  # Permits.limit_w once ramped
    "contact_stable_ms": (500, 20, 10000),  # contact must hold this long to count
    "meter_stale_ms": (1000, 100, 10000),
    "device_stale_ms": (5000, 500, 60000),
    "meter_flag_mask": (0x3FFFFFFF, 0, 0x3FFFFFFF),  # Meter.flags bits that block
    "stop_confirm_ms": (1000, 100, 10000),  # block -> devices read back zero, else FAULT
    "tick_gap_ms": (1000, 50, 10000),  # longer without a tick restarts the delay
    "backup": (True, None, None),  # allow ISLAND_BACKUP at all
}

READ_ONLY = True  # the whole section is refused by the MQTT command layer
LIVE = ("backup",)  # applied at once; the trip windows, delays and limits at restart
READ_ONLY_KEYS = tuple(sorted(SCHEMA))

# lower bounds that apply once a "-1 = profile" value is resolved
_REAL_LO = {"v_nom_mv": 50000, "reconnect_ms": 1000, "ramp_w_s": 1, "uf1_mhz": 1000, "uf2_mhz": 1000,
            "of1_mhz": 1000, "of2_mhz": 1000, "rc_f_lo_mhz": 1000, "rc_f_hi_mhz": 1000}


def _err(key, msg):
    return ConfigError("safety.%s: %s" % (key, msg))


def _below(c, a, b, what, strict=True):
    # a < b (strict) or a <= b: a window bound may sit on its trip threshold
    if c[a] > c[b] or (strict and c[a] == c[b]):
        raise _err(b, "%d must be %s %s (%d): %s" % (
            c[b], "above" if strict else "at least", a, c[a], what))


def resolve(cfg):
    """The effective settings of a complete, type-checked section (a new dict): profile
    values (-1) resolved, windows checked to nest; ConfigError names the key."""
    c = dict(cfg)
    prof = PROFILES[c["profile"]]
    if c["ramp_w_s"] == _P:
        c["ramp_w_s"] = max(1, c["limit_max_w"] // prof["ramp_s"])
    for k, v in c.items():
        if v == _P:
            c[k] = prof[k]
        elif k in _REAL_LO and v < _REAL_LO[k]:
            raise _err(k, "%d is below %d" % (v, _REAL_LO[k]))
    # stages nested, the reconnection window inside the trip window
    _below(c, "v_loss_pm", "uv2_pm", "voltage stages")
    _below(c, "uv2_pm", "uv1_pm", "voltage stages", False)
    _below(c, "uv1_pm", "rc_v_lo_pm", "reconnection window", False)
    _below(c, "rc_v_lo_pm", "rc_v_hi_pm", "reconnection window")
    _below(c, "rc_v_hi_pm", "ov1_pm", "reconnection window", False)
    _below(c, "ov1_pm", "ov2_pm", "voltage stages", False)
    _below(c, "uf2_mhz", "uf1_mhz", "frequency stages", False)
    _below(c, "uf1_mhz", "rc_f_lo_mhz", "reconnection window", False)
    _below(c, "rc_f_lo_mhz", "rc_f_hi_mhz", "reconnection window")
    _below(c, "rc_f_hi_mhz", "of1_mhz", "reconnection window", False)
    _below(c, "of1_mhz", "of2_mhz", "frequency stages", False)
    if c["ov1_mean_s"] and c["ov1_mean_s"] < 3:
        raise _err("ov1_mean_s", "a sliding mean needs at least 3 s (one bucket)")
    return c


def rule(cfg):
    """The section's rules across keys, for the one validator (gateway.schema.section)."""
    resolve(cfg)


def validate(cfg=None):
    """The complete, effective settings dict for `cfg` (a dict or None).

    Unknown keys, wrong types, values out of range and inconsistent windows raise
    gateway.schema.ConfigError naming the key. Profile values (-1) are resolved.
    """
    return resolve(section("safety", SCHEMA, cfg, strict=True))
