"""A real NTP server for tests: Debian's chronyd in the foreground on a loopback port.

`chronyd -d -x` never touches the system clock (-x); `local stratum 1` makes it serve
the host clock without upstream servers; `cmdport 0` opens no control socket; the
port is a free ephemeral one. The served time is therefore the host clock, which the
tests read as the reference.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time


class NtpServerError(RuntimeError):
    pass


def chronyd_path():
    for p in (shutil.which("chronyd"), "/usr/sbin/chronyd"):
        if p and os.path.exists(p):
            return p
    raise NtpServerError("chronyd not found: run `make setup` (installs Debian's chrony)")


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def query(port, timeout=1.0):
    """One plain client request (for readiness): True when a server reply came back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        p = bytearray(48)
        p[0] = 0x23
        s.sendto(p, ("127.0.0.1", port))
        return len(s.recv(48)) == 48
    except OSError:
        return False
    finally:
        s.close()


class Chrony:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gw-ntp-")
        self.port = None
        self.proc = None

    def start(self):
        exe = chronyd_path()
        for _ in range(5):
            self.port = _free_udp_port()
            conf = os.path.join(self.dir, "chrony.conf")
            with open(conf, "w") as f:
                f.write("port %d\nbindaddress 127.0.0.1\nlocal stratum 1\nallow 127.0.0.1\n"
                        "cmdport 0\npidfile %s\ndriftfile %s\n" % (
                            self.port, os.path.join(self.dir, "chronyd.pid"),
                            os.path.join(self.dir, "drift")))
            log = open(os.path.join(self.dir, "chronyd.log"), "w")
            args = [exe, "-d", "-x", "-f", conf]
            if os.geteuid() == 0:
                args += ["-u", "root"]  # no privilege drop: its files are in our temp dir
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if query(self.port, 0.2):
                    return self
                time.sleep(0.05)
            self.stop()
        raise NtpServerError("chronyd did not start; see %s" % os.path.join(self.dir, "chronyd.log"))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
