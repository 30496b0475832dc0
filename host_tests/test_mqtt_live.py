"""The firmware's MQTT side, live: the node runs on the MicroPython unix port
(110 KB heap, firmware as .mpy) against mosquitto on a loopback port, watched by
paho-mqtt the way Home Assistant would see it."""

import json
import random
import re
import time

import pytest
from ha_discovery_schema import problems

from gwhost import mqttbench
from gwhost.broker import Broker, make_certs, mosquitto_path
from gwhost.telnode import Node, Observer

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed")
ROOT = "energygw/node1"


@pytest.fixture(scope="module")
def live():
    cfg = {"telemetry": {"period_s": 1}, "commands": {"rate_burst": 50, "rate_interval_ms": 100}}
    with Broker() as b, Node(b, cfg) as node:
        obs = Observer(b, (ROOT + "/#",))
        obs.connected.wait(5)
        node.wait_stats(lambda s: s["connected"] and s["discovered"] >= 1, 20)
        yield b, node, obs
        obs.close()


def _state(obs, since=0.0):
    return json.loads(obs.wait(ROOT + "/state", since=since)[-1][2])


def _discovery(b):
    """What a newly started Home Assistant receives: the retained configs."""
    with Observer(b, ("homeassistant/#",)) as ha:
        time.sleep(0.5)
        return ha.find()


def test_discovery_configs_are_retained_and_valid(live):
    b, _node, obs = live
    msgs = _discovery(b)
    assert len(msgs) == 36, [m[1] for m in msgs]  # 32 + the planner's 4 sensors
    state = _state(obs)
    for _, topic, payload, retained in msgs:
        assert retained, topic
        cfg = json.loads(payload)
        assert problems(topic, cfg) == [], (topic, problems(topic, cfg))
        assert cfg["availability_topic"] == ROOT + "/status"
        for key in re.findall(r"value_json\.(\w+)", cfg.get("value_template", "")):
            assert key in state, (topic, key)
    uids = [json.loads(m[2])["unique_id"] for m in msgs]
    assert len(set(uids)) == len(uids)
    plats = sorted({m[1].split("/")[1] for m in msgs})
    assert plats == ["binary_sensor", "button", "number", "select", "sensor"]


def test_discovery_again_when_home_assistant_restarts(live):
    """HA publishes "online" on homeassistant/status when it starts: send the configs again."""
    b, node, _obs = live
    n0 = node.stats["discovered"]
    with Observer(b, ("homeassistant/#",)) as ha:
        time.sleep(0.3)  # the retained configs arrive first
        t = time.monotonic()
        ha.publish("homeassistant/status", "online")
        got = ha.wait(since=t, count=32, timeout=10,
                      pred=lambda m: m[1].endswith("/config"))
    assert node.wait_stats(lambda s: s["discovered"] == n0 + 1)
    assert len({m[1] for m in got}) == 32


def test_availability_online_retained(live):
    b, _node, _obs = live
    with Observer(b, (ROOT + "/status",)) as late:
        got = late.wait(ROOT + "/status", timeout=5)
    assert got[-1][2:] == (b"online", True)


def test_state_messages_at_the_configured_period(live):
    _b, _node, obs = live
    t0 = time.monotonic()
    got = obs.wait(ROOT + "/state", since=t0, count=5, timeout=10)
    times = [m[0] for m in got]
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean = (times[-1] - times[0]) / (len(times) - 1)
    assert 0.8 <= mean <= 1.2, gaps  # period_s = 1
    assert max(gaps) < 1.8, gaps
    s = json.loads(got[-1][2])
    assert s["meter_ok"] is True and s["lag_max_ms"] >= 0 and s["heap_free"] > 0


def _command(obs, payload, cid):
    t = time.monotonic()
    obs.publish(ROOT + "/cmd", payload)
    r = obs.wait(ROOT + "/cmd/reply", since=t, timeout=5,
                 pred=lambda m: json.loads(m[2]).get("id") == cid)
    return json.loads(r[-1][2])


