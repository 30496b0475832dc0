"""Install MicroPython-only packages that pip refuses, pinned by sha256.

Some MicroPython packages on the package index (for example
micropython-unittest) are bare source archives without setup.py or
pyproject.toml: `pip install` and `pip download` both reject them. This
installer reads the index that pip is configured with (PIP_INDEX_URL, pip's
config files, else pip's own default), finds the pinned archive through the
PEP 503/691 simple API, checks its sha256 against tools/mpy-packages.lock and
unpacks only the named modules into .mpy-packages/ (git-ignored).

No index host name is written here: the address always comes from pip.
Usage: python tools/install_mpy_packages.py [--lock FILE] [--dest DIR]
"""

import argparse
import hashlib
import html.parser
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class InstallError(Exception):
    pass


def pip_index_url():
    """The index pip would use: environment, then pip config, then pip's default."""
    url = os.environ.get("PIP_INDEX_URL")
    if url:
        return url
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout
    except OSError:
        out = ""
    found = None
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            found = value.strip().strip("'\"")
    if found:
        return found
    from pip._internal.models.index import PyPI  # pip's built-in default index

    return PyPI.simple_url


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def list_files(index, name):
    """[(filename, url, sha256 or None)] for a project on a simple index."""
    page = index.rstrip("/") + "/" + name + "/"
    req = urllib.request.Request(
        page, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.5"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            ctype = r.headers.get("Content-Type", "") if hasattr(r, "headers") else ""
    except OSError as e:
        raise InstallError("cannot read the index page for %s: %s" % (name, e)) from e
    files = []
    if "json" in ctype:
        for f in json.loads(body)["files"]:
            files.append((f["filename"], urllib.parse.urljoin(page, f["url"]),
                          f.get("hashes", {}).get("sha256")))
        return files
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    for href in parser.links:
        url, _, frag = href.partition("#")
        sha = frag[len("sha256="):] if frag.startswith("sha256=") else None
        files.append((os.path.basename(urllib.parse.urlparse(url).path),
                      urllib.parse.urljoin(page, url), sha))
    return files


def read_lock(path):
    pins = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 4 or len(parts[2]) != 64:
                raise InstallError("%s:%d: expected 'name version sha256 modules'" % (path, n))
            pins.append((parts[0], parts[1], parts[2].lower(), parts[3].split(",")))
    return pins


def extract(data, filename, modules, dest):
    """Copy the named modules (files or packages) out of an sdist archive."""
    if filename.endswith(".zip"):
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = dict.fromkeys(zf.namelist(), zf.read)
    else:
        tf = tarfile.open(fileobj=io.BytesIO(data))
        members = {m.name: (lambda n, _m=m: tf.extractfile(_m).read())
                   for m in tf.getmembers() if m.isfile()}
    wanted = 0
    for name, read in members.items():
        rel = name.split("/", 1)[1] if "/" in name else name
        top = rel.split("/", 1)[0]
        if top in modules or rel in modules:
            out = os.path.normpath(os.path.join(dest, rel))
            if not out.startswith(os.path.abspath(dest) + os.sep):
                raise InstallError("unsafe path in archive: %s" % name)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(read(name))
            wanted += 1
    if not wanted:
        raise InstallError("none of %s found in %s" % (modules, filename))


def install(lock, dest):
    index = pip_index_url()
    os.makedirs(dest, exist_ok=True)
    for name, version, sha, modules in read_lock(lock):
        stamp = os.path.join(dest, ".%s-%s.sha256" % (name, version))
        if os.path.exists(stamp) and open(stamp).read().strip() == sha:
            continue
        wanted = ["%s-%s.tar.gz" % (name, version), "%s-%s.zip" % (name, version)]
        match = [f for f in list_files(index, name) if f[0] in wanted]
        if not match:
            raise InstallError("%s %s is not on the configured index" % (name, version))
        filename, url, _ = match[0]
        print("fetching %s %s" % (name, version))
        with urllib.request.urlopen(url, timeout=120) as r:
            data = r.read()
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise InstallError("%s: sha256 %s does not match the lock (%s)" % (filename, got, sha))
        extract(data, filename, modules, dest)
        with open(stamp, "w") as f:
            f.write(sha + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", default=os.path.join(ROOT, "tools", "mpy-packages.lock"))
    ap.add_argument("--dest", default=os.path.join(ROOT, ".mpy-packages"))
    args = ap.parse_args(argv)
    try:
        install(args.lock, args.dest)
    except InstallError as e:
        print("install_mpy_packages: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
