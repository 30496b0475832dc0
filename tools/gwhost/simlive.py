"""`tools/sim-live`: the full firmware, live, against the simulated house.

    tools/sim-live SCENARIO.json [--start S] --duration S [--broker HOST:PORT]
                  [--runtime unix64|esp32like] --json

The plant (gwhost.plant) runs on the wall clock. It serves the charger and the
inverter as Modbus RTU devices (pymodbus behind a wire-timing proxy, gwhost.simbus)
on pseudo-terminals, and the contact and the analog truth over the sim board's
loopback link (gwhost.plantlink). The unmodified firmware/main.py runs on a
MicroPython unix port with boards/sim.json: the 64-bit PyPI port with the .mpy tree
in a 512 KB heap (unix64), or the ESP32-like build (32-bit words, float32, the
firmware frozen) at the ESP32's 110 KB (esp32like, gwhost.esp32like). The default
is esp32like when that runtime is built and current. MQTT goes to mosquitto on
loopback (or the embedded broker, or --broker).

Latencies are measured on the plant's clock: the plant steps exactly onto every
grid event, sends the contact edge at once, and timestamps the interlock edge
and the devices' stop writes when they arrive. The last stdout line is one JSON
object with the keys of ../shared/bench-contract.md ("Live run").
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from gwhost import paths, procs
from gwhost.house import House
from gwhost.plantlink import PlantLink
from gwhost.scenario import ScenarioError, load

TRACE_PERIOD_S = 1.0
TRUTH_PERIOD_S = 0.05
STEP_S = 0.01


class LiveRun:
    def __init__(self, scenario, start_s=0.0, duration_s=60.0, broker=None, config=None,
                 out_dir=None, status=None, heap=paths.LIVE_HEAP, faults=None, warmup_s=None,
                 console=None, runtime="unix64"):
        self.scen = scenario
        self.start_s = float(start_s)
        self.duration_s = float(duration_s)
        self.broker_addr = broker
        self.config = config or {}
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="gw-live-")
        self.status = status  # callable(dict) each second, for a live status line
        self.runtime = runtime
        self.heap = heap  # unix64 only: esp32like always runs at the ESP32's 110 KB
        self.faults = faults or []  # [(t_s, "kill_devices" | "kill_link" | ...)]
        self.console = console or []  # [(t_s, "status" | ...)]: typed at the serial console
        self.state = None  # the last state JSON the firmware published (dict)
        self.trace = []
        if warmup_s is None:  # long enough for the configured reconnection delay, + margin
            rc = (self.config.get("safety") or {}).get("reconnect_ms") or \
                ((scenario.raw.get("gateway_config") or {}).get("safety") or {}).get(
                    "reconnect_ms", 60000)
            warmup_s = rc / 1000.0 + 15.0
        self.warmup_s = min(warmup_s, self.start_s)
        self.fw_lines = []

    # --- set-up -----------------------------------------------------------------
    def _firmware_config(self, mqtt_host, mqtt_port):
        from gwhost.simdevices import firmware_settings

        cfg = firmware_settings()
        for section, values in (self.scen.raw.get("gateway_config") or {}).items():
            cfg.setdefault(section, {}).update(values)
        for section, values in self.config.items():
            cfg.setdefault(section, {}).update(values)
        mq = cfg.setdefault("mqtt", {})
        mq.setdefault("host", mqtt_host)
        mq.setdefault("port", mqtt_port)
        path = os.path.join(self.out_dir, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def _start_broker(self):
        if self.broker_addr:
            host, _, port = self.broker_addr.rpartition(":")
            return None, host or "127.0.0.1", int(port)
        from gwhost.broker import Broker

        b = Broker().start()
        return b, b.host, b.port

    def _read_firmware(self, proc):
        for line in proc.stdout:
            self.fw_lines.append(line.rstrip("\n"))

    # --- the run ------------------------------------------------------------------
    def run(self):
        link = PlantLink()
        house = House(self.scen, self.start_s, link, warmup_s=self.warmup_s)
        house.measure_from = self.warmup_s
        broker, mhost, mport = self._start_broker()
        counter = None
        proc = None
        try:
            house.start_bus()
            from gwhost.mqttwatch import MqttWatch

            counter = MqttWatch(mhost, mport).start()
            env = {
                "GATEWAY_BOARD": os.path.join(paths.BOARDS, "sim.json"),
                "GATEWAY_PLANT": link.address,
                "GATEWAY_RS485": house.bus.fw_path,
                "GATEWAY_STORAGE": self.out_dir,
                "GATEWAY_CONFIG": self._firmware_config(mhost, mport),
            }
            proc = procs.start_firmware(env, heap=self.heap, runtime=self.runtime,
                                        stdin=subprocess.PIPE if self.console else None)
            reader = threading.Thread(target=self._read_firmware, args=(proc,), daemon=True)
            reader.start()
            if not link.connected.wait(15):
                raise RuntimeError("the firmware never connected to the plant link:\n"
                                   + "\n".join(self.fw_lines[-20:]))
            self._loop(house, link, proc)
            link.request_stop()
            try:
                proc.wait(10)
            except Exception:  # noqa: BLE001 - a firmware that hangs is stopped by procs
                pass
            reader.join(2)
        finally:
            house.close()
            link.close()
            if counter is not None:
                counter.stop()
                self.state = counter.last_json("/state")
            procs.stop_all()
            if broker is not None:
                broker.stop()
        return self._metrics(house, link, proc, counter)

    def _loop(self, house, link, proc):
        t0 = time.monotonic()
        end = self.warmup_s + self.duration_s
        next_trace = 0.0
        next_truth = 0.0
        faults = sorted(self.faults)
        typed = sorted(self.console)
        while True:
            now = time.monotonic() - t0
            if now >= end or proc.poll() is not None:
                break
            # Step exactly onto the next grid event, so its edge leaves at its moment.
            target = min(now + STEP_S, end)
            ev = house.next_event_s(now)
            if ev is not None and ev < target:
                target = ev
            delay = target - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
            house.advance_to(target)
            link.check_watchdog()
            if target >= next_truth:
                house.send_truth()
                next_truth = target + TRUTH_PERIOD_S
            while faults and faults[0][0] <= target:
                house.inject(faults.pop(0)[1])
            while typed and typed[0][0] <= target:
                proc.stdin.write(typed.pop(0)[1] + "\n")
                proc.stdin.flush()
            if target >= next_trace:
                row = house.trace_row(link)
                row["heap_bytes"] = parse_stats(link).get("heap")  # live heap, last second
                self.trace.append(row)
                if self.status:
                    self.status(row)
                next_trace = target + TRACE_PERIOD_S

    # --- results --------------------------------------------------------------------
    def _metrics(self, house, link, proc, counter):
        stats = parse_stats(link)
        tracebacks = sum(1 for ln in self.fw_lines if ln.startswith("Traceback"))
        m = house.metrics()
        m.update({
            "loop_lag_ms_max": stats.get("lag_ms", None),
            "runtime": self.runtime,
            "heapsize_bytes": heap_bytes(self.heap_arg()),
            "heap_peak_bytes": stats.get("heap_peak", None),
            "heap_min_free_bytes": _measured(stats.get("heap_free_min")),
            "largest_free_block_bytes": _measured(stats.get("heap_largest_free")),
            "mqtt_messages": counter.count if counter else 0,
            "modbus_transactions": stats.get("mb_tx", 0),
            "modbus_errors": stats.get("mb_err", 0),
            "firmware_exceptions": max(stats.get("exceptions", 0), tracebacks),
            "firmware_exit_code": proc.returncode if proc else None,
            "watchdog_resets": link.watchdog_resets,
            "scenario": self.scen.name, "start_s": self.start_s,
            "duration_s": self.duration_s, "warmup_s": self.warmup_s,
        })
        return m

    def heap_arg(self):
        if self.runtime == "esp32like":
            from gwhost import esp32like

            return esp32like.HEAP
        return self.heap


def parse_stats(link):
    """The firmware's last "stats" report (gateway.app.stats_line) as a dict."""
    stats = {}
    if "stats" in link.reports:
        for kv in link.reports["stats"][1].split():
            k, _, v = kv.partition("=")
            stats[k] = int(v) if v.lstrip("-").isdigit() else v
    return stats