def test_controls_work_as_home_assistant_sends_them(live):
    b, node, obs = live
    cfgs = {m[1].split("/")[1] + "/" + m[1].split("/")[3]: json.loads(m[2])
            for m in _discovery(b)}
    sel = cfgs["select/mode"]
    t = time.monotonic()
    obs.publish(sel["command_topic"], sel["command_template"].replace("{{ value }}", "v1g"))
    r = obs.wait(ROOT + "/cmd/reply", since=t, timeout=5)
    assert json.loads(r[-1][2]) == {"result": "accepted", "applied": {"mode": "v1g"},
                                    "at_restart": []}
    assert _state(obs, time.monotonic())["mode"] == "v1g"
    num = cfgs["number/soc_reserve_pct"]
    t = time.monotonic()
    obs.publish(num["command_topic"], num["command_template"].replace("{{ value | int }}", "40"))
    r = obs.wait(ROOT + "/cmd/reply", since=t, timeout=5)
    assert json.loads(r[-1][2])["applied"] == {"soc_reserve_pct": 40}
    assert _state(obs, time.monotonic())["soc_reserve_pct"] == 40
    btn = cfgs["button/stop_now"]
    t = time.monotonic()
    obs.publish(btn["command_topic"], btn["payload_press"])
    r = obs.wait(ROOT + "/cmd/reply", since=t, timeout=5)
    assert json.loads(r[-1][2])["applied"] == {"stop_now": True}
    node.wait_stats(lambda s: s["stops"] == 1 and s["mode"] == "off", 5)


def test_bad_and_safety_commands_are_rejected_with_a_reason(live):
    _b, node, obs = live
    safety0 = node.wait_stats(lambda s: True)["safety"]
    key = sorted(safety0)[0]
    r = _command(obs, json.dumps({"id": 11, key: 1}), 11)
    assert r["result"] == "rejected" and "safety parameter, read-only" in r["reason"]
    r = _command(obs, '{"id": 12, "soc_max_pct": 500}', 12)
    assert r["reason"] == "soc_max_pct: 500 is above the maximum 100"
    time.sleep(1.2)
    assert node.stats["safety"] == safety0


def test_a_retained_command_is_not_replayed_on_connect():
    """A command left retained on the broker would be applied again at every reconnect."""
    with Broker() as b, Observer(b, ("energygw/node3/#",)) as obs:
        obs.publish("energygw/node3/cmd", '{"id": 1, "mode": "off"}', retain=True)
        with Node(b, {"telemetry": {"period_s": 1}}, node_id="node3") as node:
            r = json.loads(obs.wait("energygw/node3/cmd/reply", timeout=15)[-1][2])
            assert r == {"result": "rejected",
                         "reason": "retained command ignored: publish commands without retain"}
            assert node.wait_stats(lambda s: s["rejected"] == 1)["mode"] == "auto"


def test_fuzzed_commands_over_mqtt(live):
    """300 seeded payloads through the broker as fast as replies come: one reply each,
    no crash, safety kept; past the burst of 50 the rate limit answers most of them."""
    _b, node, obs = live
    safety0 = node.stats["safety"]
    rng = random.Random(7)
    keys = ["mode", "soc_reserve_pct", "soc_max_pct", "stop_now", "bogus", *sorted(safety0)]
    values = [0, 50, 101, -5, 2.5, True, None, "auto", "off", "x" * 300, [], {}]
    rejected = limited = 0
    for i in range(300):
        body = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 3))}
        if rng.random() < 0.2:
            payload = json.dumps(body)[: rng.randint(0, 20)] + '"id": %d}' % i
            cid = None
        else:
            body["id"] = i
            payload, cid = json.dumps(body), i
        t = time.monotonic()
        obs.publish(ROOT + "/cmd", payload)
        r = obs.wait(ROOT + "/cmd/reply", since=t, timeout=5)
        r = json.loads(r[-1][2])
        assert r["result"] in ("accepted", "rejected")
        if r.get("reason", "").startswith("rate limited"):
            limited += 1  # refused before it is parsed, so without the id
        elif cid is not None and len(payload) <= 256:  # longer ones are refused unread
            assert r.get("id") == cid
        if r["result"] == "rejected":
            rejected += 1
            assert len(r["reason"]) > 5
    s = node.wait_stats(lambda s: s["accepted"] + s["rejected"] >= 300, 5)
    assert s["safety"] == safety0
    assert node.proc.poll() is None
    assert rejected > 150 and limited > 100, (rejected, limited)


def test_last_will_when_the_process_is_killed():
    with Broker() as b, Node(b, {"telemetry": {"period_s": 1}}, node_id="node2") as node:
        with Observer(b, ("energygw/node2/status",)) as obs:
            obs.wait(pred=lambda m: m[2] == b"online", timeout=15)
            t = time.monotonic()
            node.kill()
            got = obs.wait(pred=lambda m: m[2] == b"offline", since=t, timeout=5)
            assert got[0][0] - t < 3.0
        with Observer(b, ("energygw/node2/status",)) as late:  # and it stays retained
            assert late.wait(timeout=5)[-1][2:] == (b"offline", True)


