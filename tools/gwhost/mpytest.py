"""Run the firmware's unit tests on the MicroPython unix port.

Each test file runs in its own `micropython -X heapsize=110k` process (an
ESP32-like heap without PSRAM), through tools/mpytest/runner.py, two at a time.
The exit status is non-zero when any file fails, errors, cannot be imported,
runs no test, or does not finish within its time limit.

Two runtimes (--runtime):
- unix64 (default): the PyPI unix port (64-bit words, double floats) with the firmware
  compiled to .mpy files in the heap (build/mpy-x64); a file may ask for a bigger heap.
- esp32like: build/esp32like/micropython (32-bit words, float32, the firmware frozen;
  gwhost.esp32like), every file at 110 KB unless it says why not in an
  `# mpytest: esp32like-heap=...` line. The runner lives outside any firmware tree, so
  only the frozen `gateway` package can be imported. `make test-esp32like`.

Usage: tools/test-mpy [--runtime unix64|esp32like] [FILE_OR_DIR ...]   (default: host_tests/mpy)
"""

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time

from gwhost import esp32like, paths

RUNNER = os.path.join(paths.ROOT, "tools", "mpytest", "runner.py")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", re.M)


def collect(targets):
    files = []
    for t in targets:
        if os.path.isdir(t):
            files += sorted(os.path.join(t, f) for f in os.listdir(t)
                            if f.startswith("test_") and f.endswith(".py"))
        else:
            files.append(t)
    return files


HEAP_DIRECTIVE = re.compile(r"^# mpytest: heap=(\d+k)\b", re.M)
# On the ESP32-like runtime every file runs at the board's 110 KB, unless it names why it
# cannot (`# mpytest: esp32like-heap=200k (reason)`); the run lists those files.
ESP32LIKE_DIRECTIVE = re.compile(r"^# mpytest: esp32like-heap=(\d+k)\b", re.M)


def file_heap(path, default):
    """A test file that loads the whole app may say `# mpytest: heap=512k`: on the unix
    port its bytecode lives in the heap, on a board it is frozen in flash."""
    with open(path) as f:
        m = HEAP_DIRECTIVE.search(f.read(2000))
    return m.group(1) if m else default


class Runtime:
    """How to start one MicroPython for the tests."""

    def __init__(self, name):
        self.name = name
        if name == "esp32like":
            self.binary = esp32like.BINARY
            self.env = esp32like.env()
            self.frozen = True
        else:
            self.binary = paths.MICROPYTHON
            self.env = paths.micropython_env()
            self.frozen = False

    def heap(self, path, default):
        # Frozen firmware keeps its bytecode in flash: every file gets the board's heap,
        # unless it says why it needs more (ESP32LIKE_DIRECTIVE).
        if not self.frozen:
            return file_heap(path, default)
        with open(path) as f:
            m = ESP32LIKE_DIRECTIVE.search(f.read(2000))
        return m.group(1) if m else default


def run_file(path, heap, timeout, rt):
    heap = rt.heap(path, heap)
    cmd = [rt.binary, "-X", "heapsize=" + heap, RUNNER, path]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=rt.env, cwd=paths.ROOT, check=False)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\nTIMEOUT after %d s" % timeout
        rc = -1
    m = SUMMARY.search(out)
    passed, failed, skipped = (int(x) for x in m.groups()) if m else (0, 1, 0)
    if rc != 0 and failed == 0:
        failed = 1
    return path, rc, passed, failed, skipped, out, time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description="firmware tests on the MicroPython unix port")
    ap.add_argument("targets", nargs="*", default=[os.path.join("host_tests", "mpy")])
    ap.add_argument("--runtime", choices=["unix64", "esp32like"], default="unix64")
    ap.add_argument("--or-skip", action="store_true",
                    help="when the runtime is not built (or stale), say so in one line and exit 0")
    ap.add_argument("--heap", default=paths.HEAP)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    files = collect([os.path.join(paths.ROOT, t) if not os.path.isabs(t) else t
                     for t in args.targets])
    if not files:
        print("test-mpy: no test files found", file=sys.stderr)
        return 2
    if args.runtime == "esp32like" and esp32like.status() != "current":
        why = "built from other firmware" if esp32like.available() else "not built"
        if args.or_skip:
            print("test-mpy: ESP32-like tier skipped (runtime %s): to enable it, %s"
                  % (why, esp32like.ENABLE_HINT))
            return 0
        print("test-mpy: the ESP32-like runtime is %s: %s" % (why, esp32like.ENABLE_HINT),
              file=sys.stderr)
        return 2
    rt = Runtime(args.runtime)
    tot_p = tot_f = tot_s = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_file, f, args.heap, args.timeout, rt) for f in files]
        for fut in futs:
            path, rc, p, f, s, out, dt = fut.result()
            tot_p, tot_f, tot_s = tot_p + p, tot_f + f, tot_s + s
            rel = os.path.relpath(path, paths.ROOT)
            status = "ok" if f == 0 and rc == 0 else "FAILED"
            heap = rt.heap(path, args.heap)
            note = "" if heap == args.heap else "  (heap %s)" % heap
            print("%-52s %3d passed %2d failed %5.1f s  %s%s" % (rel, p, f, dt, status, note))
            if status != "ok" or args.verbose:
                print(out)
    print("%s -X heapsize=%s: %d passed, %d failed, %d skipped"
          % ("esp32like micropython (32-bit, float32, frozen)" if rt.frozen else "micropython",
             args.heap, tot_p, tot_f, tot_s))
    return 1 if tot_f or not tot_p else 0


if __name__ == "__main__":
    sys.exit(main())
