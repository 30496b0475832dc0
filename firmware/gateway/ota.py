# Signed over-the-air updates with a health-gated commit (docs/field.md, "Updates").
#
# Bundle (made by tools/sign-firmware on the host):
#   b"GWOTA1" | header length (u16, big-endian) | header JSON | payload | signature
#   header: {"version": "1.4.0", "target": "esp32" | "sim", "size": payload bytes,
#            "key_id": first 16 hex digits of sha256(modulus)}
#   signature: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 section 8.2) over every byte before
#   it, with the project's RSA key (3072 bits by default; the public modulus is frozen into
#   the firmware as gateway/ota_key.py, the private key never leaves the signing host).
# RSA because verifying needs one modular exponentiation with e = 65537 (16 squarings and a
# multiply) on MicroPython's arbitrary-precision ints; it is done step by step with a yield
# between steps so the event loop keeps its timing. SmartEVSE signs its OTA with RSA as well.
#
# Flow: download (HTTP, asyncio stream, 1 KB chunks) -> the payload goes straight into the
# inactive slot while everything is hashed -> the signature is checked -> the update waits
# for a safe moment (not islanded, not discharging; then the safe state: export blocked,
# devices stopped and confirmed) -> the slot is set to boot -> reset. The new firmware runs
# "pending verify" and commits only once it proves itself within `ota.commit_s` (safety
# ticking, the bus devices answering as configured, MQTT connected if configured); a crash,
# a hang (watchdog) or a failed check resets into the old firmware (the bootloader's
# rollback: ESP-IDF's app rollback on the ESP32, tools/mpyfield/simboot.py on the host).
# Slots come from the board (ports/esp32_ota.py: esp32.Partition; ports/sim_ota.py: files
# with the same interface). Every outcome is published: version, result, reason.
import hashlib
import json

from micropython import const

from gateway.clock import ticks_diff

SCHEMA = {
    "commit_s": (120, 10, 3600),  # a new firmware must prove itself within this time
    "healthy_s": (20, 1, 600),  # ... by passing every check for this long
    "switch_wait_s": (3600, 10, 86400),  # give up waiting for a safe moment after this
    "stop_wait_s": (10, 1, 120),  # devices must confirm the stop within this
}

MAGIC = b"GWOTA1"
_BLOCK = const(4096)  # flash erase/write unit on the ESP32
_CHUNK = const(1024)
# DER DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1)
_SHA256_INFO = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"

# outcome results
RESULT_COMMITTED = "committed"
RESULT_ROLLED_BACK = "rolled_back"
RESULT_REJECTED = "rejected"
RESULT_FAILED = "failed"


class OtaError(Exception):
    """A refused or failed update; str() is the published reason."""


def nbytes(n):
    """Bytes of a positive int (MicroPython's int has no bit_length())."""
    return (len("%x" % n) + 1) // 2


def key_id(n):
    """16 hex digits naming an RSA modulus (sha256 of its big-endian bytes)."""
    k = nbytes(n)
    return _hex(hashlib.sha256(n.to_bytes(k, "big")).digest()[:8])


def _hex(b):
    return "".join("%02x" % x for x in b)


def expected_em(digest, k):
    """The PKCS#1 v1.5 encoded message for a SHA-256 digest, k bytes long."""
    t = _SHA256_INFO + digest
    if k < len(t) + 11:
        raise OtaError("key too short")
    return b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t


def rsa_steps(sig, n):
    """Generator: s^65537 mod n one multiplication per step (17 steps); the last value
    yielded is the result. Lets a caller yield to the event loop between steps."""
    s = int.from_bytes(sig, "big")
    if s >= n:
        raise OtaError("bad signature (not below the modulus)")
    x = s
    for _ in range(16):
        x = (x * x) % n
        yield None
    yield (x * s) % n


def verify(digest, sig, n):
    """Raise OtaError unless sig is n's PKCS#1 v1.5 SHA-256 signature of digest."""
    k = nbytes(n)
    if len(sig) != k:
        raise OtaError("bad signature length %d (key has %d bytes)" % (len(sig), k))
    x = None
    for x in rsa_steps(sig, n):
        pass
    if x.to_bytes(k, "big") != expected_em(digest, k):
        raise OtaError("bad signature")


