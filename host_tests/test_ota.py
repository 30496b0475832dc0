"""Signed bundles: made by tools/sign-firmware (cryptography), checked by the firmware's
gateway/ota.py (here on CPython; the unix-port end-to-end cases are in test_ota_device.py)."""

import pytest

from gateway import ota
from gwhost import otatool


class MemPart:
    def __init__(self, blocks=64):
        self.blocks = blocks
        self.data = {}
        self.booted = False

    def ioctl(self, op, arg):
        return self.blocks if op == 4 else 0

    def writeblocks(self, b, buf):
        self.data[b] = bytes(buf)

    def image(self, size):
        return b"".join(self.data[i] for i in sorted(self.data))[:size]


@pytest.fixture(scope="module")
def keys():
    return otatool.new_key(), otatool.new_key()


def feed_all(bundle, n, part=None, target="sim", chunk=1000):
    part = part or MemPart()
    s = ota.BundleSink(part, n, target)
    for i in range(0, len(bundle), chunk):
        s.feed(bundle[i:i + chunk])
    ota.verify(s.complete(), bytes(s.sig), n)
    return s, part


def reason(bundle, n, **kw):
    with pytest.raises(ota.OtaError) as e:
        feed_all(bundle, n, **kw)
    return str(e.value)


def test_good_bundle_lands_in_the_slot_intact(keys):
    key, _ = keys
    img = bytes(range(256)) * 50 + b"tail"
    b = otatool.make_bundle(img, key, "1.2.3", "sim")
    s, part = feed_all(b, otatool.modulus(key), chunk=777)
    assert s.version == "1.2.3"
    assert part.image(len(img)) == img


def test_every_tampering_is_refused_with_a_reason(keys):
    key, other = keys
    n = otatool.modulus(key)
    img = b"\x55" * 10000
    good = otatool.make_bundle(img, key, "2.0", "sim")
    assert "another key" in reason(otatool.make_bundle(img, other, "2.0", "sim"), n)
    # signed by another key but claiming ours in the header: the signature fails
    forged = otatool.make_bundle(img, other, "2.0", "sim", key_for_id=key)
    assert "bad signature" in reason(forged, n)
    for pos in (len(good) - 1, len(good) - 200, 40, len(good) // 2):  # signature, payload
        bad = bytearray(good)
        bad[pos] ^= 0x01
        assert reason(bytes(bad), n)
    assert "truncated" in reason(good[:-1], n)
    assert "truncated" in reason(good[:5000], n)
    assert "trailing" in reason(good + b"x", n)
    assert "magic" in reason(b"XXXXXX" + good[6:], n)
    assert "target" in reason(otatool.make_bundle(img, key, "2.0", "esp32"), n)
    assert "does not fit" in reason(otatool.make_bundle(b"x" * 70000, key, "2.0", "sim"), n,
                                    part=MemPart(blocks=16))
    with pytest.raises(ota.OtaError, match="no update key"):
        ota.BundleSink(MemPart(), None, "sim")


def test_signature_math_matches_the_library(keys):
    key, _ = keys
    import hashlib

    n = otatool.modulus(key)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = key.sign(b"hello", padding.PKCS1v15(), hashes.SHA256())
    ota.verify(hashlib.sha256(b"hello").digest(), sig, n)
    with pytest.raises(ota.OtaError):
        ota.verify(hashlib.sha256(b"hellO").digest(), sig, n)
    assert ota.key_id(n) == otatool.key_id(n)


def test_url_parsing():
    assert ota.parse_url("http://10.0.0.5:8080/fw/b.bin") == ("10.0.0.5", 8080, "/fw/b.bin")
    assert ota.parse_url("http://host/x") == ("host", 80, "/x")
    for bad in ("https://h/x", "ftp://h", "http://", "http://h:port/x", 5):
        with pytest.raises(ota.OtaError):
            ota.parse_url(bad)


def test_sign_tool_refuses_bad_input(tmp_path, capsys):
    assert otatool.main(["sign", "--target", "sim", "--version", "1", "--image",
                         str(tmp_path / "none"), "--out", str(tmp_path / "b"), "--key",
                         str(tmp_path / "k.pem")]) == 2
    assert "no signing key" in capsys.readouterr().err
    key_path = tmp_path / "k.pem"
    mod = tmp_path / "ota_key.py"
    assert otatool.main(["keygen", "--key", str(key_path), "--firmware-key", str(mod),
                         "--bits", "2048"]) == 0
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert "N = 0x" in mod.read_text()
    assert otatool.main(["keygen", "--key", str(key_path), "--firmware-key", str(mod)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    (tmp_path / "img").write_bytes(b"")
    assert otatool.main(["sign", "--target", "sim", "--version", "1", "--image",
                         str(tmp_path / "img"), "--out", str(tmp_path / "b"), "--key",
                         str(key_path)]) == 2
    assert otatool.main(["image", "--version", "bad version!", "--out",
                         str(tmp_path / "i")]) == 2


def test_download_pauses_while_a_flash_write_must_wait(keys):
    """No flash writes while the car discharges: the download waits, then completes."""
    import asyncio
    import http.server
    import threading

    from gateway.clock import Clock
    from gateway.log import Log
    from gateway.model import Permits

    key, _ = keys
    body = otatool.make_bundle(b"\x11" * 20000, key, "3.0", "sim")

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    class Gw:
        clock = Clock()
        permits = Permits()
        log = Log(10, clock)
        discharging = True

        def flash_busy(self):
            return self.discharging

    class Slots:
        part = MemPart()

        def get_next_update(self):
            return self.part

    gw = Gw()
    up = ota.Updater(gw, Slots(), otatool.modulus(key), "sim", {})

    async def go():
        t = asyncio.create_task(up.download("http://127.0.0.1:%d/b" % srv.server_address[1]))
        await asyncio.sleep(1.0)
        during = (up.progress, Slots.part.data.copy())
        gw.discharging = False
        sink = await asyncio.wait_for(t, 10)
        return during, sink

    try:
        (progress, written), sink = asyncio.run(go())
    finally:
        srv.shutdown()
        srv.server_close()
    assert progress == 0 and written == {} and up.pauses == 1
    assert sink.total == len(body) and sink.version == "3.0"
