"""Provision a flashed board from a PC: Wi-Fi, MQTT broker and time zone (tools/provision).

  tools/provision --port /dev/ttyUSB0 --ssid NET --password PW [--broker HOST
      [--broker-port N] [--mqtt-user U] [--mqtt-password P]] [--tz POSIX_TZ] [--eth]
      [--dry-run]

It checks the values here (the same rules as the firmware: SSID 1-32 characters, WPA2
password 8-63, the time zone parsed by gateway/tz.py), then runs a short script on the
board with mpremote that merges them into config.json and secrets.json (each written to
.tmp, read back, the old file kept as .bak, then renamed into place: a power cut leaves
the old or the new file) and resets the board. Settings already on the board stay.
--dry-run prints the mpremote commands with the secrets masked and touches nothing.
Exit status 2 with a message naming the problem on bad input.
"""

import argparse
import json
import os
import subprocess
import sys

from gwhost import paths

MPREMOTE = os.path.join(paths.VENV_BIN, "mpremote")

# Runs on the board (MicroPython) or the unix port (tests): merge and write atomically.
BOARD_SCRIPT = r"""
import json, os
def _merge(path, upd):
    cur = {}
    for p in (path, path + ".tmp", path + ".bak"):
        try:
            with open(p) as f:
                cur = json.load(f)
            if isinstance(cur, dict):
                break
        except (OSError, ValueError):
            cur = {}
    for sec, vals in upd.items():
        d = cur.get(sec)
        if not isinstance(d, dict):
            d = cur[sec] = {}
        d.update(vals)
    data = json.dumps(cur)
    with open(path + ".tmp", "w") as f:
        f.write(data)
    with open(path + ".tmp") as f:
        if f.read() != data:
            raise OSError("read-back differs: " + path)
    try:
        os.remove(path + ".bak")
    except OSError:
        pass
    try:
        os.rename(path, path + ".bak")
    except OSError:
        pass
    os.rename(path + ".tmp", path)
_merge(%(base)r + "config.json", %(config)r)
_merge(%(base)r + "secrets.json", %(secrets)r)
print("provisioned:", sorted(%(config)r), "secrets:", sorted(%(secrets)r))
"""


class ProvisionError(Exception):
    pass


def settings(a):
    """(config, secrets) dicts from the arguments, checked; ProvisionError names the problem."""
    cfg, sec = {}, {}
    if a.eth:
        cfg["net"] = {"mode": "eth"}
    if a.ssid is not None:
        if not 1 <= len(a.ssid) <= 32:
            raise ProvisionError("--ssid: 1-32 characters")
        if a.password is None or not 8 <= len(a.password) <= 63:
            raise ProvisionError("--password: a WPA2 password has 8-63 characters")
        cfg["net"] = {"mode": "wifi", "ssid": a.ssid}
        sec["net"] = {"password": a.password}
    elif a.password is not None:
        raise ProvisionError("--password needs --ssid")
    if a.broker is not None:
        if not a.broker or " " in a.broker:
            raise ProvisionError("--broker: a host name or IP address")
        m = {"host": a.broker}
        if a.broker_port is not None:
            if not 1 <= a.broker_port <= 65535:
                raise ProvisionError("--broker-port: 1-65535")
            m["port"] = a.broker_port
        if a.mqtt_user is not None:
            m["user"] = a.mqtt_user
        cfg["mqtt"] = m
        if a.mqtt_password is not None:
            sec["mqtt"] = {"password": a.mqtt_password}
    if a.tz is not None:
        sys.path.insert(0, paths.FIRMWARE)
        from gateway.tz import TZ, TZError

        try:
            TZ(a.tz)
        except TZError as e:
            raise ProvisionError("--tz: %s" % e)
        cfg["time"] = {"tz": a.tz}
    if not cfg and not sec:
        raise ProvisionError("nothing to provision: give --ssid/--password, --eth, --broker or --tz")
    return cfg, sec


def board_script(cfg, sec, base=""):
    return BOARD_SCRIPT % {"base": base, "config": cfg, "secrets": sec}


def _masked(sec):
    return {s: dict.fromkeys(v, "********") for s, v in sec.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="provision", description=__doc__.splitlines()[0])
    ap.add_argument("--port", help="serial port of the board (e.g. /dev/ttyUSB0)")
    ap.add_argument("--ssid")
    ap.add_argument("--password")
    ap.add_argument("--eth", action="store_true", help="Ethernet board (net.mode eth)")
    ap.add_argument("--broker")
    ap.add_argument("--broker-port", type=int)
    ap.add_argument("--mqtt-user")
    ap.add_argument("--mqtt-password")
    ap.add_argument("--tz")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    try:
        cfg, sec = settings(a)
        if not a.port and not a.dry_run:
            raise ProvisionError("--port is needed (or --dry-run)")
    except ProvisionError as e:
        print("provision: %s" % e, file=sys.stderr)
        return 2
    port = a.port or "PORT"
    run = [MPREMOTE, "connect", port, "exec", board_script(cfg, sec)]
    reset = [MPREMOTE, "connect", port, "reset"]
    if a.dry_run:
        shown = board_script(cfg, _masked(sec))
        print("mpremote connect %s exec <<'EOF'%sEOF" % (port, shown))
        print("mpremote connect %s reset" % port)
        print("# config: %s" % json.dumps(cfg))
        print("# secrets: %s" % json.dumps(_masked(sec)))
        return 0
    for cmd in (run, reset):
        p = subprocess.run(cmd, check=False)
        if p.returncode:
            print("provision: mpremote failed (%d); is the board on %s?" % (p.returncode, port),
                  file=sys.stderr)
            return 1
    print("provisioned; the board restarts and joins the network (watch: tools/deploy --console)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
