"""tools/bench-bus: the firmware's Modbus bus task on the MicroPython unix port against the
simulated devices (pymodbus on socat ptys behind the wire-timing proxy), through a fault mix.

Run 1, 9600 8E1 (the slowest line the project supports), three devices on one bus: the
reference charger (unit 1), a SolaX hybrid with battery control (unit 2), a SunSpec inverter
(unit 3). Phases: warm-up; allocation per transaction during polling and setpoint writes;
stop latency sampled at random moments while polling is under way; one silent device; a mix
of every line fault plus a reboot of each device.
Run 2, 115200: >= 10,000 fuzzed replies to back-to-back reads.
Run 3, 9600 8E1 with a 1000 ms response timeout: the charger drops its replies to a -3000 W
setpoint write (it applies the write, the reply never comes, so the bus retries it) and a stop
is submitted at moments spread over the write's attempts. stop_during_retry_ms_max: stop to
the charger's acknowledged 0 W; stale_writes_after_stop: non-zero setpoint writes the charger
received after the stop was submitted (counted from the frames the device side saw).
Prints one JSON object on its last line (keys: see bench-contract / issue 4).
"""

import argparse
import json
import os
import struct
import random
import subprocess
import sys
import time

from gwhost import paths
from gwhost.mpybus import FirmwareBus, _renice
from gwhost.simbus import SimBus
from gwhost.simcharger import SimRefCharger
from gwhost.simfaults import FaultInjector, crc16
from gwhost.simsolax import SimSolax
from gwhost.simstate import PlantState
from gwhost.simsunspec import SimSunSpec

MIX = {"silence": 0.02, "late": 0.02, "crc": 0.03, "exception": 0.02, "garbage": 0.03,
       "noise": 0.02, "wrong_address": 0.02, "truncate": 0.02}
LAG_EDGES_MS = (1, 2, 3, 5, 10, 20, 50)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def lag_p99_ms(hist, n):
    """Upper edge (ms) of the histogram bucket holding the 99th percentile."""
    if not n:
        return 0
    acc = 0
    for i, c in enumerate(hist):
        acc += c
        if acc >= 0.99 * n:
            return LAG_EDGES_MS[i] if i < len(LAG_EDGES_MS) else 1000
    return 1000


def lag_baseline(args, out):
    """The same lag monitor in an idle MicroPython process, same priority: the host's noise."""
    p = subprocess.Popen([paths.MICROPYTHON, os.path.join(paths.ROOT, "tools", "mpybus",
                                                          "lagbase.py"), str(args.baseline_ms)],
                         env=paths.micropython_env(), stdout=subprocess.PIPE, text=True)
    if args.nice:
        _renice(p.pid, args.nice)
    mx, _n, over = (int(x) for x in p.communicate(timeout=args.baseline_ms / 1000 + 30)[0].split())
    out["loop_lag_ms_max_idle_baseline"] = round(mx / 1000, 2)
    out["idle_baseline_samples_over_2ms"] = over


