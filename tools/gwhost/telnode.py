"""Run the firmware's telemetry node on the MicroPython unix port and watch it over MQTT.

Node: host_tests/fw/telemetry_node.py (the real config, MQTT client, telemetry,
discovery, commands and console; a stand-in control task moves the records),
started as `micropython -X heapsize=512k -m telemetry_node` (the live heap: the
whole config schema pulls in the control and safety modules, whose bytecode sits in
the heap on the unix port) with the firmware and
the node compiled to .mpy (bytecode, as deployed: on the board only main.py is
source), so the heap numbers are those of a deployed gateway.
Observer: a paho-mqtt client that records every message with its arrival time.
"""

import json
import os
import queue
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho

from gwhost import paths

NODE = os.path.join(paths.ROOT, "host_tests", "fw", "telemetry_node.py")
NODE_DIR = os.path.join(paths.ROOT, "build", "mpy-node")


def compile_firmware():
    """The firmware as .mpy (gwhost.mpyhost) plus the node itself, compiled beside it."""
    from gwhost.mpyhost import ARCH, compiled_firmware

    fw = compiled_firmware()
    os.makedirs(NODE_DIR, exist_ok=True)
    out = os.path.join(NODE_DIR, "telemetry_node.mpy")  # only main.py runs as source
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(NODE):
        subprocess.run([paths.MPY_CROSS, "-march=" + ARCH, "-s", "telemetry_node.py", "-o",
                        out, NODE], check=True, capture_output=True)
    return fw


class Node:
    """One firmware process. cfg: the config.json content (dict); the MQTT host and
    port of `broker` are filled in (broker None: MQTT off). stdin/stdout may be given (a pty for the console)."""

    def __init__(self, broker, cfg=None, secrets=None, heap=paths.LIVE_HEAP, console=False,
                 stdin=None, stdout=None, node_id="node1"):
        self.dir = tempfile.mkdtemp(prefix="gw-node-")
        c = json.loads(json.dumps(cfg or {}))
        if broker is not None:  # None: MQTT off (the console alone)
            c.setdefault("mqtt", {}).update({"host": broker.host, "port": broker.port})
        c.setdefault("telemetry", {}).setdefault("node_id", node_id)
        self.node_id = c["telemetry"]["node_id"]
        self.root = "%s/%s" % (c["telemetry"].get("prefix", "energygw"), self.node_id)
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(c, f)
        if secrets is not None:
            with open(os.path.join(self.dir, "secrets.json"), "w") as f:
                json.dump(secrets, f)
        self.heap = heap
        self.console = console
        self._stdin, self._stdout = stdin, stdout
        self.proc = None
        self.stats = {}
        self.boot = {}
        self.err_lines = []
        self._lines = queue.Queue()

    def start(self):
        fw = compile_firmware()
        env = paths.micropython_env()
        env["MICROPYPATH"] = ":".join([".frozen", NODE_DIR, fw, paths.MPY_PACKAGES])
        args = [paths.MICROPYTHON, "-X", "heapsize=" + self.heap, "-m", "telemetry_node",
                self.dir]
        if self.console:
            args.append("console")
        kw = {}
        if self._stdin is not None:  # a pty: make it the controlling terminal (Ctrl-C)
            kw["preexec_fn"] = _take_tty(self._stdin)
        self.proc = subprocess.Popen(
            args, env=env, cwd=paths.ROOT,
            stdin=self._stdin if self._stdin is not None else subprocess.DEVNULL,
            stdout=self._stdout if self._stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE, **kw)
        if self._stdout is None:
            threading.Thread(target=self._read, args=(self.proc.stdout, True),
                             daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()
        return self

    def _read(self, f, is_out):
        for raw in iter(f.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    obj = None
                if isinstance(obj, dict) and "stats" in obj:
                    self.stats = obj["stats"]
                    continue
                if isinstance(obj, dict) and "boot" in obj:
                    self.boot = obj["boot"]
                    continue
            if not is_out:
                self.err_lines.append(line)

    def wait_stats(self, pred, timeout=10.0):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.stats and pred(self.stats):
                return self.stats
            if self.proc.poll() is not None:
                raise RuntimeError("node exited %s:\n%s" % (self.proc.returncode,
                                                          "\n".join(self.err_lines[-30:])))
            time.sleep(0.05)
        raise TimeoutError("node stats never matched; last %r\n%s" % (
            self.stats, "\n".join(self.err_lines[-30:])))

    def kill(self):
        """SIGKILL: no goodbye, the broker must publish the last will."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _take_tty(fd):
    def pre():
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    return pre


class Observer:
    """A paho client subscribed to `topics`; msgs is a list of (t, topic, payload, retain)."""

    def __init__(self, broker, topics=("#",), client_id=None, user=None, password=None):
        self.msgs = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        self.c.on_message = self._on_msg
        self._topics = topics
        self.c.on_connect = self._on_connect
        self.c.reconnect_delay_set(0.05, 0.2)
        self.rc = None  # CONNACK reason code of the last connect
        if user is not None:
            self.c.username_pw_set(user, password)
        if getattr(broker, "ca_path", None):
            self.c.tls_set(ca_certs=broker.ca_path)
        self.c.connect(broker.host, broker.port, keepalive=10)
        self.c.loop_start()

    def _on_connect(self, c, u, flags, rc, props=None):
        self.rc = rc
        if getattr(rc, "is_failure", rc != 0):  # refused (not authorised): stay unconnected
            return
        for t in self._topics:
            c.subscribe(t, 1)
        self.connected.set()

    def _on_msg(self, c, u, m):
        with self._lock:
            self.msgs.append((time.monotonic(), m.topic, bytes(m.payload), bool(m.retain)))

    def publish(self, topic, payload, qos=0, retain=False):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def find(self, topic=None, pred=None, since=0.0):
        with self._lock:
            return [m for m in self.msgs if m[0] >= since and (topic is None or m[1] == topic)
                    and (pred is None or pred(m))]

    def wait(self, topic=None, pred=None, since=0.0, timeout=10.0, count=1):
        t_end = time.monotonic() + timeout
        while True:
            got = self.find(topic, pred, since)
            if len(got) >= count:
                return got
            if time.monotonic() > t_end:
                raise TimeoutError("no %d message(s) on %s within %.1f s (have %d)" % (
                    count, topic, timeout, len(got)))
            time.sleep(0.005)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()

    def __enter__(self):
        if not self.connected.wait(5):
            raise TimeoutError("observer did not connect")
        return self

    def __exit__(self, *exc):
        self.close()