class BundleSink:
    """Parses a bundle fed in pieces: the payload goes to `part` (esp32.Partition-like:
    writeblocks(block, buf), ioctl(4) block count, ioctl(6, block) erase) in whole blocks;
    everything before the signature is hashed. n: the public modulus (None: refuse)."""

    def __init__(self, part, n, target):
        if n is None:
            raise OtaError("no update key in this firmware (see tools/sign-firmware keygen)")
        self.part = part
        self.n = n
        self.k = nbytes(n)
        self.target = target
        self.kid = key_id(n)
        self.h = hashlib.sha256()
        self.head = bytearray()
        self._need = len(MAGIC) + 2  # header bytes expected so far
        self.header = None
        self.size = -1
        self.got = 0  # payload bytes received
        self.sig = bytearray()
        self.buf = bytearray(_BLOCK)
        self.fill = 0
        self.block = 0
        self.blocks = part.ioctl(4, 0)
        self.total = 0

    def feed(self, data):
        self.total += len(data)
        mv = memoryview(data)
        i = 0
        n = len(mv)
        while i < n:
            if self.header is None:
                i = self._head(mv, i)
            elif self.got < self.size:
                take = min(n - i, self.size - self.got, _BLOCK - self.fill)
                self.buf[self.fill:self.fill + take] = mv[i:i + take]
                self.h.update(mv[i:i + take])
                self.fill += take
                self.got += take
                i += take
                if self.fill == _BLOCK or self.got == self.size:
                    self._flush()
            else:
                take = min(n - i, self.k - len(self.sig))
                if take <= 0:
                    raise OtaError("trailing data after the signature")
                self.sig += mv[i:i + take]
                i += take

    def _head(self, mv, i):
        fixed = len(MAGIC) + 2
        need = self._need
        while len(self.head) < need and i < len(mv):
            self.head.append(mv[i])
            i += 1
            if len(self.head) == fixed:
                if bytes(self.head[:len(MAGIC)]) != MAGIC:
                    raise OtaError("not an update bundle (bad magic)")
                hl = (self.head[-2] << 8) | self.head[-1]
                if not 0 < hl <= 1024:
                    raise OtaError("bad header length %d" % hl)
                need = self._need = fixed + hl
        if len(self.head) < need or need == fixed:
            return i
        self.h.update(self.head)
        try:
            hd = json.loads(bytes(self.head[len(MAGIC) + 2:]))
            ver, tgt, size, kid = hd["version"], hd["target"], hd["size"], hd["key_id"]
        except (ValueError, KeyError, TypeError):
            raise OtaError("bad header")
        if not isinstance(size, int) or size <= 0:
            raise OtaError("bad header size")
        if not isinstance(ver, str) or not 0 < len(ver) <= 32:
            raise OtaError("bad header version")
        if tgt != self.target:
            raise OtaError("bundle for target %r, this board is %r" % (tgt, self.target))
        if kid != self.kid:
            raise OtaError("signed with another key (%s, this firmware trusts %s)" % (kid, self.kid))
        if (size + _BLOCK - 1) // _BLOCK > self.blocks:
            raise OtaError("image of %d bytes does not fit the slot" % size)
        self.header = hd
        self.size = size
        return i

    def _flush(self):
        if self.fill < _BLOCK:
            for j in range(self.fill, _BLOCK):
                self.buf[j] = 0xFF  # erased flash
        self.part.ioctl(6, self.block)  # erase
        self.part.writeblocks(self.block, self.buf)
        self.block += 1
        self.fill = 0

    def complete(self):
        """Raise OtaError unless every part arrived; returns the digest to verify."""
        if self.header is None or self.got < self.size or len(self.sig) < self.k:
            raise OtaError("truncated bundle (%d bytes)" % self.total)
        return self.h.digest()

    @property
    def version(self):
        return self.header["version"] if self.header else None


def parse_url(url):
    """http://host[:port]/path -> (host, port, path). HTTPS is not offered: the bundle
    is signed, so the transport needs no trust (say so in the guide)."""
    if not isinstance(url, str) or not url.startswith("http://"):
        raise OtaError("URL must start with http:// (the bundle itself is signed)")
    rest = url[7:]
    host, _, path = rest.partition("/")
    host, _, port = host.partition(":")
    if not host:
        raise OtaError("URL has no host")
    try:
        port = int(port) if port else 80
    except ValueError:
        raise OtaError("bad port in URL")
    return host, port, "/" + path