def run_main(args, out):
    st = PlantState(pv_w=5000, house_w=700)
    faults = FaultInjector(seed=args.seed, late_s=0.3)
    sims = [SimRefCharger(1, st, boot_s=1.0), SimSolax(2, st, boot_s=2.0),
            SimSunSpec(3, st, base=40000, boot_s=2.0)]
    devs = [{"type": "charger", "name": "ev", "cfg": {"unit": 1, "poll_ms": 250}},
            {"type": "solax", "name": "hyb",
             "cfg": {"unit": 2, "batt_control": True, "export_min_ms": 0}},
            {"type": "sunspec", "name": "pv", "cfg": {"unit": 3, "poll_ms": 1000}}]
    bus_cfg = {"timeout_ms": args.timeout_ms}
    rng = random.Random(args.seed)
    with SimBus(sims, baud=9600, parity="E", state=st, faults=faults,
                turnaround_ms=args.turnaround_ms) as sb, \
            FirmwareBus(sb.fw_path, 9600, "E", 1, bus=bus_cfg, devices=devs,
                        nice=args.nice) as fw:
        out["heap_alloc_after_setup_bytes"] = fw.heap_alloc
        out["firmware_sched"] = fw.sched
        log("bench-bus: warm-up")
        fw.cmd("setpoints", ev_w=-3000, ev_session=True, export_limit_w=4000, batt_w=-500)
        snap = fw.cmd("run", ms=6000)
        assert all(d["rec"]["online"] for d in snap["devices"].values()), snap
        fw.cmd("reset")
        t_phase = fw.cmd("snapshot")["transactions"]

        log("bench-bus: allocation")
        alloc = {"bytes": 0, "transactions": 0}
        for k in range(4):  # setpoint changes on the way: writes as well as polls
            fw.cmd("setpoints", ev_w=-3000 + 100 * k)
            a = fw.cmd("alloc", ms=2500)
            alloc["bytes"] += a["bytes"]
            alloc["transactions"] += a["transactions"]
        out["alloc_bytes_per_transaction"] = round(alloc["bytes"] / max(1, alloc["transactions"]),
                                                   2)
        out["alloc_transactions"] = alloc["transactions"]

        log("bench-bus: stop latency")
        acks, confs, long_w, idle = [], [], [], 0
        for _ in range(args.stops):
            fw.cmd("run", ms=rng.randint(60, 400))
            r = fw.cmd("stop", max_ms=2000)
            f = r["inflight"]
            if not f["busy"]:
                idle += 1
            # a stop waits for the transaction on the wire: polls are <= 6 registers, but a
            # command write may be longer (the SolaX remote-control block is 13 registers)
            if f["busy"] and f["fn"] == 16 and f["tx_bytes"] > 23:
                long_w.append(r["ack_ms"]["ev"])
            else:
                acks.append(r["ack_ms"]["ev"])
            confs.append(r["confirmed_ms"])
            fw.cmd("run", ms=150)
            fw.cmd("release")
        all_acks = acks + long_w
        out["stop_samples"] = len(all_acks)
        out["stop_samples_bus_idle"] = idle
        out["stop_samples_long_write_in_flight"] = len(long_w)
        out["stop_command_latency_ms_max"] = max(acks) if min(all_acks) >= 0 else -1
        out["stop_command_latency_ms_max_long_write"] = max(long_w) if long_w else None
        out["stop_command_latency_ms_mean"] = round(sum(all_acks) / len(all_acks), 1)
        out["stop_confirmed_ms_max"] = max(confs) if min(confs) >= 0 else -1
        snap = fw.cmd("snapshot")
        lag = [snap["lag_us_max"], snap["step_us_max"]]
        hist, n = list(snap["lag_hist"]), snap["lag_n"]

        log("bench-bus: silent device")
        fw.cmd("reset")
        sb.silent.add(3)
        fw.cmd("run", ms=8000)
        snap = fw.cmd("snapshot")
        sb.silent.clear()
        out["silent_device_cost_ms"] = round(snap["timeout_cost_us_max"] / 1000, 1)
        out["silent_device_offline"] = not snap["devices"]["pv"]["rec"]["online"]
        lag = [max(lag[0], snap["lag_us_max"]), max(lag[1], snap["step_us_max"])]
        hist = [a + b for a, b in zip(hist, snap["lag_hist"])]
        n += snap["lag_n"]

        log("bench-bus: fault mix")
        fw.cmd("reset")
        faults.set_mix(MIX)
        t_end = time.monotonic() + args.fault_s
        for unit in (1, 2, 3):
            fw.cmd("run", ms=int(args.fault_s * 1000 / 4))
            sb.reboot(unit)
        fw.cmd("run", ms=max(0, int((t_end - time.monotonic()) * 1000)))
        faults.set_mix({})
        snap = fw.cmd("run", ms=args.recover_ms)
        out["faults_injected"] = faults.injected + sb.counts["reboots"]
        out["fault_kinds"] = dict(faults.counts)
        out["online_after_faults"] = {k: d["rec"]["online"] for k, d in snap["devices"].items()}
        out["charger_reboots_seen"] = snap["devices"]["ev"]["info"].get("reboots", None)
        lag = [max(lag[0], snap["lag_us_max"]), max(lag[1], snap["step_us_max"])]
        hist = [a + b for a, b in zip(hist, snap["lag_hist"])]
        n += snap["lag_n"]
        out["errors"] = snap["errors"]
        out["retries"] = snap["retries"]
        out["resyncs"] = snap["resyncs"]
        out["transactions_9600"] = snap["transactions"]
        out["measured_transactions_9600"] = snap["transactions"] - t_phase
        out["loop_lag_ms_max"] = round(lag[0] / 1000, 2)
        out["loop_lag_ms_p99"] = lag_p99_ms(hist, n)
        out["lag_samples"] = n
        out["bus_step_ms_max"] = round(lag[1] / 1000, 2)
        out["firmware_exceptions"] = snap["exceptions"]
        rc = fw.close()
        out["firmware_exceptions"] += 0 if rc == 0 else 1
        out["sim_requests_9600"] = sb.counts["requests"]


