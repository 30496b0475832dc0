"""`make sim`: run the firmware on the MicroPython unix port with the sim board.

Until the plant simulator is wired in, this boots the unmodified firmware with
no plant attached: the contact and the voltage reference read "unknown", so the
gateway shows and holds its safe state, then stops after --duration seconds.
"""

import argparse
import os
import subprocess
import sys

from gwhost import paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario")
    ap.add_argument("--start", type=float, default=0)
    ap.add_argument("--duration", type=float, default=5)
    args = ap.parse_args(argv)
    env = paths.micropython_env()
    env.setdefault("GATEWAY_BOARD", os.path.join(paths.BOARDS, "sim.json"))
    env["GATEWAY_DURATION_S"] = str(args.duration)
    cmd = [paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
           paths.firmware_main()]
    return subprocess.call(cmd, env=env, cwd=paths.ROOT)


if __name__ == "__main__":
    sys.exit(main())
