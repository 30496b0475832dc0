"""tools/provision: values checked on the PC, secrets masked in --dry-run, and the script it
sends to the board merges config.json/secrets.json atomically (run here on the unix port)."""

import argparse
import json
import subprocess

from gwhost import paths, provision

ARGS = ["--ssid", "home", "--password", "secret-123", "--broker", "192.168.1.10",
        "--mqtt-password", "mq-secret", "--tz", "GMT0BST,M3.5.0/1,M10.5.0"]


def test_dry_run_masks_secrets(capsys):
    assert provision.main(ARGS + ["--port", "/dev/ttyUSB0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mpremote connect /dev/ttyUSB0 exec" in out
    assert "secret-123" not in out and "mq-secret" not in out
    assert "GMT0BST" in out


def test_bad_input_is_named(capsys):
    cases = ((["--ssid", "x", "--password", "short"], "8-63"),
             (["--tz", "CET-1CEST"], "--tz"),
             (["--password", "longenough"], "needs --ssid"),
             ([], "nothing to provision"),
             (["--tz", "UTC0"], "--port is needed"))
    for args, what in cases:
        assert provision.main(args) == 2
        assert what in capsys.readouterr().err


def test_board_script_merges_atomically_on_micropython(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"control": {"mode": "pv"},
                                                      "net": {"hostname": "gw1"}}))
    cfg, sec = provision.settings(argparse.Namespace(
        port=None, ssid="home", password="secret-123", eth=False, broker="10.0.0.2",
        broker_port=1884, mqtt_user=None, mqtt_password="mq-secret",
        tz="CET-1CEST,M3.5.0,M10.5.0/3", dry_run=False))
    script = tmp_path / "prov.py"
    script.write_text(provision.board_script(cfg, sec, str(tmp_path) + "/"))
    p = subprocess.run([paths.MICROPYTHON, str(script)], capture_output=True, text=True,
                       check=False, env=paths.micropython_env(source=True))
    assert p.returncode == 0, p.stderr
    c = json.loads((tmp_path / "config.json").read_text())
    assert c["control"] == {"mode": "pv"}  # what was there stays
    assert c["net"] == {"hostname": "gw1", "mode": "wifi", "ssid": "home"}
    assert c["mqtt"] == {"host": "10.0.0.2", "port": 1884}
    assert c["time"]["tz"] == "CET-1CEST,M3.5.0,M10.5.0/3"
    s = json.loads((tmp_path / "secrets.json").read_text())
    assert s == {"net": {"password": "secret-123"}, "mqtt": {"password": "mq-secret"}}
    assert json.loads((tmp_path / "config.json.bak").read_text())["net"] == {"hostname": "gw1"}
    assert not (tmp_path / "config.json.tmp").exists()