class RecordingBus(SimBus):
    """SimBus that keeps every request frame in arrival order, and can make a device drop its
    reply to chosen requests: the device receives and applies them, the reply is lost."""

    def __init__(self, *a, drop=None, **kw):
        super().__init__(*a, **kw)
        self.frames = []
        self.drop = drop  # frame -> True: the reply to it is dropped

    def _on_request(self, frame, t, pending):
        self.frames.append(frame)
        c = crc16(frame[:-2])
        ok = len(frame) >= 4 and frame[-2] == (c & 0xFF) and frame[-1] == (c >> 8)
        if ok and self.drop is not None and self.drop(frame) and frame[0] in self.devices:
            self.counts["requests"] += 1
            self.counts["replies_dropped"] += 1
            os.write(self._dev_fd, frame)  # the device acts on it; its reply is discarded
            pending.append((t, len(frame), frame[0], frame[1], "silence"))
            return
        super()._on_request(frame, t, pending)


def setpoint_written(frame, unit=1, reg=0):
    """The charger setpoint value a request frame writes (int16), or None."""
    if len(frame) < 8 or frame[0] != unit:
        return None
    fn, start = frame[1], struct.unpack(">H", frame[2:4])[0]
    if fn == 6 and start == reg:
        return struct.unpack(">h", frame[4:6])[0]
    if fn == 16 and start <= reg < start + struct.unpack(">H", frame[4:6])[0]:
        return struct.unpack(">h", frame[7 + 2 * (reg - start):9 + 2 * (reg - start)])[0]
    return None


def stop_during_retry(trials=12, timeout_ms=1000, retries=2, nice=0, seed=7, log=log):
    """Run 3 (see the module doc); also used by host_tests/test_bus_stop_retry.py."""
    st = PlantState(pv_w=3000, house_w=700)
    bad = -3000

    def drop(frame):
        return setpoint_written(frame) == bad and frame[1] == 6

    rng = random.Random(seed)
    res = {"stop_during_retry_samples": 0, "stale_writes_after_stop": 0}
    lat, stale = [], 0
    with RecordingBus([SimRefCharger(1, st, boot_s=1.0)], baud=9600, parity="E", state=st,
                      faults=FaultInjector(seed=seed), drop=drop) as sb, \
            FirmwareBus(sb.fw_path, 9600, "E", 1,
                        bus={"timeout_ms": timeout_ms, "retries": retries},
                        devices=[{"type": "charger", "name": "ev", "cfg": {"unit": 1}}],
                        nice=nice) as fw:
        fw.cmd("setpoints", ev_w=0, ev_session=True)
        snap = fw.cmd("run", ms=4000)
        assert snap["devices"]["ev"]["rec"]["online"], snap
        span = (retries + 1) * timeout_ms  # the write's attempts: stops land anywhere in them
        for k in range(trials):
            fw.cmd("setpoints", ev_w=0)
            fw.cmd("run", ms=300)
            # the first stops land while the first attempt waits for its reply (inside the
            # pre-emption window), the rest anywhere in the attempts and the gaps between them
            early = (0, 10, 25, 40)
            delay = early[k] if k < len(early) else int(span * (k + rng.random()) / trials)
            r = fw.cmd("stop_during_write", ev_w=bad, delay_ms=delay, max_ms=span + 3000,
                       hold_ms=500)
            fw.cmd("setpoints", ev_w=0)  # the app zeroes the setpoints with the stop
            time.sleep(0.2)  # let the proxy see every frame the firmware wrote
            after = sb.frames[r["frames_at_stop"]:r["frames_end"]]
            n = sum(1 for f in after if setpoint_written(f) not in (None, 0))
            stale += n
            lat.append(r["ack_ms"])
            log(f"bench-bus: stop during retry {k + 1}/{trials}: stop {r['inflight']['since_write_ms']}"
                f" ms into the write, acknowledged after {r['ack_ms']} ms, {n} stale writes")
            fw.cmd("release")
        snap = fw.cmd("snapshot")
        res["stop_during_retry_frames_aligned"] = len(sb.frames) == snap.get(
            "frames", len(sb.frames))
    res["stop_during_retry_samples"] = len(lat)
    res["stop_during_retry_ms_max"] = max(lat) if min(lat) >= 0 else -1
    res["stop_during_retry_ms_mean"] = round(sum(lat) / len(lat), 1)
    res["stop_during_retry_timeout_ms"] = timeout_ms
    res["stale_writes_after_stop"] = stale
    return res


