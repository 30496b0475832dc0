# Counters that survive a reset: daily and lifetime energies, charger starts, OTA history.
#
# A record (JSON, a few hundred bytes) is written every `persist.interval_s` when something
# changed, at the local day rollover and after an OTA outcome; a reset loses at most the
# interval. Two tiers:
#   flash   state.json, written atomically like config.json (write state.json.tmp, read it
#           back, move state.json to .bak, move .tmp into place; load takes the valid file
#           with the highest sequence number, so a power cut anywhere leaves the old or the new
#           record). A flash write stalls the interpreter (~80 ms a page on the ESP32), so it
#           waits during island backup or a discharge (`busy`: Gateway.flash_busy), as config
#           saves do.
#   rtc     (optional, board.rtc_memory(): ESP32 RTC slow memory, 2 KB, kept across watchdog,
#           soft and OTA resets but not a power cut) written on every interval, busy or not:
#           it costs microseconds. On the host a file stands in for it.
# Flash writes per day: at most ceil(86400 / interval_s) + 1 (rollover) + OTA outcomes,
# i.e. 97 at the 900 s default (one ~400-byte file write plus two renames each), fewer when
# nothing changes or a flash write must wait. Loss bound: a reset loses at most interval_s;
# a power cut during a long backup/discharge stretch loses at most what accrued since the
# last flash save (the RTC tier covers every reset that keeps power).
#
# The day is the local day (gateway/tz.py) from the SNTP wall clock: until the first sync
# nothing is restored or saved (energy counted meanwhile is added to the restored day).
import json

from gateway.clock import ticks_diff

SCHEMA = {
    "interval_s": (900, 60, 86400),  # save period: the most a reset can lose
    "history": (5, 1, 10),  # OTA outcomes kept
}

_ENERGY = ("import_wh", "export_wh", "ev_in_wh", "ev_out_wh", "pv_wh")
_VERSION = 1


class PersistError(Exception):
    pass


