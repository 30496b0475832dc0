# Runs on the MicroPython unix port (started by test_safety_props.py): reads one
# JSON job from stdin, {"cfg": {...}, "runs": [[t0, [step, ...]], ...]}, drives
# gateway.safety through each run with safety_rig.drive() and prints the outputs
# row of every tick as it happens (one line of comma-separated ints, "end" after
# each run), for a tick-by-tick comparison with the same run on CPython.
import json
import sys

from safety_rig import Rig, drive


def show(rig, _x, row):
    print(",".join([str(v) for v in row]))


job = json.loads(sys.stdin.read())
for t0, steps in job["runs"]:
    drive(Rig(job["cfg"], t0), steps, show, show, False)
    print("end")
