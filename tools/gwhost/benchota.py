"""OTA cases on the MicroPython unix port with the file slots (part of tools/bench-field).

Each device case runs the real firmware (main.py of the booted slot, simulated board,
console on stdin) under tools/mpyfield/simboot.py, which plays the ESP-IDF bootloader's
OTA part. This harness plays the rest of the hardware: the power (it restarts the process
after a reset, a crash or a simulated power cut) and the watchdog (a boot that does not
reach the safe state within WATCHDOG_S is killed and restarted). Updates are served over
HTTP on loopback and started with the console command `ota URL`.

Keys: ota_cases, ota_bricked (a case whose board ends booting neither the old nor the new
firmware into the safe state), ota_bad_accepted (a bad bundle that switched), ota_rollbacks_ok
(bad-boot cases back on the old firmware with a published rolled_back outcome; equal to
ota_bad_boot_cases when all is well), ota_switch_while_unsafe (from the unsafe-moment cases,
run on the unix port with the real Updater and a gateway whose permits the probe sets),
ota_loop_lag_ms_max (worst event-loop lag the firmware measured during a download).
"""

import http.server
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from gwhost import otatool, paths

FIELD = os.path.join(paths.ROOT, "tools", "mpyfield")
WATCHDOG_S = 15  # a boot must print the safe-state line within this (hang detection)
CASE_TIMEOUT_S = 90
CFG = {"ota": {"commit_s": 10, "healthy_s": 2}}


