"""Who may steer the gateway over MQTT, live against mosquitto: TLS with the broker's
certificate and name checked, and the documented accounts + ACL
(docs/installer-guide.md, section 6) with which only named users' commands arrive."""

import json
import os
import re
import time

import pytest

from gwhost import paths
from gwhost.broker import Broker, mosquitto_path
from gwhost.telnode import Node, Observer

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed")


def documented_acl():
    """The ACL block of the installer's guide, exactly as an installer would copy it."""
    with open(os.path.join(paths.ROOT, "docs", "installer-guide.md")) as f:
        text = f.read()
    for block in re.findall(r"```text\n(.*?)```", text, re.S):
        if "acl_file for the energy gateway" in block:
            return block
    raise AssertionError("no mosquitto ACL block in docs/installer-guide.md")


def test_tls_checks_the_broker_name():
    """The certificate names the broker only as mqtt.example: connecting to the IP
    literal without mqtt.server_hostname is refused, with it the link comes up."""
    with Broker(tls=True, cert_dns=("mqtt.example",), cert_ip=False) as b:
        tls = {"tls": True, "ca_file": b.ca_path}
        wrong = {"telemetry": {"period_s": 1}, "mqtt": dict(tls)}
        with Node(b, wrong, node_id="node5") as node:
            s = node.wait_stats(lambda s: s["attempts"] >= 2, 20)
            assert not s["connected"] and s["connects"] == 0, s
            assert s["mqtt_error"], s
        named = {"telemetry": {"period_s": 1},
                 "mqtt": dict(tls, server_hostname="mqtt.example")}
        with Node(b, named, node_id="node6") as node:
            s = node.wait_stats(lambda s: s["connected"] and s["states"] >= 1, 20)
            assert s["mqtt_error"] is None and s["cfg_error"] is None, s
        other = {"telemetry": {"period_s": 1},
                 "mqtt": dict(tls, server_hostname="evil.example")}
        with Node(b, other, node_id="node7") as node:
            s = node.wait_stats(lambda s: s["attempts"] >= 2, 20)
            assert s["connects"] == 0, s


def _reply(obs, root, cid, timeout=5.0, since=0.0):
    got = obs.wait(root + "/cmd/reply", since=since, timeout=timeout,
                   pred=lambda m: json.loads(m[2]).get("id") == cid)
    return json.loads(got[-1][2])


def test_only_named_users_command_the_gateway():
    users = {"gateway": "gw-secret", "homeassistant": "ha-secret", "viewer": "view-secret"}
    root = "energygw/node8"
    with Broker(users=users, acl=documented_acl()) as b:
        cfg = {"telemetry": {"period_s": 1}, "mqtt": {"user": "gateway"}}
        with Node(b, cfg, secrets={"mqtt": {"password": "gw-secret"}}, node_id="node8") as node, \
                Observer(b, (root + "/#",), user="homeassistant", password="ha-secret") as ha:
            node.wait_stats(lambda s: s["connected"] and s["states"] >= 1, 20)
            ha.wait(root + "/state", timeout=10)  # the owner's account reads the state
            # no account: refused at connect, so nothing it sends can arrive
            anon = Observer(b, (root + "/#",))
            time.sleep(1.0)
            assert not anon.connected.is_set() and anon.rc is not None and anon.rc != 0
            anon.close()
            # a named account with read rights only: connects, reads, but its command
            # is dropped by the broker
            with Observer(b, (root + "/#",), user="viewer", password="view-secret") as viewer:
                viewer.wait(root + "/state", timeout=10)
                n0 = node.stats["received"]
                t = time.monotonic()
                viewer.publish(root + "/cmd", '{"id": 5, "mode": "off"}', qos=1)
                time.sleep(2.0)
                assert not ha.find(root + "/cmd/reply", since=t)
                s = node.wait_stats(lambda s: s["states"] >= 1)
                assert s["received"] == n0 and s["mode"] == "auto", s
            # the owner's account: the command arrives and is applied
            t = time.monotonic()
            ha.publish(root + "/cmd", '{"id": 6, "mode": "v1g"}', qos=1)
            assert _reply(ha, root, 6, since=t) == {"id": 6, "result": "accepted",
                                                    "applied": {"mode": "v1g"},
                                                    "at_restart": []}
            assert node.wait_stats(lambda s: s["mode"] == "v1g", 5)["received"] > n0


def test_a_flood_of_junk_never_blocks_stop_now():
    """Default budgets (5 commands, then one per 2 s): 300 junk and other commands as
    fast as the broker takes them, then the owner's "stop now" is obeyed at once."""
    root = "energygw/node9"
    with Broker() as b, Node(b, {"telemetry": {"period_s": 1}}, node_id="node9") as node, \
            Observer(b, (root + "/#",)) as obs:
        node.wait_stats(lambda s: s["connected"] and s["states"] >= 1, 20)
        junk = ("junk", '{"mode": "turbo"}', '{"mode": "auto"}', "{}", '{"stop_now": 1}',
                '{"stop_now": true, "mode": "auto"}', "x" * 300, '["stop_now"]')
        for i in range(300):
            obs.c.publish(root + "/cmd", junk[i % len(junk)], qos=0)
        # QoS 0: under load the broker may drop a few; the flood is what matters
        node.wait_stats(lambda s: s["received"] >= 250, 30)
        t = time.monotonic()
        obs.publish(root + "/cmd", '{"id": 77, "stop_now": true}', qos=1)
        s = node.wait_stats(lambda s: s["stops"] == 1, 5)
        assert s["mode"] == "off", s
        assert _reply(obs, root, 77, since=t) == {"id": 77, "result": "accepted",
                                                   "applied": {"stop_now": True},
                                                   "at_restart": []}
        assert s["rejected"] >= 240 and s["accepted"] <= 10, s  # the junk was refused
