"""Property tests of the MQTT command handler (CPython, hypothesis): whatever arrives,
it answers with accepted/rejected and a reason, never raises, never writes safety."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_commands import SAFETY, SCHEMAS, fresh

from gateway import commands

KEYS = st.sampled_from(["mode", "soc_reserve_pct", "soc_max_pct", "period_s", "stop_now",
                        "id", "safety", "host", *SAFETY]) | st.text(max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(-(10**15), 10**15)
           | st.floats(allow_nan=False) | st.text(max_size=40)
           | st.sampled_from(["auto", "off", "v1g", "pv"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
COMMANDS = st.dictionaries(KEYS, VALUES, max_size=5).map(lambda d: json.dumps(d).encode())
PAYLOADS = COMMANDS | st.binary(max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PAYLOADS, min_size=1, max_size=8), st.booleans())
def test_any_payload_gets_a_reply_and_safety_stays(payloads, retained):
    c, data, applied, _ = fresh(burst=50, interval_ms=100)
    safety0 = json.dumps(data["safety"], sort_keys=True)
    t = 0
    for p in payloads:
        t += 1000
        ok, text = c.handle(p, t, retained)
        r = json.loads(text)
        assert r["result"] == ("accepted" if ok else "rejected")
        if ok:
            assert not retained
            assert set(r["applied"]) <= set(commands.WRITABLE) | set(commands.ACTIONS)
        else:
            assert isinstance(r["reason"], str) and len(r["reason"]) > 5
    assert json.dumps(data["safety"], sort_keys=True) == safety0
    for changes in applied:
        assert {sec for sec, _, _ in changes} <= {"control", "telemetry"}
    ctl = data["control"]
    assert ctl["soc_reserve_pct"] <= ctl["soc_max_pct"]
    assert SCHEMAS["control"]["mode"][1].count(ctl["mode"]) == 1