def test_broker_outage_reconnects_and_counts_drops():
    """Broker down 5 s (tools/bench-mqtt runs the full 60 s): back within 15 s of its
    return, the queue drops what it cannot hold and counts it, the loop keeps time."""
    r = mqttbench.outage(outage_s=5.0, queue_len=2)
    print(json.dumps(r))
    assert r["reconnect_s"] < 15.0, r
    assert r["drops"] >= 2, r
    assert r["attempts_outage"] >= 2, r  # it kept trying, with backoff
    assert 0 <= r["lag_max_ms"] < 500, r  # no blocking call froze the loop


def test_embedded_broker_fallback():
    with Broker(kind="amqtt") as b, Node(b, {"telemetry": {"period_s": 1}}) as node:
        with Observer(b, (ROOT + "/#",)) as obs:
            obs.wait(ROOT + "/state", timeout=15,
                     pred=lambda m: json.loads(m[2])["mqtt_connects"] >= 1)
            assert obs.wait(ROOT + "/status", timeout=5)[-1][2] == b"online"
            r = _command(obs, '{"id": 1, "mode": "off"}', 1)
            assert r["result"] == "accepted"
            t = time.monotonic()
            node.kill()
            obs.wait(ROOT + "/status", pred=lambda m: m[2] == b"offline", since=t, timeout=5)


def test_tls_with_the_broker_certificate_checked(tmp_path):
    with Broker(tls=True) as b:
        good = {"telemetry": {"period_s": 1}, "mqtt": {"tls": True, "ca_file": b.ca_path}}
        with Node(b, good) as node, Observer(b, (ROOT + "/state",)) as obs:
            obs.wait(ROOT + "/state", timeout=15)
            assert node.wait_stats(lambda s: s["connected"])["mqtt_error"] is None
        other_ca = make_certs(str(tmp_path), "127.0.0.1")[0]  # a CA that signed nothing here
        bad = {"telemetry": {"period_s": 1}, "mqtt": {"tls": True, "ca_file": other_ca}}
        with Node(b, bad, node_id="node4") as node:
            s = node.wait_stats(lambda s: s["attempts"] >= 2, 15)
            assert not s["connected"] and s["connects"] == 0


def test_a_whole_day_tariff_arrives_retained_and_a_bad_one_is_rejected(live):
    """192 quarter-hours (two days ahead: ~2 KB, the largest message the gateway takes)."""
    _b, _node, obs = live
    start = int(time.time()) // 900 * 900
    imp = [180 + (i * 37) % 200 for i in range(192)]
    exp = [60 + (i * 11) % 50 for i in range(192)]
    good = json.dumps({"start": start, "interval_min": 15, "import": imp, "export": exp})
    assert len(good) > 1800
    t = time.monotonic()
    obs.publish(ROOT + "/tariff", good, retain=True)
    deadline = time.monotonic() + 10
    while True:
        plan = _state(obs, t).get("plan") or {}
        if plan.get("slots") == 192 or time.monotonic() > deadline:
            break
    assert plan.get("slots") == 192 and not plan.get("tariff_err"), plan
    bad = good.replace('"interval_min": 15', '"interval_min": 7')
    t = time.monotonic()
    obs.publish(ROOT + "/tariff", bad, retain=True)
    deadline = time.monotonic() + 10
    while True:
        plan = _state(obs, t).get("plan") or {}
        if plan.get("tariff_err") or time.monotonic() > deadline:
            break
    assert "interval_min" in plan.get("tariff_err", ""), plan
    assert plan["slots"] == 192  # the old schedule is kept whole
    # too large for the client (skipped unread, handed over as None): rejected, kept
    huge = json.dumps({"start": start, "interval_min": 15, "import": imp, "export": exp,
                       "pad": "x" * 3000})
    t = time.monotonic()
    obs.publish(ROOT + "/tariff", huge, retain=True)
    deadline = time.monotonic() + 10
    while True:
        plan = _state(obs, t).get("plan") or {}
        if "longer" in (plan.get("tariff_err") or "") or time.monotonic() > deadline:
            break
    assert plan.get("tariff_err", "").startswith("tariff: longer than 3072 bytes"), plan
    assert plan["slots"] == 192
    # the widest schedule the docs promise (192 slots, every price 5 digits) fits
    wide = json.dumps({"start": start, "interval_min": 15, "import": [-5000] * 192,
                       "export": [-5000] * 192})
    assert len(wide) > 2700
    t = time.monotonic()
    obs.publish(ROOT + "/tariff", wide, retain=True)
    deadline = time.monotonic() + 10
    while True:
        plan = _state(obs, t).get("plan") or {}
        if plan.get("tariff_err") is None or time.monotonic() > deadline:
            break
    assert plan.get("tariff_err") is None and plan["slots"] == 192, plan
    obs.publish(ROOT + "/tariff", "", retain=True)  # clear it for the other tests