class Server:
    """Serves one bundle; `cut_at` kills the device after that many body bytes."""

    def __init__(self):
        self.body = b""
        self.length = None  # Content-Length to announce (None: the real length)
        self.cut_at = None
        self.close_at = None  # stop sending after this many bytes (a dropped connection)
        self.on_cut = None
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                b = srv.body
                self.send_response(200)
                self.send_header("Content-Length", str(srv.length or len(b)))
                self.end_headers()
                sent = 0
                try:
                    while sent < len(b):
                        n = min(4096, len(b) - sent)
                        if srv.close_at is not None and sent + n > srv.close_at:
                            self.wfile.write(b[sent:srv.close_at])
                            return
                        if srv.cut_at is not None and sent + n > srv.cut_at:
                            self.wfile.write(b[sent:srv.cut_at])
                            self.wfile.flush()
                            if srv.on_cut:
                                srv.on_cut()
                            return
                        self.wfile.write(b[sent:sent + n])
                        sent += n
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/bundle.bin" % self.port

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Board:
    """One simulated board: slots, storage, the firmware process and its power."""

    def __init__(self, root, image_v1):
        self.root = root
        self.ota = os.path.join(root, "ota")
        self.st = os.path.join(root, "st")
        os.makedirs(self.ota)
        os.makedirs(self.st)
        with open(os.path.join(self.ota, "ota_0.bin"), "wb") as f:
            f.write(image_v1)
        with open(os.path.join(self.ota, "otadata.json"), "w") as f:
            json.dump({"boot": 0, "state": "valid", "seq": 1, "prev": 0}, f)
        with open(os.path.join(self.st, "config.json"), "w") as f:
            json.dump(CFG, f)
        self.proc = None
        self.lines = queue.Queue()
        self.log = []
        self.boots = []  # (version, reached_safe_state)
        self.cut_env = None
        self.exits = []

    def start(self):
        env = dict(os.environ)
        env.update({"MICROPYPATH": ".frozen", "GATEWAY_BOARD": os.path.join(paths.BOARDS,
                                                                            "sim.json"),
                    "GATEWAY_STORAGE": self.st, "GATEWAY_OTA_DIR": self.ota})
        env.pop("GATEWAY_OTA_CUT", None)
        env.pop("GATEWAY_RS485", None)
        env.pop("GATEWAY_PLANT", None)
        if self.cut_env:  # every boot carries it until the cut has happened (exit 137)
            env["GATEWAY_OTA_CUT"] = self.cut_env
        self.proc = subprocess.Popen(
            [paths.MICROPYTHON, "-X", "heapsize=" + paths.LIVE_HEAP,
             os.path.join(FIELD, "simboot.py"), self.ota], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        self.boots.append([None, False, time.monotonic()])
        p = self.proc

        def reader():
            for raw in p.stdout:
                self.lines.put((p, raw.decode(errors="replace").rstrip("\n")))
            self.lines.put((p, None))

        threading.Thread(target=reader, daemon=True).start()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def send(self, text):
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass

    def otadata(self):
        with open(os.path.join(self.ota, "otadata.json")) as f:
            return json.load(f)

    def pump(self, until, timeout):
        """Read lines, restart after exits, watchdog hung boots; until(line) -> True stops."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                p, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                b = self.boots[-1]
                if not b[1] and time.monotonic() - b[2] > WATCHDOG_S:
                    self.log.append("# watchdog: no safe state within %d s: reset" % WATCHDOG_S)
                    self.kill()
                continue
            if p is not self.proc:
                continue
            if line is None:  # the process ended: reset, crash or power cut -> boot again
                self.proc.wait()
                self.exits.append(self.proc.returncode)
                if self.proc.returncode == 137:
                    self.cut_env = None  # the power cut happened: no more
                self.log.append("# exit %s: power on again" % self.proc.returncode)
                if len(self.boots) > 12:
                    return False
                self.start()
                continue
            self.log.append(line)
            m = re.search(r"gateway (\S+) on board", line)
            if m:
                self.boots[-1][0] = m.group(1)
            if "SAFE STATE: interlock de-energised" in line:
                self.boots[-1][1] = True
            if until(line):
                return True
        return False

    def stop(self):
        self.kill()


def _wait_safe(board, timeout=60):
    return board.pump(lambda ln: "SAFE STATE" in ln, timeout)


def _broken(kind, n):
    """Images of a bad build: crash or hang at boot, or a gateway that never gets healthy."""
    key_mod = otatool.key_module_text(n)
    if kind == "crash":
        rep = {"main.py": "raise RuntimeError('broken build: crash on boot')\n"}
    elif kind == "hang":
        rep = {"main.py": "while True:\n    pass\n"}
    else:  # unhealthy: the safety tick fails every time (the supervisor restarts it)
        src = open(os.path.join(paths.FIRMWARE, "gateway", "safety.py")).read()
        src = src.replace("    def tick(self, now", "    def tick(self, now, *a):\n"
                          "        raise RuntimeError('broken build')\n\n    def _tick(self, now", 1)
        rep = {"gateway/safety.py": src}
    rep["gateway/ota_key.py"] = key_mod
    return otatool.build_image("1.1-" + kind, replace=rep, compiled=True)


class Bench:
    def __init__(self, verbose=False):
        self.tmp = tempfile.mkdtemp(prefix="gw-ota-")
        self.key = otatool.new_key()
        self.other = otatool.new_key()
        self.n = otatool.modulus(self.key)
        km = otatool.key_module_text(self.n)
        # images of compiled .mpy files, as deployed (bytecode off the source compiler)
        self.v1 = otatool.build_image("1.0", replace={"gateway/ota_key.py": km}, compiled=True)
        self.v11 = otatool.build_image("1.1", replace={"gateway/ota_key.py": km}, compiled=True)
        self.v12 = otatool.build_image("1.2", replace={"gateway/ota_key.py": km}, compiled=True)
        self.good_bundle = otatool.make_bundle(self.v11, self.key, "1.1", "sim")
        self.server = Server()
        self.rows = []
        self.verbose = verbose
        self.k = 0

    def close(self):
        self.server.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _board(self):
        self.k += 1
        return Board(os.path.join(self.tmp, "case%02d" % self.k), self.v1)

    def _row(self, name, kind, board, ok_versions, extra=None):
        d = board.otadata()
        last = board.boots[-1]
        # the final boot must be the old or the new firmware, in the safe state
        bricked = not (last[1] and last[0] in ok_versions)
        r = {"case": name, "kind": kind, "final_version": last[0], "safe": last[1],
             "otadata": d, "bricked": bricked, "exits": board.exits}
        r.update(extra or {})
        lag = [int(x) for x in re.findall(r"loop lag max (\d+) ms during the download",
                                          "\n".join(board.log))]
        r["loop_lag_ms"] = max(lag) if lag else None
        if self.verbose:
            print(json.dumps({k: v for k, v in r.items() if k != "otadata"}), flush=True)
            if not r.get("ok", True) or bricked:
                print("\n".join(board.log[-40:]), flush=True)
        self.rows.append(r)
        board.stop()
        return r

    def update(self, board, bundle, until_re, timeout=CASE_TIMEOUT_S, **srv):
        s = self.server
        s.body = bundle
        s.length = srv.get("length")
        s.cut_at = srv.get("cut_at")
        s.close_at = srv.get("close_at")
        s.on_cut = board.kill if s.cut_at is not None else None
        board.send("ota " + s.url())
        rx = re.compile(until_re)
        return board.pump(lambda ln: rx.search(ln) is not None, timeout)

    # --- the cases --------------------------------------------------------------------
    def good(self, name="good"):
        b = self._board()
        b.start()
        _wait_safe(b)
        ok = self.update(b, self.good_bundle, r"ota: 1\.1 committed")
        self._row(name, "good", b, ("1.0", "1.1"), {"committed": ok, "ok": ok and
                                              b.otadata()["boot"] == 1})

    def good_twice(self):
        b = self._board()
        b.start()
        _wait_safe(b)
        ok1 = self.update(b, self.good_bundle, r"ota: 1\.1 committed")
        _wait_safe(b, 5)
        b12 = otatool.make_bundle(self.v12, self.key, "1.2", "sim")
        ok2 = self.update(b, b12, r"ota: 1\.2 committed")
        self._row("good twice (slot 1 then slot 0)", "good", b, ("1.0", "1.1", "1.2"),
                  {"ok": ok1 and ok2 and b.otadata()["boot"] == 0})

    def bad_bundle(self, name, bundle, **srv):
        b = self._board()
        b.start()
        _wait_safe(b)
        ok = self.update(b, bundle, r"ota: \S+ (rejected|failed)", 60, **srv)
        time.sleep(0.5)
        d = b.otadata()
        accepted = d["boot"] != 0 or d["state"] != "valid" or len(b.boots) > 1
        self._row(name, "bad", b, ("1.0",), {"refused": ok, "accepted": accepted,
                                            "ok": ok and not accepted})

    def bad_boot(self, kind):
        b = self._board()
        b.start()
        _wait_safe(b)
        img = _broken(kind, self.n)
        bundle = otatool.make_bundle(img, self.key, "1.1-" + kind, "sim")
        self.update(b, bundle, r"ota: 1\.1-%s rolled_back" % kind, 120)
        # back on the old firmware: a boot of 1.0 after the trial one, in the safe state
        def back():
            return len(b.boots) >= 3 and b.boots[-1][0] == "1.0" and b.boots[-1][1]

        ok = back() or b.pump(lambda ln: back(), 60)
        time.sleep(1)
        b.pump(lambda ln: False, 3)
        d = b.otadata()
        said = any("rolled_back" in ln for ln in b.log)
        rolled = ok and said and d["boot"] == 0 and d["state"] == "valid"
        self._row("%s on boot" % kind, "bad_boot", b, ("1.0",), {"rolled_back": rolled,
                                                                 "ok": rolled})

    def power_cut(self, name, expect, cut_env=None, cut_at=None, after_trial_s=None):
        """expect: the versions the board may end on."""
        b = self._board()
        b.start()
        _wait_safe(b)
        b.cut_env = None
        if cut_env:
            # the cut variable must be in the environment of the process that updates:
            # restart the board with it (a boot in between changes nothing)
            b.cut_env = cut_env
            b.kill()
            b.pump(lambda ln: "SAFE STATE" in ln and len(b.boots) > 1, 60)
        s = self.server
        s.body = self.good_bundle
        s.length = None
        s.close_at = None
        s.cut_at = cut_at
        s.on_cut = b.kill if cut_at is not None else None
        b.send("ota " + s.url())
        if after_trial_s is not None:
            b.pump(lambda ln: "on trial" in ln, 60)
            time.sleep(after_trial_s)
            b.log.append("# power cut during the trial boot")
            b.kill()
        end = r"ota: 1\.1 (committed|rolled_back)|^boot: slot 0$"
        done = b.pump(lambda ln: re.search(end, ln) is not None and len(b.boots) > 1, 90)
        if done:
            if not b.boots[-1][1]:
                b.pump(lambda ln: "SAFE STATE" in ln, 20)
            time.sleep(3)  # let a trial finish or a rollback publish
            b.pump(lambda ln: False, 12)
        self._row(name, "power_cut", b, expect, {"ok": not self._is_bricked(b, expect)})

    def _is_bricked(self, b, expect):
        last = b.boots[-1]
        return not (last[1] and last[0] in expect)

    def run_device_cases(self, subset=None):
        o = self.other
        n_good = len(self.good_bundle)
        flip = bytearray(self.good_bundle)
        flip[len(flip) // 2] ^= 0x10
        sigflip = bytearray(self.good_bundle)
        sigflip[-1] ^= 0x01
        hdrflip = bytearray(self.good_bundle)
        hdrflip[20] ^= 0x01
        cases = [
            ("good", self.good),
            ("good_twice", self.good_twice),
            ("wrong_key", lambda: self.bad_bundle(
                "wrong key", otatool.make_bundle(self.v11, o, "1.1", "sim"))),
            ("forged_key_id", lambda: self.bad_bundle(
                "other key, our key id", otatool.make_bundle(self.v11, o, "1.1", "sim",
                                                             key_for_id=self.key))),
            ("bad_signature", lambda: self.bad_bundle("bad signature", bytes(sigflip))),
            ("flipped_payload", lambda: self.bad_bundle("one flipped payload byte",
                                                        bytes(flip))),
            ("flipped_header", lambda: self.bad_bundle("one flipped header byte",
                                                       bytes(hdrflip))),
            ("truncated", lambda: self.bad_bundle("truncated file", self.good_bundle[:-100])),
            ("dropped", lambda: self.bad_bundle("connection dropped", self.good_bundle,
                                                close_at=n_good // 3)),
            ("wrong_target", lambda: self.bad_bundle(
                "wrong target", otatool.make_bundle(self.v11, self.key, "1.1", "esp32"))),
            ("crash", lambda: self.bad_boot("crash")),
            ("hang", lambda: self.bad_boot("hang")),
            ("unhealthy", lambda: self.bad_boot("unhealthy")),
        ]
        old, both = ("1.0",), ("1.0", "1.1")
        for frac in (10, 50, 90):
            cases.append(("cut_download_%d" % frac, lambda f=frac: self.power_cut(
                "power cut at %d%% of the download" % f, old, cut_at=n_good * f // 100)))
        for pt, exp in (("write:1", old), ("write:40", old), ("boot0:1", both),
                        ("boot1:1", both), ("boot2:1", ("1.1",)), ("valid0:1", both),
                        ("valid1:1", both)):
            cases.append(("cut_" + pt, lambda p=pt, e=exp: self.power_cut(
                "power cut at %s" % p, e, cut_env=p)))
        cases.append(("cut_trial", lambda: self.power_cut(
            "power cut during the trial boot", ("1.0", "1.1"), after_trial_s=0.5)))
        for name, fn in cases:
            if subset is None or name in subset:
                fn()

    def unsafe_cases(self):
        """The switch waits while islanded or discharging: the real Updater on the unix port."""
        env = paths.micropython_env()  # the compiled firmware, as deployed
        p = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=" + paths.HEAP,
                            os.path.join(FIELD, "ota_unsafe_probe.py")], capture_output=True,
                           text=True, env=env, timeout=120, check=False)
        lines = p.stdout.strip().splitlines()
        if p.returncode or not lines:
            raise RuntimeError("ota_unsafe_probe failed: %s" % p.stderr[-2000:])
        r = json.loads(lines[-1])
        for c in r["cases"]:
            self.rows.append({"case": c["name"], "kind": "unsafe", "ok": c["ok"],
                              "switched_while_unsafe": c["unsafe_switches"], "bricked": False})
        return r

    def summary(self):
        rows = self.rows
        bad_boot = [r for r in rows if r["kind"] == "bad_boot"]
        lags = [r["loop_lag_ms"] for r in rows if r.get("loop_lag_ms") is not None]
        return {
            "ota_cases": len(rows),
            "ota_bricked": sum(1 for r in rows if r.get("bricked")),
            "ota_bad_accepted": sum(1 for r in rows if r["kind"] == "bad" and r["accepted"]),
            "ota_bad_boot_cases": len(bad_boot),
            "ota_rollbacks_ok": sum(1 for r in bad_boot if r["rolled_back"]),
            "ota_power_cut_cases": sum(1 for r in rows if r["kind"] == "power_cut"),
            "ota_switch_while_unsafe": sum(r.get("switched_while_unsafe", 0) for r in rows),
            "ota_loop_lag_ms_max": max(lags) if lags else None,
            "ota_loop_lag_ms_median": sorted(lags)[len(lags) // 2] if lags else None,
            "ota_downloads_measured": len(lags),
            "ota_cases_failed": [r["case"] for r in rows if not r.get("ok")],
        }


def run(subset=None, verbose=False):
    b = Bench(verbose)
    try:
        b.run_device_cases(subset)
        if subset is None or "unsafe" in subset:
            b.unsafe_cases()
        return b.summary()
    finally:
        b.close()
