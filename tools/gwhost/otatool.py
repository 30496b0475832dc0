"""Signed firmware bundles for gateway/ota.py (tools/sign-firmware).

  tools/sign-firmware keygen [--key PATH] [--firmware-key FILE]
      A new RSA-3072 signing key. The private key goes to PATH (default
      keys/ota-signing.pem, git-ignored, mode 0600; never committed); the public modulus
      is written into FILE (default firmware/gateway/ota_key.py), which the firmware trusts.
  tools/sign-firmware image --target sim --version V --out FILE [--firmware DIR]
      The unix-port image: the firmware tree (gateway/ + main.py) as an archive that
      tools/mpyfield/simboot.py unpacks; gateway.VERSION is set to V.
  tools/sign-firmware sign --target esp32|sim --version V --image FILE --out BUNDLE [--key PATH]
      The bundle: b"GWOTA1", u16 header length, header JSON, the image, then an RSASSA-PKCS1
      v1.5 SHA-256 signature over all of it. For the ESP32 the image is the app binary of a
      MicroPython build with the firmware frozen in (the ota_0/ota_1 app format).
Exit status 2 with a message naming the problem on bad input.
"""

import argparse
import hashlib
import json
import os
import re
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gwhost import paths

MAGIC = b"GWOTA1"
IMG_MAGIC = b"GWIMG1"
DEFAULT_KEY = os.path.join(paths.ROOT, "keys", "ota-signing.pem")
KEY_MODULE = os.path.join(paths.FIRMWARE, "gateway", "ota_key.py")


class ToolError(Exception):
    pass


def new_key(bits=3072):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def save_key(key, path):
    if os.path.exists(path):
        raise ToolError("%s exists: refusing to overwrite a signing key" % path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_key(path):
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    except FileNotFoundError:
        raise ToolError("no signing key at %s (tools/sign-firmware keygen makes one)" % path)
    except ValueError as e:
        raise ToolError("%s: not a PEM private key (%s)" % (path, e))
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_numbers().e != 65537:
        raise ToolError("%s: an RSA key with e = 65537 is needed" % path)
    return key


def modulus(key):
    return key.public_key().public_numbers().n


def key_module_text(n):
    return ("# The public RSA modulus this firmware trusts for updates (gateway/ota.py), or None:\n"
            "# then every update is refused. Written by `tools/sign-firmware keygen`, which keeps\n"
            "# the private key outside the repository. A public key is no secret.\n"
            "N = 0x%x\n" % n)


def key_id(n):
    k = (n.bit_length() + 7) // 8
    return hashlib.sha256(n.to_bytes(k, "big")).hexdigest()[:16]


def build_image(version, firmware=paths.FIRMWARE, replace=None, compiled=False):
    """The sim image: every .py under firmware/ (gateway/, main.py); `replace` maps a
    relative .py path to new content (the bench uses it for broken builds). compiled=True
    ships .mpy files (build/mpy-x64, as deployed) instead of sources, except the files
    replaced or versioned, which stay .py."""
    files = {}
    if compiled:
        from gwhost.mpyhost import compiled_firmware

        firmware = compiled_firmware()
    for root, dirs, names in os.walk(firmware):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for n in sorted(names):
            if n.endswith(".py") or (compiled and n.endswith(".mpy")):
                p = os.path.join(root, n)
                rel = os.path.relpath(p, firmware).replace(os.sep, "/")
                with open(p, "rb") as f:
                    files[rel] = f.read()
    init_py = os.path.join(paths.FIRMWARE, "gateway", "__init__.py")
    with open(init_py) as f:
        init = f.read()
    files.pop("gateway/__init__.mpy", None)
    files["gateway/__init__.py"] = re.sub(r'VERSION = "[^"]*"', 'VERSION = "%s"' % version,
                                          init).encode()
    for k, v in (replace or {}).items():
        files.pop(k[:-3] + ".mpy", None)  # the replacement must be what gets imported
        files[k] = v.encode() if isinstance(v, str) else v
    out = bytearray(IMG_MAGIC)
    for name, data in files.items():
        nb = name.encode()
        out += len(nb).to_bytes(2, "big") + nb + len(data).to_bytes(4, "big") + data
    out += b"\x00\x00"
    return bytes(out)


def make_bundle(image, key, version, target, key_for_id=None):
    """key_for_id: name another key in the header (the bench's "wrong key" cases)."""
    hdr = json.dumps({"version": version, "target": target, "size": len(image),
                      "key_id": key_id(modulus(key_for_id or key))},
                     separators=(",", ":")).encode()
    body = MAGIC + len(hdr).to_bytes(2, "big") + hdr + image
    sig = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return body + sig


def main(argv=None):
    ap = argparse.ArgumentParser(prog="sign-firmware", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--key", default=DEFAULT_KEY)
    k.add_argument("--firmware-key", default=KEY_MODULE)
    k.add_argument("--bits", type=int, default=3072, choices=(2048, 3072, 4096))
    i = sub.add_parser("image")
    i.add_argument("--target", default="sim", choices=("sim",))
    i.add_argument("--version", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--firmware", default=paths.FIRMWARE)
    s = sub.add_parser("sign")
    s.add_argument("--target", required=True, choices=("sim", "esp32"))
    s.add_argument("--version", required=True)
    s.add_argument("--image", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--key", default=DEFAULT_KEY)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "keygen":
            key = new_key(a.bits)
            save_key(key, a.key)
            with open(a.firmware_key, "w") as f:
                f.write(key_module_text(modulus(key)))
            print("signing key: %s (keep it off the repository and backed up)" % a.key)
            print("public key: %s (key id %s): build and flash it once by cable" % (
                a.firmware_key, key_id(modulus(key))))
        elif a.cmd == "image":
            if not re.fullmatch(r"[0-9A-Za-z.+_-]{1,32}", a.version):
                raise ToolError("version %r: 1-32 letters, digits or .+_-" % a.version)
            img = build_image(a.version, a.firmware)
            with open(a.out, "wb") as f:
                f.write(img)
            print("image %s: %d bytes, version %s" % (a.out, len(img), a.version))
        else:
            if not re.fullmatch(r"[0-9A-Za-z.+_-]{1,32}", a.version):
                raise ToolError("version %r: 1-32 letters, digits or .+_-" % a.version)
            key = load_key(a.key)
            try:
                with open(a.image, "rb") as f:
                    img = f.read()
            except OSError as e:
                raise ToolError("cannot read image %s: %s" % (a.image, e))
            if not img:
                raise ToolError("image %s is empty" % a.image)
            b = make_bundle(img, key, a.version, a.target)
            with open(a.out, "wb") as f:
                f.write(b)
            print("bundle %s: %d bytes, version %s, target %s, key id %s" % (
                a.out, len(b), a.version, a.target, key_id(modulus(key))))
    except ToolError as e:
        print("sign-firmware: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
