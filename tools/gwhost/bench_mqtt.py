"""Broker outage benchmark: stop the broker for a while, restart it, measure the firmware.

The firmware node (gwhost.telnode) runs on the MicroPython unix port against a
real broker on loopback with a 1 s state period and a small queue. The broker
is stopped for `outage_s` (60 s by default, as in the acceptance criterion) and
started again on the same port. Reported as one JSON object on the last line:
  reconnect_s        broker back -> first message from the firmware seen again
  drops              state messages the bounded queue dropped during the outage
  lag_max_ms         worst event-loop stall over the whole run (control timing)
  attempts_outage    connect attempts while the broker was down (backoff at work)
  heap_live / heap_peak / heap_total   bytes on the unix port (64-bit; .mpy bytecode)

tools/bench-mqtt [--outage-s S] [--kind mosquitto|amqtt] [--json]
"""

import argparse
import json
import sys
import time

from gwhost.broker import Broker
from gwhost.telnode import Node, Observer


def outage(outage_s=60.0, kind=None, period_s=1, queue_len=8):
    cfg = {"telemetry": {"period_s": period_s}, "mqtt": {"queue_len": queue_len}}
    with Broker(kind=kind) as b, Node(b, cfg) as node:
        obs = Observer(b, (node.root + "/#",))
        try:
            obs.connected.wait(5)
            obs.wait(node.root + "/state", timeout=15)
            node.wait_stats(lambda s: s["connected"] and s["discovered"] >= 1, 15)
            s0 = dict(node.stats)
            b.stop()
            t_down = time.monotonic()
            node.wait_stats(lambda s: not s["connected"], 10)
            time.sleep(max(0.0, outage_s - (time.monotonic() - t_down)))
            s_out = dict(node.stats)
            t_back = time.monotonic()
            b.start()
            first = obs.wait(pred=lambda m: m[1].startswith(node.root + "/status")
                             or m[1] == node.root + "/state", since=t_back, timeout=30)[0]
            reconnect_s = first[0] - t_back
            node.wait_stats(lambda s: s["connected"] and s["connects"] >= s0["connects"] + 1, 10)
            time.sleep(2.0)
            s1 = dict(node.stats)
        finally:
            obs.close()
    return {
        "benchmark": "mqtt-broker-outage",
        "broker": b.kind,
        "outage_s": round(outage_s, 1),
        "reconnect_s": round(reconnect_s, 2),
        "drops": s1["drops"] - s0["drops"],
        "lag_max_ms": s1["lag_max_ms"],
        "attempts_outage": s_out["attempts"] - s0["attempts"],
        "connects": s1["connects"],
        "heap_live": s1["heap_live"],
        "heap_peak": s1["heap_peak"],
        "heap_total": node.boot.get("heap_total"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--kind", choices=("mosquitto", "amqtt"), default=None)
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args(argv)
    r = outage(args.outage_s, args.kind)
    if not args.json:
        print("broker %(broker)s down %(outage_s)s s: back after %(reconnect_s)s s, "
              "%(drops)d dropped, loop lag max %(lag_max_ms)d ms" % r, file=sys.stderr)
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