class Updater:
    """The OTA service. gw: the Gateway (permits, charger, setpoints, bus, config, log,
    safe_state, sup); slots: the board's slot object (get_next_update, running,
    mark_app_valid_cancel_rollback, pending); n: the trusted modulus (gateway.ota_key.N);
    publish: fn(dict) for outcomes; persist: gateway.persist.Persist or None."""

    def __init__(self, gw, slots, n, target, cfg, publish=None, persist=None, reset=None,
                 marker=None):
        self.gw = gw
        self.marker = marker  # path of the switch marker (see attach)
        self.slots = slots
        self.n = n
        self.target = target
        self.cfg = cfg
        self.publish = publish
        self.persist = persist
        self.reset = reset  # fn(): restart into the new slot (board.reset)
        self.state = "idle"  # idle, downloading, verifying, waiting, switching, pending,
        #                      committed (after a good boot), failed
        self.url = None
        self.progress = 0
        self.version = None
        self.result = None
        self.reason = None
        self.lag_ms_max = 0  # worst own step while downloading / verifying
        self.loop_lag_ms_max = 0  # worst event-loop lag during the last download
        self._task = None
        self.gate = None
        self.aborted = 0  # switches abandoned because the safe moment passed
        self.pauses = 0  # downloads paused while export was permitted (no flash writes then)

    def _log(self, level, msg):
        self.gw.log.add(level, msg)

    def outcome(self, version, result, reason):
        self.version, self.result, self.reason = version, result, reason
        rec = {"version": version, "result": result, "reason": reason}
        self._log(1 if result in (RESULT_COMMITTED, "switching") else 3, "ota: %s %s%s" % (
            version, result, (": " + reason) if reason else ""))
        if self.persist is not None:
            self.persist.record_ota(version, result, reason, -1)
            self.persist._try(True)  # waits for flash itself while export is permitted
        if self.publish is not None:
            self.publish(rec)

    def start(self, url):
        """Begin an update from `url` in the background. Returns an error text or None."""
        import asyncio

        if self.state in ("downloading", "verifying", "waiting", "switching"):
            return "an update is already %s" % self.state
        gate = self.gate
        if gate is not None and gate.state == "pending":
            return "this firmware is not committed yet"
        try:
            parse_url(url)
        except OtaError as e:
            return str(e)
        self.url = url
        self.state = "downloading"
        self._task = asyncio.create_task(self._run(url))
        return None

    async def _lag(self):
        """Event-loop lag (how late a 10 ms sleep wakes) while downloading and verifying."""
        import asyncio

        clock = self.gw.clock
        while self.state in ("downloading", "verifying"):
            t0 = clock.now_ms()
            await asyncio.sleep_ms(10)
            self.loop_lag_ms_max = max(self.loop_lag_ms_max, ticks_diff(clock.now_ms(), t0) - 10)

    async def _run(self, url):
        import asyncio

        sink = None
        self.loop_lag_ms_max = 0
        lag = asyncio.create_task(self._lag())
        try:
            sink = await self.download(url)
            self.state = "verifying"
            await self.check(sink)
            self.state = "waiting"
            await asyncio.sleep_ms(20)
            lag.cancel()
            self._log(1, "ota: %s verified, %d bytes; loop lag max %d ms during the download"
                      % (sink.version, sink.total, self.loop_lag_ms_max))
            await self.switch(sink.version)
        except OtaError as e:
            self.state = "failed"
            self.outcome(sink.version if sink else None, RESULT_REJECTED, str(e))
        except OSError as e:
            self.state = "failed"
            self.outcome(sink.version if sink else None, RESULT_FAILED,
                         "download failed: %s" % e)
        finally:
            lag.cancel()

    async def download(self, url):
        import asyncio

        host, port, path = parse_url(url)
        part = self.slots.get_next_update()
        sink = BundleSink(part, self.n, self.target)
        r, w = await asyncio.open_connection(host, port)
        try:
            w.write(b"GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
            await w.drain()
            line = await r.readline()
            parts = line.split()
            if len(parts) < 2 or parts[1] != b"200":
                raise OtaError("HTTP status %s" % (line.strip().decode() or "none"))
            length = -1
            while True:
                h = await r.readline()
                if not h or h == b"\r\n":
                    break
                if h.lower().startswith(b"content-length:"):
                    length = int(h[15:].strip())
            clock = self.gw.clock
            busy = self.gw.flash_busy
            paused = False
            while True:
                # flash writes stall the interpreter (an ESP32 sector erase ~45 ms): none during
                # island backup or a discharge (Gateway.flash_busy, as for config saves); the
                # download pauses meanwhile (TCP holds the sender)
                while busy():
                    if not paused:
                        paused = True
                        self.pauses += 1
                        self._log(1, "ota: download paused: island backup or discharging")
                    await asyncio.sleep_ms(500)
                paused = False
                data = await r.read(_CHUNK)
                if not data:
                    break
                t0 = clock.now_ms()
                sink.feed(data)
                self.progress = sink.total
                self.lag_ms_max = max(self.lag_ms_max, ticks_diff(clock.now_ms(), t0))
            if length >= 0 and sink.total != length:
                raise OtaError("truncated bundle (%d of %d bytes)" % (sink.total, length))
        finally:
            w.close()
        return sink

    async def check(self, sink):
        """Verify the signature with a yield between the 17 multiplications."""
        import asyncio

        digest = sink.complete()
        k = sink.k
        clock = self.gw.clock
        x = None
        it = rsa_steps(bytes(sink.sig), self.n)
        while True:
            t0 = clock.now_ms()
            try:
                x = next(it)
            except StopIteration:
                break
            self.lag_ms_max = max(self.lag_ms_max, ticks_diff(clock.now_ms(), t0))
            await asyncio.sleep_ms(0)
        if x is None or x.to_bytes(k, "big") != expected_em(digest, k):
            raise OtaError("bad signature")

    def safe_to_switch(self):
        """Never while the car backs up an islanded house or discharges: the contact in the
        island position, an island or discharge permit, or the car delivering power."""
        from gateway.ports import CONTACT_ISLAND

        g = self.gw
        p = g.permits
        return not p.island and not p.discharge and g.charger.power_w >= 0 and \
            g.setpoints.ev_w >= 0 and g.board.contact() != CONTACT_ISLAND

    async def switch(self, version):
        """Wait for a safe moment, enter the safe state, wait for the devices to confirm
        the stop, check again, then set the new slot to boot and reset. If the moment
        passes during the stop wait, wait again (the safe state holds meanwhile)."""
        import asyncio

        g = self.gw
        clock = g.clock
        t0 = clock.now_ms()
        said = False
        while True:
            while not self.safe_to_switch():
                if not said:
                    self._log(2, "ota: %s waits: islanded or discharging" % version)
                    said = True
                if ticks_diff(clock.now_ms(), t0) >= self.cfg["switch_wait_s"] * 1000:
                    raise OtaError("no safe moment within %d s" % self.cfg["switch_wait_s"])
                await asyncio.sleep_ms(500)
            self.state = "switching"
            g.safe_state("ota")  # export blocked, setpoints 0, permits withdrawn; safety latches
            b = g.bus
            if b is not None:
                from gateway.modbus.bus import STOP_CONFIRMED

                b.submit_stop(clock.now_ms())
                t1 = clock.now_ms()
                while b.stop_state != STOP_CONFIRMED and self.safe_to_switch():
                    if ticks_diff(clock.now_ms(), t1) >= self.cfg["stop_wait_s"] * 1000:
                        break  # devices silent: their revert timers stop them; still blocked
                    await asyncio.sleep_ms(20)
            if self.safe_to_switch() and not g.permits.export:
                break
            self.state = "waiting"
            self.aborted += 1
            self._log(2, "ota: %s: the safe moment passed during the stop; waiting" % version)
        part = self.slots.get_next_update()
        if self.marker is not None:
            write_marker(self.marker, {"from": self.slots.running().info()[4],
                                       "to": part.info()[4], "version": version})
        part.set_boot()
        self.outcome(version, "switching", "")
        await asyncio.sleep_ms(200)  # let the outcome leave
        if self.reset is not None:
            self.reset()

    def state_record(self):
        return {"state": self.state, "progress": self.progress, "version": self.version,
                "result": self.result, "reason": self.reason,
                "loop_lag_ms_max": self.loop_lag_ms_max}


class HealthGate:
    """After an update: commit only once every check passes for `healthy_s` within
    `commit_s`; otherwise reset so the bootloader runs the old firmware.
    checks: fn() -> None (healthy) or a reason string."""

    def __init__(self, slots, cfg, checks, clock, on_outcome, reset, version, pending,
                 marker=None):
        self.slots = slots
        self.marker = marker
        self.cfg = cfg
        self.checks = checks
        self.clock = clock
        self.on_outcome = on_outcome
        self.reset = reset
        self.version = version
        self.state = "pending" if pending else "committed"
        self.why = None

    async def run(self):
        import asyncio

        if self.state != "pending":
            return
        clock = self.clock
        t0 = clock.now_ms()
        good_since = None
        while True:
            now = clock.now_ms()
            why = self.checks()
            self.why = why
            if why is None:
                if good_since is None:
                    good_since = now
                if ticks_diff(now, good_since) >= self.cfg["healthy_s"] * 1000:
                    self.slots.mark_app_valid_cancel_rollback()
                    remove_marker(self.marker)
                    self.state = "committed"
                    self.on_outcome(self.version, RESULT_COMMITTED, "")
                    return
            else:
                good_since = None
            if ticks_diff(now, t0) >= self.cfg["commit_s"] * 1000:
                self.state = "rolled_back"
                self.on_outcome(self.version, RESULT_ROLLED_BACK, "not healthy within %d s: %s"
                                % (self.cfg["commit_s"], why))
                remove_marker(self.marker)  # said here; the old firmware need not repeat it
                await asyncio.sleep_ms(200)
                self.reset()
                return
            await asyncio.sleep_ms(250)


def gateway_checks(gw):
    """The health checks of a running gateway: safety ticking, the bus devices answering
    as configured, MQTT connected if configured. Returns fn() -> None or a reason."""
    data = gw.config.data
    need_inv = data["inverter"]["kind"] != "none"
    need_bus = bus_configured(gw.board)
    need_mqtt = bool(data["mqtt"]["host"])

    def check():
        now = gw.clock.now_ms()
        beat = gw.sup._beat.get("safety")
        if beat is None or ticks_diff(now, beat) > 1000:
            return "safety not ticking"
        if not need_bus:
            return None
        if gw.bus is None:
            return "no Modbus bus"
        if not gw.charger.online:
            return "charger not answering"
        if need_inv and not gw.inverter.online:
            return "inverter not answering"
        return None

    def check_all():
        why = check()
        if why is None and need_mqtt and (gw.client is None or not gw.client.connected):
            return "MQTT not connected"
        return why

    return check_all


def bus_configured(board):
    """True when the board file gives an RS-485 UART (on the sim board: its device
    variable is set), so the health gate demands the bus devices answer."""
    u = board.spec.get("uarts", {}).get("rs485")
    if not u:
        return False
    if board.spec.get("port") == "sim":
        from gateway.ports.sim import env_value

        return bool(env_value(u.get("device")))
    return True


def open_slots(board):
    """The board's OTA slots and its reset function, or (None, None) when it has none.
    Sim: files in $GATEWAY_OTA_DIR (no variable: no slots, updates refused)."""
    port = board.spec.get("port")
    if port == "esp32":
        from gateway.ports import esp32_ota

        return esp32_ota.Slots(), esp32_ota.reset
    if port == "sim":
        import os

        folder = os.getenv("GATEWAY_OTA_DIR")
        if folder:
            from gateway.ports import sim_ota

            return sim_ota.FileSlots(folder), sim_ota.reset
    return None, None


def read_marker(path):
    try:
        with open(path) as f:
            d = json.load(f)
        return d if isinstance(d, dict) and "to" in d else None
    except (OSError, ValueError):
        return None


def write_marker(path, d):
    import os

    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(d))
    os.rename(path + ".tmp", path)