def heap_bytes(text):
    """'110k' -> 112640 (MicroPython's -X heapsize syntax)."""
    mult = {"k": 1024, "m": 1024 * 1024}.get(text[-1:].lower(), 1)
    return int(text[:-1] if mult > 1 else text) * mult


def _measured(v):
    return v if isinstance(v, int) and v >= 0 else None


def default_runtime():
    """esp32like when it is built from the firmware as it is now, else unix64."""
    from gwhost import esp32like

    return "esp32like" if esp32like.status() == "current" else "unix64"


def check_runtime(name):
    """None when `name` can run now, else the error to show."""
    if name == "esp32like":
        from gwhost import esp32like

        st = esp32like.status()
        if st != "current":
            return ("the ESP32-like runtime is %s: %s"
                    % ("built from other firmware" if st == "stale" else "not built",
                       esp32like.ENABLE_HINT))
    return None


def add_runtime_arguments(ap):
    """The options shared by tools/sim-live and make sim (tools/sim)."""
    ap.add_argument("--runtime", choices=paths.RUNTIMES, default=None,
                    help="unix64 (64-bit PyPI port, .mpy in a 512 KB heap) or esp32like "
                         "(32-bit, float32, firmware frozen, 110 KB heap); default: esp32like "
                         "when built")


def build_parser():
    """The command line; other tools add their options to it (see add_runtime_arguments)."""
    ap = argparse.ArgumentParser(description="the firmware live against the simulated house")
    ap.add_argument("scenario")
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--broker", help="HOST:PORT of an MQTT broker to use instead of our own")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds to run before --start so the gateway has re-armed "
                         "(default: its reconnection delay + 15 s)")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON (last line)")
    ap.add_argument("--trace", help="write the 1 s trace as CSV to this file")
    ap.add_argument("--firmware-log", help="write the firmware's console output to this file")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a firmware setting, e.g. safety.reconnect_ms=10000")
    add_runtime_arguments(ap)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        scen = load(args.scenario)
    except (ScenarioError, OSError) as e:
        print("sim-live: error: %s" % e, file=sys.stderr)
        return 2
    runtime = args.runtime or default_runtime()
    err = check_runtime(runtime)
    if err:
        print("sim-live: error: %s" % err, file=sys.stderr)
        return 2
    config = {}
    for s in args.set:
        key, _, value = s.partition("=")
        section, _, name = key.partition(".")
        if not name or not value:
            print("sim-live: error: --set wants SECTION.KEY=VALUE, got %r" % s, file=sys.stderr)
            return 2
        config.setdefault(section, {})[name] = json.loads(value) if value[0] in "-0123456789[{tfn\"" \
            else value
    run = LiveRun(scen, args.start, args.duration, args.broker, config, warmup_s=args.warmup,
                  runtime=runtime)
    m = run.run()
    if args.trace:
        write_trace(run.trace, args.trace)
    if args.firmware_log:
        with open(args.firmware_log, "w") as f:
            f.write("\n".join(run.fw_lines) + "\n")
    print(json.dumps(m) if args.json else json.dumps(m, indent=1))
    return 0


def write_trace(trace, path):
    if not trace:
        return
    keys = list(trace[0].keys())
    with open(path, "w") as f:
        f.write(",".join(keys) + "\n")
        for r in trace:
            f.write(",".join(str(r[k]) for k in keys) + "\n")


if __name__ == "__main__":
    sys.exit(main())
