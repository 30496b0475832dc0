# DST probe on the MicroPython unix port (run by tools/gwhost/benchfield.py).
# stdin: JSON {"zones": [[POSIX_TZ, [utc_s_since_2000, ...]], ...], "years": [..]}.
# stdout: one JSON line {"offsets": [[offset_s, ...], ...], "transitions": [[[on, off], ..]]}
# computed by the firmware's gateway.tz.
import json
import sys

from gateway.tz import TZ

req = json.loads(sys.stdin.read())
offs = []
trans = []
for text, times in req["zones"]:
    z = TZ(text)
    offs.append([z.offset_s(t) for t in times])
    trans.append([list(z.transitions(y)) for y in req["years"]])
print(json.dumps({"offsets": offs, "transitions": trans}))