def run_fuzz(args, out):
    st = PlantState()
    faults = FaultInjector({"fuzz": 1.0}, seed=args.seed + 1)
    with SimBus([SimRefCharger(1, st)], baud=115200, parity="E", state=st, faults=faults,
                turnaround_ms=0.5) as sb, \
            FirmwareBus(sb.fw_path, 115200, "E", 1, bus={"timeout_ms": 25, "retries": 0},
                        nice=args.nice) as fw:
        statuses = {}
        left = args.fuzz
        while left > 0:
            k = min(2000, left)
            r = fw.cmd("hammer", unit=1, fn=4, start=0, count=6, n=k)
            names = {"0": "ok", "-1": "timeout", "-2": "crc", "-3": "address", "-4": "function",
                     "-5": "malformed"}
            for s, c in r["statuses"].items():
                kind = names.get(s, "exception")  # status -256 - code: any exception code
                statuses[kind] = statuses.get(kind, 0) + c
            left -= k
            log(f"bench-bus: fuzz {args.fuzz - left}/{args.fuzz}")
        snap = fw.cmd("snapshot")
        out["fuzz_frames"] = sb.counts["fuzz_frames"]
        out["fuzz_outcomes"] = statuses
        out["transactions_fuzz"] = snap["transactions"]
        out["firmware_exceptions"] = out.get("firmware_exceptions", 0) + snap["exceptions"]
        rc = fw.close()
        out["firmware_exceptions"] += 0 if rc == 0 else 1
        if "Traceback" in fw.stderr:
            out["firmware_exceptions"] += fw.stderr.count("Traceback")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Modbus bus benchmark (firmware on the unix port)")
    ap.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    ap.add_argument("--stops", type=int, default=60)
    ap.add_argument("--fault-s", type=float, default=24.0)
    ap.add_argument("--recover-ms", type=int, default=12000)
    ap.add_argument("--fuzz", type=int, default=10000)
    ap.add_argument("--timeout-ms", type=int, default=200)
    ap.add_argument("--turnaround-ms", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--baseline-ms", type=int, default=15000)
    ap.add_argument("--retry-stops", type=int, default=12,
                    help="stops submitted during a retried setpoint write (run 3)")
    ap.add_argument("--only-retry", action="store_true", help="run 3 alone (quick check)")
    ap.add_argument("--nice", type=int, default=-100,
                    help="firmware process priority: -100 real-time FIFO (root), -N nice, 0 leave")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    out = {"baud": 9600, "framing": "8E1", "devices": 3, "response_timeout_ms": args.timeout_ms,
           "sim_turnaround_ms": args.turnaround_ms}
    if not args.only_retry:
        lag_baseline(args, out)
        run_main(args, out)
        run_fuzz(args, out)
        out["transactions"] = out["transactions_9600"] + out["transactions_fuzz"]
    out.update(stop_during_retry(args.retry_stops, nice=args.nice, seed=args.seed))
    out["seconds"] = round(time.monotonic() - t0, 1)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
