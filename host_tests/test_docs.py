"""The docs name only commands that exist: every console command written with the prompt
(`> status`) runs on a real console, and every MQTT command shown as JSON is accepted by
the real command handler, both on the gateway as wiring.build() makes it."""

import glob
import json
import os
import re

import pytest

from gwhost import paths

DOCS = sorted(glob.glob(os.path.join(paths.ROOT, "docs", "*.md"))) + [
    os.path.join(paths.ROOT, "README.md")]


def _spans():
    """(file, paragraph, span) for every inline code span in the docs."""
    out = []
    for f in DOCS:
        for para in re.split(r"\n\s*\n", open(f).read()):
            for sp in re.findall(r"`([^`\n]+)`", para):
                out.append((os.path.relpath(f, paths.ROOT), para, sp))
    return out


def console_commands():
    return sorted({(f, sp[2:].strip()) for f, _, sp in _spans() if sp.startswith("> ")})


def mqtt_commands():
    """JSON objects in paragraphs about commands (not replies, not HA templates)."""
    found = set()
    for f, para, sp in _spans():
        if not sp.startswith("{") or "{{" in sp or not re.search(r"command|/cmd", para):
            continue
        try:
            obj = json.loads(sp)
        except ValueError:
            continue
        if isinstance(obj, dict) and "result" not in obj:
            found.add((f, sp))
    return sorted(found)


def _gateway(console):
    from gateway.ports.sim import SimBoard
    from gateway.wiring import build
    from test_telemetry import Client

    return build(SimBoard({"name": "docs", "port": "sim"}), None, out=lambda s: None,
                 client=Client(), console=console)


def test_the_docs_name_commands():
    # the scan itself must find the documented commands, or the tests below prove nothing
    cmds = {c.split()[0] for _, c in console_commands()}
    assert {"status", "meters", "bus", "safety", "mqtt", "config", "log", "help"} <= cmds
    assert any('"mode"' in j for _, j in mqtt_commands())
    assert any('"departure_min"' in j for _, j in mqtt_commands())


@pytest.mark.parametrize("where,line", console_commands())
def test_console_command_in_the_docs_exists(where, line):
    con = _gateway(True).console
    out = con.execute(line)
    assert out, (where, line)
    assert not out[0].startswith("error: unknown command"), (where, line, out)
    words = line.split()
    if words[0] == "config":
        assert len(words) > 1 and words[1] in ("get", "set", "save"), (where, line)


@pytest.mark.parametrize("where,payload", mqtt_commands())
def test_mqtt_command_in_the_docs_is_accepted(where, payload):
    gw = _gateway(False)
    t = gw.telemetry
    t.on_message(t.topics.cmd, payload.encode(), False)
    reply = json.loads(t.client.posted[-1][1])
    assert reply["result"] == "accepted", (where, payload, reply)