def remove_marker(path):
    if path is None:
        return
    import os

    try:
        os.remove(path)
    except OSError:
        pass


def boot_state(slots, marker_path):
    """(pending, version, outcome) at boot from the slots and the switch marker:
    pending = this image is on trial; outcome = a (version, result, reason) to publish
    for an update that ended before this boot (rolled back, or committed but the marker
    not yet removed), else None."""
    m = read_marker(marker_path)
    running = slots.running().info()[4]
    p = slots.pending()
    if m is None:
        return bool(p), None, None
    if running == m["to"]:
        if p is None:
            p = True  # ESP32: unknown; the marker says the image has not committed
        if p:
            return True, m["version"], None
        remove_marker(marker_path)
        return False, m["version"], (m["version"], RESULT_COMMITTED, "")
    remove_marker(marker_path)
    return False, m["version"], (m["version"], RESULT_ROLLED_BACK,
                                 "the new firmware did not commit; %s runs again" % running)


def attach(gw, persist=None, publish=None):
    """Wire updates into a gateway: the Updater (gw.ota; started by the console or MQTT
    command) and, after an update, the health gate as a supervised service."""
    import gateway
    from gateway import ota_key

    slots, reset = open_slots(gw.board)
    if slots is None:
        gw.ota = None
        return None
    cfg = gw.config.data["ota"]
    st = gw.board.storage
    marker = (st + "/" if st else "") + "ota.json"
    target = gw.board.spec.get("port")
    up = Updater(gw, slots, ota_key.N, target, cfg, publish, persist, reset, marker)
    gw.ota = up
    pending, _, done = boot_state(slots, marker)
    gate = HealthGate(slots, cfg, gateway_checks(gw), gw.clock, up.outcome, reset,
                      gateway.VERSION, pending, marker)
    up.gate = gate
    if done is not None:
        up.outcome(*done)
    if pending:
        gw.log.warning("ota: running %s on trial: commits after %d s healthy, within %d s" % (
            gateway.VERSION, cfg["healthy_s"], cfg["commit_s"]))
        gw.extra_services.append(("ota-health", gate.run))
    return up