class Persist:
    """cfg: the "persist" section. counters: model.Counters. fs: config._OsFs-like.
    path: the flash file. rtc: object with read() -> bytes and write(bytes), or None.
    busy: callable, True while a flash write must wait."""

    def __init__(self, cfg, counters, path="state.json", fs=None, rtc=None, busy=None, log=None):
        self.cfg = cfg
        self.c = counters
        self.path = path
        if fs is None:
            from gateway.config import _OsFs

            fs = _OsFs()
        self.fs = fs
        self.rtc = rtc
        self.busy = busy
        self.log = log
        self.seq = 0
        self.life = dict.fromkeys(_ENERGY, 0)  # totals of the days before `day`
        self.ota = []  # newest last: {"v": version, "result": .., "reason": .., "t": utc_s}
        self.starts_base = 0  # charger starts before this boot
        self.restored = False
        self.saves = 0  # flash writes since boot
        self.rtc_saves = 0
        self.deferred = 0
        self.error = None
        self._last = None  # the last saved payload (without seq), to skip identical saves
        self._loaded = None  # the record read at boot, applied once the day is known
        self._t = 0  # ticks of the last save

    def _log(self, level, msg):
        if self.log is not None:
            self.log.add(level, msg)

    # --- load ---------------------------------------------------------------------------
    def _parse(self, data):
        r = json.loads(data)
        if not isinstance(r, dict) or r.get("v") != _VERSION or not isinstance(r.get("seq"), int):
            raise PersistError("not a state record")
        for k in ("today", "life"):
            d = r.get(k)
            if not isinstance(d, dict):
                raise PersistError("missing " + k)
            for e in _ENERGY:
                if not isinstance(d.get(e, 0), int) or d.get(e, 0) < 0:
                    raise PersistError("bad %s.%s" % (k, e))
        return r

    def load(self):
        """Read the newest valid record of flash (.json, .tmp, .bak) and RTC memory; it is
        applied to the counters by `start_day` once the local day is known."""
        best = None
        errors = []
        cands = []
        for p in (self.path, self.path + ".tmp", self.path + ".bak"):
            if self.fs.exists(p):
                try:
                    cands.append((p, self.fs.read(p)))
                except OSError as e:
                    errors.append("%s: %s" % (p, e))
        if self.rtc is not None:
            try:
                b = self.rtc.read()
                if b:
                    cands.append(("rtc", b))
            except OSError as e:
                errors.append("rtc: %s" % e)
        for name, data in cands:
            try:
                r = self._parse(data)
            except (ValueError, PersistError) as e:  # JSON errors are ValueError
                if name != "rtc":  # RTC memory after a power cut is noise, not an error
                    errors.append("%s: %s" % (name, e))
                continue
            if best is None or r["seq"] > best[1]["seq"]:
                best = (name, r)
        self.error = "; ".join(errors) if errors else None
        if best is None:
            return None
        r = best[1]
        self.seq = r["seq"]
        self.ota = list(r.get("ota", ()))[-self.cfg["history"]:]
        self.starts_base = r.get("charger_starts", 0)
        self._loaded = r
        return best[0]

    def start_day(self, day):
        """The local day is known (first sync): restore today's counters if the record is
        from today, else fold its day into the lifetime totals. Counts made since boot are
        kept (added)."""
        r = self._loaded
        self._loaded = None
        c = self.c
        if r is not None:
            for k in _ENERGY:
                self.life[k] = r["life"].get(k, 0)
            if r.get("day") == day:
                for k in _ENERGY:
                    setattr(c, k, getattr(c, k) + r["today"].get(k, 0))
            else:
                for k in _ENERGY:
                    self.life[k] += r["today"].get(k, 0)
        c.day = day
        self.restored = True

    def roll(self, day):
        """A new local day: yesterday goes into the lifetime totals."""
        c = self.c
        for k in _ENERGY:
            self.life[k] += getattr(c, k)
        c.new_day(day)

    # --- values -------------------------------------------------------------------------
    def lifetime(self, key):
        return self.life[key] + getattr(self.c, key)

    def charger_starts(self):
        """Lifetime charger starts: before this boot + counted since."""
        return self.starts_base + self.c.charger_starts

    def record_ota(self, version, result, reason, t_s):
        self.ota.append({"v": version, "result": result, "reason": reason, "t": t_s})
        del self.ota[:-self.cfg["history"]]

    def payload(self):
        c = self.c
        return {"v": _VERSION, "day": c.day,
                "today": {k: getattr(c, k) for k in _ENERGY},
                "life": dict(self.life), "charger_starts": self.charger_starts(),
                "ota": self.ota}

    # --- save ---------------------------------------------------------------------------
    def save(self, force=False):
        """RTC memory always; flash unless busy. Returns "saved", "same", "deferred"."""
        p = self.payload()
        same = p == self._last
        if same and not force:
            return "same"
        self.seq += 1
        p["seq"] = self.seq
        data = json.dumps(p).encode()
        if self.rtc is not None:
            try:
                self.rtc.write(data)
                self.rtc_saves += 1
            except OSError as e:
                self.error = "rtc: %s" % e
        if self.busy is not None and self.busy():
            self.deferred += 1
            return "deferred"
        self._write(data)
        del p["seq"]
        self._last = p
        self.saves += 1
        return "saved"

    def _write(self, data):
        fs = self.fs
        tmp, bak = self.path + ".tmp", self.path + ".bak"
        fs.remove(tmp)
        fs.write(tmp, data)
        if fs.read(tmp) != data:
            fs.remove(tmp)
            raise PersistError("%s: read-back differs after write" % tmp)
        if fs.exists(self.path):
            fs.remove(bak)
            fs.rename(self.path, bak)
        fs.rename(tmp, self.path)

    def poll(self, now, day):
        """Once a second: `day` is the local day number or -1 before the first sync."""
        if day < 0:
            return None
        if not self.restored:
            self.start_day(day)
            self._t = now
            return "restored"
        if day != self.c.day:
            self.roll(day)
            self._t = now
            return self._try(True)
        if ticks_diff(now, self._t) >= self.cfg["interval_s"] * 1000:
            r = self._try(False)
            if r != "deferred":
                self._t = now
            return r
        return None

    async def run(self, clock, day_of):
        """The service: `day_of()` is the local day number or -1 before the first sync."""
        import asyncio

        while True:
            await asyncio.sleep_ms(1000)
            self.poll(clock.now_ms(), day_of())

    def _try(self, force):
        try:
            return self.save(force)
        except (OSError, PersistError) as e:
            self.error = "save failed: %s" % e
            self._log(3, "persist " + self.error)
            return "failed"

    def state(self):
        return {"saves": self.saves, "rtc_saves": self.rtc_saves, "deferred": self.deferred,
                "interval_s": self.cfg["interval_s"], "error": self.error,
                "life_import_wh": self.lifetime("import_wh"),
                "life_export_wh": self.lifetime("export_wh"),
                "life_ev_in_wh": self.lifetime("ev_in_wh"),
                "life_ev_out_wh": self.lifetime("ev_out_wh"),
                "life_pv_wh": self.lifetime("pv_wh"), "charger_starts": self.charger_starts()}


class FileRtc:
    """RTC-memory stand-in for the host: a file (survives a process restart = a reset;
    tests delete it to model a power cut)."""

    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def write(self, data):
        with open(self.path, "wb") as f:
            f.write(data)
