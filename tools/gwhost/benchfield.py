"""Field benchmark: time (SNTP against chronyd, DST rules against zoneinfo) and OTA.

Usage: tools/bench-field [--json] [--syncs N] [--skip-ota]
  ($MPY_ESP32LIKE: an ESP32-like 32-bit MicroPython binary to time the signature check on)
Prints one JSON object on its last line (docs/installer-guide.md explains the keys):
  sntp_offset_ms_max     largest |offset| the firmware's SNTP client measured at a re-sync
                         (how far its clock had drifted), over >= 10 syncs
  sntp_error_ms_max      largest |firmware wall clock - host clock| right after a sync
                         (chronyd serves the host clock, so this is the true error)
  sntp_loop_lag_ms_max   worst event-loop stall (10 ms monitor task) during the syncs
  ntptime_block_ms       how long the blocking pattern of micropython-lib's ntptime
                         (settimeout(1) + recv) stalls the interpreter when no reply comes
  dst_transitions_checked, dst_errors   firmware gateway.tz vs CPython zoneinfo, 2026-2029
  ota_verify_ms[_esp32like], ota_verify_step_ms_max[...]   RSA-3072 check: total, and the
                         longest of its 17 steps (one event-loop turn each)
  ota_* (see gwhost.benchota)
All firmware parts run on the MicroPython unix port at -X heapsize=110k.
"""

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import zoneinfo

from gwhost import paths

FIELD = os.path.join(paths.ROOT, "tools", "mpyfield")
EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
YEARS = (2026, 2027, 2028, 2029)
# POSIX TZ string (the config value) and the IANA zone it stands for
ZONES = (("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin"),
         ("GMT0BST,M3.5.0/1,M10.5.0", "Europe/London"),
         ("AEST-10AEDT,M10.1.0,M4.1.0/3", "Australia/Sydney"),
         ("EST5EDT,M3.2.0,M11.1.0", "America/New_York"))


def run_mpy(script, args=(), stdin=None, timeout=120):
    env = paths.micropython_env()  # the compiled firmware, as deployed
    p = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.HEAP,
                        os.path.join(FIELD, script), *map(str, args)], input=stdin,
                       capture_output=True, text=True, env=env, timeout=timeout, check=False)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise RuntimeError("%s failed (%d): %s" % (script, p.returncode, p.stderr[-2000:]))
    return json.loads(lines[-1])


def _off(zone, t):
    when = EPOCH_2000 + dt.timedelta(seconds=t)
    return int(when.astimezone(zone).utcoffset().total_seconds())


def zoneinfo_transitions(iana, year):
    """UTC instants (s since 2000) where the zone's offset changes in `year`."""
    z = zoneinfo.ZoneInfo(iana)
    t0 = int((dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) - EPOCH_2000)
             .total_seconds())
    t1 = int((dt.datetime(year + 1, 1, 1, tzinfo=dt.timezone.utc) - EPOCH_2000)
             .total_seconds())
    out = []
    prev = _off(z, t0)
    t = t0
    while t < t1:
        n = t + 3600
        o = _off(z, n)
        if o != prev:
            lo, hi = t, n  # offset(lo) == prev, offset(hi) == o
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _off(z, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, prev, o))
            prev = o
        t = n
    return out


def dst_check():
    """Every transition 2026-2029 of every zone: the firmware's offset one second before
    and at the instant, and its transition list for the year, against zoneinfo."""
    zones = []
    expected = []
    for text, iana in ZONES:
        times = []
        exp = []
        for y in YEARS:
            for t, before, after in zoneinfo_transitions(iana, y):
                times += [t - 1, t]
                exp.append((y, t, before, after))
        zones.append([text, times])
        expected.append(exp)
    got = run_mpy("dst_probe.py", stdin=json.dumps({"zones": zones, "years": list(YEARS)}))
    checked = errors = 0
    problems = []
    for zi, (text, iana) in enumerate(ZONES):
        offs = got["offsets"][zi]
        fw_trans = set()
        for yi, _ in enumerate(YEARS):
            fw_trans.update(got["transitions"][zi][yi])
        for k, (y, t, before, after) in enumerate(expected[zi]):
            checked += 1
            ok = offs[2 * k] == before and offs[2 * k + 1] == after and t in fw_trans
            if not ok:
                errors += 1
                problems.append("%s %d: zoneinfo %d (%+d -> %+d), firmware %+d -> %+d" % (
                    iana, y, t, before, after, offs[2 * k], offs[2 * k + 1]))
        extra = fw_trans - {t for _, t, _, _ in expected[zi]}
        for t in extra:
            errors += 1
            problems.append("%s: firmware transition %d unknown to zoneinfo" % (iana, t))
    return {"dst_transitions_checked": checked, "dst_errors": errors,
            "dst_zones": [iana for _, iana in ZONES], "dst_problems": problems}


def sntp_check(syncs=12):
    from gwhost.ntpserver import Chrony

    with Chrony() as srv:
        r = run_mpy("sntp_probe.py", (srv.port, syncs))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # a port that never answers
    try:
        b = run_mpy("sntp_probe.py", (silent.getsockname()[1], 1, "blocking"))
    finally:
        silent.close()
    return {"sntp_syncs": r["syncs"],
            "sntp_offset_ms_max": max(abs(x) for x in r["offsets_ms"]),
            "sntp_error_ms_max": max(abs(x) for x in r["errors_vs_host_ms"]),
            "sntp_rtt_ms_max": max(r["rtt_ms"]),
            "sntp_loop_lag_ms_max": r["loop_lag_ms_max"],
            "ntptime_block_ms": b["blocked_ms"]}


def verify_time(runtime=None):
    """The firmware's RSA-3072 check on the unix port (and on an ESP32-like 32-bit build of
    MicroPython when $MPY_ESP32LIKE names its binary): total and longest step, ms."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from gwhost import otatool

    key = otatool.new_key(3072)
    sig = key.sign(b"bundle", padding.PKCS1v15(), hashes.SHA256())
    req = json.dumps({"n": "%x" % otatool.modulus(key), "sig": sig.hex(),
                      "digest": hashlib.sha256(b"bundle").hexdigest()})
    out = {}
    for name, exe in (("unix", paths.MICROPYTHON), ("esp32like", runtime)):
        if not exe:
            continue
        p = subprocess.run([exe, "-X", "heapsize=" + paths.HEAP,
                            os.path.join(FIELD, "rsa_time.py")], input=req, capture_output=True,
                           text=True, env=paths.micropython_env(), timeout=120, check=False)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if not r["ok"]:
            raise RuntimeError("signature check failed on %s" % name)
        sfx = "" if name == "unix" else "_esp32like"
        out["ota_verify_ms" + sfx] = round(r["total_us"] / 1000, 1)
        out["ota_verify_step_ms_max" + sfx] = round(r["step_max_us"] / 1000, 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="JSON on the last line")
    ap.add_argument("--syncs", type=int, default=12)
    ap.add_argument("--skip-ota", action="store_true")
    a = ap.parse_args(argv)
    if a.syncs < 2:
        ap.error("--syncs must be >= 2")
    out = {}
    out.update(sntp_check(a.syncs))
    out.update(dst_check())
    out.update(verify_time(os.environ.get("MPY_ESP32LIKE")))
    if not a.skip_ota:
        from gwhost import benchota

        out.update(benchota.run())
    if not a.json:
        for k, v in out.items():
            print("%-26s %s" % (k, v))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
