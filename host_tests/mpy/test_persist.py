# Counters that survive a reset: the loss is at most the save interval, a power cut at any
# step of a save leaves the old or the new record, writes per day are bounded.
import unittest

from gateway.model import Counters
from gateway.persist import Persist, PersistError

DAY = 9800  # a local day number (days since 2000)


class MemFs:
    """In-memory files; `cut_after` = number of write/rename/remove steps before a power cut."""

    def __init__(self):
        self.files = {}
        self.cut_after = -1
        self.writes = 0

    def _step(self):
        if self.cut_after == 0:
            raise OSError(5, "power cut")
        if self.cut_after > 0:
            self.cut_after -= 1

    def read(self, p):
        if p not in self.files:
            raise OSError(2, "no file")
        return self.files[p]

    def write(self, p, data):
        self._step()
        self.writes += 1
        self.files[p] = bytes(data)

    def rename(self, a, b):
        self._step()
        self.files[b] = self.files.pop(a)

    def remove(self, p):
        self._step()
        self.files.pop(p, None)

    def exists(self, p):
        return p in self.files


class MemRtc:
    def __init__(self):
        self.data = b""

    def read(self):
        return self.data

    def write(self, d):
        self.data = bytes(d)


def boot(fs, rtc=None, interval_s=300, busy=None):
    c = Counters()
    p = Persist({"interval_s": interval_s, "history": 5}, c, "state.json", fs, rtc, busy)
    p.load()
    return c, p


def run_minutes(c, p, minutes, t0=0, grid_w=2000, day=DAY):
    """One step per second: 2 kW import (33.3 Wh/min) and the persist poll."""
    t = t0
    for _ in range(minutes * 60):
        t += 1000
        c.add_energy(grid_w, 0, 0, 1000)
        p.poll(t, day)
    return t


class Resets(unittest.TestCase):
    def test_a_reset_loses_at_most_the_interval(self):
        for minutes in (7, 13, 31):
            fs = MemFs()
            c, p = boot(fs, interval_s=300)
            run_minutes(c, p, minutes)
            before = c.import_wh
            c2, p2 = boot(fs)  # the reset: new process state, same flash
            p2.start_day(DAY)
            lost = before - c2.import_wh
            self.assertTrue(0 <= lost <= 2000 * 300 // 3600 + 1, (minutes, lost))
            self.assertEqual(p2.lifetime("import_wh"), c2.import_wh)

    def test_while_exporting_flash_waits_but_rtc_memory_keeps_the_bound(self):
        fs, rtc = MemFs(), MemRtc()
        c, p = boot(fs, rtc, busy=lambda: True)
        run_minutes(c, p, 20)
        self.assertEqual(fs.writes, 0)  # no flash write while export is permitted
        self.assertTrue(p.deferred >= 3)
        c2, p2 = boot(fs, rtc)  # watchdog reset: RTC memory kept
        p2.start_day(DAY)
        self.assertTrue(c.import_wh - c2.import_wh <= 2000 * 300 // 3600 + 1)

    def test_new_day_moves_today_into_lifetime(self):
        fs = MemFs()
        c, p = boot(fs)
        t = run_minutes(c, p, 6)
        today = c.import_wh
        p.poll(t + 1000, DAY + 1)
        self.assertEqual((c.day, c.import_wh), (DAY + 1, 0))
        self.assertEqual(p.lifetime("import_wh"), today)
        c2, p2 = boot(fs)
        p2.start_day(DAY + 2)  # booted on a later day: yesterday's record is history
        self.assertEqual((c2.import_wh, p2.lifetime("import_wh")), (0, today))

    def test_counts_before_the_first_sync_are_kept(self):
        fs = MemFs()
        c, p = boot(fs)
        run_minutes(c, p, 10)
        c2, p2 = boot(fs)
        run_minutes(c2, p2, 2, day=-1)  # no wall time yet: nothing restored or saved
        self.assertTrue(p2.saves == 0 and not p2.restored)
        early = c2.import_wh
        import json

        stored = json.loads(fs.files["state.json"])["today"]["import_wh"]
        p2.poll(0, DAY)
        self.assertTrue(early > 0 and stored > 0)
        self.assertEqual(c2.import_wh, early + stored)


class PowerCut(unittest.TestCase):
    def test_cut_at_every_step_of_a_save_leaves_old_or_new(self):
        for k in range(6):
            fs = MemFs()
            c, p = boot(fs)
            run_minutes(c, p, 5)
            old = c.import_wh
            self.assertEqual(p.save(True), "saved")
            for _ in range(100):  # +100 Wh since the last save
                c.add_energy(100000, 0, 0, 36000)
            fs.cut_after = k
            try:
                p.save(True)
                done = True
            except (OSError, PersistError):
                done = False
            fs.cut_after = -1
            c2, p2 = boot(fs)
            p2.start_day(DAY)
            self.assertIn(c2.import_wh, (old, c.import_wh), k)
            if done:
                self.assertEqual(c2.import_wh, c.import_wh)

    def test_corrupt_file_is_named_and_the_backup_used(self):
        fs = MemFs()
        c, p = boot(fs)
        run_minutes(c, p, 11)
        fs.files["state.json"] = b"{garbage"
        c2, p2 = boot(fs)
        self.assertIn("state.json", p2.error)
        p2.start_day(DAY)
        self.assertTrue(c2.import_wh > 0)


class Budget(unittest.TestCase):
    def test_flash_writes_per_day_bounded(self):
        fs = MemFs()
        c, p = boot(fs, interval_s=900)
        t = 0
        for _ in range(86400 // 10):  # a whole day at 10 s steps, counters always moving
            t += 10000
            c.add_energy(2000, 0, 0, 10000)
            p.poll(t, DAY)
        p.poll(t + 1000, DAY + 1)  # and the rollover
        self.assertTrue(fs.writes <= 86400 // 900 + 1, fs.writes)
        self.assertTrue(fs.writes >= 90)

    def test_nothing_changed_nothing_written(self):
        fs = MemFs()
        c, p = boot(fs)
        run_minutes(c, p, 6)
        n = fs.writes
        run_minutes(c, p, 30, t0=10 ** 6, grid_w=0)
        self.assertEqual(fs.writes, n + 1)  # the one save that caught the last minute

    def test_ota_history_is_bounded_and_survives(self):
        fs = MemFs()
        _, p = boot(fs)
        p.start_day(DAY)
        for i in range(8):
            p.record_ota("1.%d" % i, "committed", "", 1000 + i)
        p.save(True)
        _, p2 = boot(fs)
        self.assertEqual([o["v"] for o in p2.ota], ["1.3", "1.4", "1.5", "1.6", "1.7"])
