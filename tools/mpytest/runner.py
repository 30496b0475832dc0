# Runs unittest-style test modules on the MicroPython unix port.
#
# Usage (what tools/test-mpy does for each file):
#   micropython -X heapsize=110k tools/mpytest/runner.py host_tests/mpy/test_x.py
# It uses micropython-unittest's TestCase/TestRunner, then prints one closing
# line "N passed, N failed, N skipped" and exits 1 on any failure or error.
# micropython-unittest's own main() exits with `failuresNum > 0` (True -> 1),
# but it counts import errors as nothing at all; this runner turns an import
# error into a failure so a broken test file can never pass silently.
import sys

import unittest


def _load(path):
    d, _, f = path.rpartition("/")
    if d and d not in sys.path:
        sys.path.insert(0, d)
    name = f[:-3] if f.endswith(".py") else f
    return __import__(name)


def run(path):
    try:
        mod = _load(path)
    except Exception as e:  # noqa: BLE001 - any import failure is a test failure
        sys.print_exception(e)
        print("%s: import failed" % path)
        return 0, 1, 0
    suite = unittest.TestSuite()
    for n in dir(mod):
        c = getattr(mod, n)
        if isinstance(c, type) and issubclass(c, unittest.TestCase) and c is not unittest.TestCase:
            suite.addTest(c)
    res = unittest.TestRunner().run(suite)
    for e in res.exceptions:
        print(e)
    bad = res.failuresNum + res.errorsNum
    return res.testsRun - bad - res.skippedNum, bad, res.skippedNum


def main():
    passed = failed = skipped = 0
    for path in sys.argv[1:]:
        p, f, s = run(path)
        passed += p
        failed += f
        skipped += s
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or not passed else 0)


main()
