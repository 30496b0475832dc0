"""Put the firmware on a real board (make deploy / console / flash).

  tools/deploy --port /dev/ttyUSB0 --board esp32-devkitc [--config FILE] [--dry-run]
      copies build/firmware (from `make build`), boards/<board>.json as /board.json,
      the configuration as /config.json and, when present, secrets.json, then resets.
  tools/deploy --console --port /dev/ttyUSB0      the serial console (mpremote terminal)
  tools/deploy --flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC.bin
      erases the flash and writes a MicroPython image with esptool.

--dry-run prints the commands without running them. Without a device the
command fails with a clear message (exit 2), never a traceback.
"""

import argparse
import glob
import json
import os
import shlex
import subprocess
import sys

from gwhost import paths

MPREMOTE = os.path.join(paths.VENV_BIN, "mpremote")
ESPTOOL = os.path.join(paths.VENV_BIN, "esptool")
REQUIRED_BOARD_KEYS = ("port", "interlock", "contact", "uarts")


class DeployError(Exception):
    pass


def find_port(port):
    if port:
        if not os.path.exists(port):
            raise DeployError("no device at %s: connect the gateway board by USB, or give "
                              "the right one with PORT=/dev/ttyUSB0" % port)
        return port
    found = sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"))
    if not found:
        raise DeployError("no serial device found (looked for /dev/ttyUSB* and /dev/ttyACM*): "
                          "connect the board by USB or give PORT=/dev/ttyUSB0")
    if len(found) > 1:
        raise DeployError("several serial devices (%s): choose one with PORT=..."
                          % ", ".join(found))
    return found[0]


def board_file(name):
    if not name:
        raise DeployError("which board? give BOARD=<name>, one of: %s" % ", ".join(board_names()))
    path = name if name.endswith(".json") else os.path.join(paths.BOARDS, name + ".json")
    if not os.path.exists(path):
        raise DeployError("unknown board %r; known boards: %s" % (name, ", ".join(board_names())))
    with open(path) as f:
        try:
            spec = json.load(f)
        except ValueError as e:
            raise DeployError("board file %s is not valid JSON: %s" % (path, e)) from e
    missing = [k for k in REQUIRED_BOARD_KEYS if k not in spec]
    if missing:
        raise DeployError("board file %s lacks %s" % (path, ", ".join(missing)))
    if spec["port"] != "esp32":
        raise DeployError("board %s is for the %r port, not a real board" % (name, spec["port"]))
    return os.path.relpath(path, paths.ROOT)


def board_names():
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(paths.BOARDS, "*.json"))
                  if json.load(open(p)).get("port") == "esp32")


def deploy_commands(port, board, config=None, secrets=None, build=None):
    build = build or os.path.join("build", "firmware")
    if not os.path.isdir(os.path.join(paths.ROOT, build, "gateway")):
        raise DeployError("no built firmware in %s: run `make build` first" % build)
    cmd = [MPREMOTE, "connect", port,
           "fs", "cp", "-r", os.path.join(build, "gateway"), ":", "+",
           "fs", "cp", os.path.join(build, "main.py"), ":main.py", "+",
           "fs", "cp", board, ":board.json"]
    if config:
        cmd += ["+", "fs", "cp", config, ":config.json"]
    if secrets:
        cmd += ["+", "fs", "cp", secrets, ":secrets.json"]
    cmd += ["+", "reset"]
    return [cmd]


def flash_commands(port, firmware):
    if not firmware or not os.path.exists(firmware):
        raise DeployError("give the MicroPython image to write with FIRMWARE=<file.bin> "
                          "(an ESP32_GENERIC build from micropython.org or your own frozen one)")
    return [[ESPTOOL, "--chip", "esp32", "--port", port, "erase-flash"],
            [ESPTOOL, "--chip", "esp32", "--port", port, "--baud", "460800",
             "write-flash", "-z", "0x1000", firmware]]


def main(argv=None):
    ap = argparse.ArgumentParser(description="deploy the firmware to a board")
    ap.add_argument("--port")
    ap.add_argument("--board")
    ap.add_argument("--config", help="configuration JSON to install as /config.json")
    ap.add_argument("--console", action="store_true")
    ap.add_argument("--flash", action="store_true")
    ap.add_argument("--firmware")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.dry_run and args.port and not os.path.exists(args.port):
            port = args.port  # a dry run may name a device that is not plugged in
        else:
            port = find_port(args.port)
        if args.console:
            cmds = [[MPREMOTE, "connect", port]]
        elif args.flash:
            cmds = flash_commands(port, args.firmware)
        else:
            secrets = os.path.join(paths.ROOT, "secrets.json")
            cmds = deploy_commands(port, board_file(args.board), args.config,
                                   secrets if os.path.exists(secrets) else None)
    except DeployError as e:
        print("deploy: error: %s" % e, file=sys.stderr)
        return 2
    for c in cmds:
        print("$ " + " ".join(shlex.quote(x) for x in c))
        if not args.dry_run:
            rc = subprocess.call(c, cwd=paths.ROOT)
            if rc:
                print("deploy: error: command failed with status %d" % rc, file=sys.stderr)
                return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
