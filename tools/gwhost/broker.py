"""An MQTT broker on a free loopback port, for tests, benchmarks and the live simulator.

mosquitto when it is installed (a generated config: one listener on 127.0.0.1,
anonymous clients allowed there only, no persistence), otherwise the embedded
pure-Python amqtt broker in a child process. Never port 1883.

    with Broker() as b:          # or Broker(kind="amqtt")
        connect_to(b.host, b.port)
        b.stop(); ...; b.start()  # an outage, same port

Command line (runs until Ctrl-C): tools/_py gwhost.broker [--port N] [--kind amqtt]
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port(host=HOST):
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mosquitto_path():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and os.access(p, os.X_OK):
            return p
    return None


class BrokerError(RuntimeError):
    pass


def make_certs(folder, host, dns=("localhost",), ip=True):
    """A throw-away CA and a server certificate for `host`, as PEM files: the
    certificate names the DNS names `dns` and, with `ip`, the IP address `host`."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    days = dt.timedelta(days=2)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("gateway test CA"))
          .issuer_name(name("gateway test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - days)
          .not_valid_after(now + days)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(d) for d in dns]
    if ip:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    san = x509.SubjectAlternativeName(names)
    cn = host if ip or not dns else dns[0]
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - days).not_valid_after(now + days)
            .add_extension(san, critical=False).sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(folder, n) for n in ("ca.pem", "server.pem", "server.key")]
    pem = serialization.Encoding.PEM
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return paths


class Broker:
    """A broker process. kind: "mosquitto", "amqtt" or None (mosquitto if installed)."""

    def __init__(self, port=None, kind=None, host=HOST, tls=False, cert_dns=("localhost",),
                 cert_ip=True, users=None, acl=None):
        """users: {name: password} -> allow_anonymous false + a password file;
        acl: the text of a mosquitto acl_file (mosquitto only)."""
        if kind is None:
            kind = "mosquitto" if mosquitto_path() else "amqtt"
        if kind not in ("mosquitto", "amqtt"):
            raise BrokerError("broker kind must be 'mosquitto' or 'amqtt', not %r" % kind)
        if kind == "mosquitto" and not mosquitto_path():
            raise BrokerError("mosquitto is not installed")
        self.kind = kind
        self.host = host
        self.port = port or free_port(host)
        self._dir = tempfile.mkdtemp(prefix="gw-broker-")
        self.log_path = os.path.join(self._dir, "broker.log")
        self.proc = None
        self.starts = 0
        self.tls = tls
        self.ca_path = None  # with tls: the CA certificate clients verify the broker with
        if tls:
            if kind != "mosquitto":
                raise BrokerError("TLS is set up for mosquitto only")
            self.ca_path, self._cert, self._key = make_certs(self._dir, host, cert_dns, cert_ip)
            # mosquitto started as root drops to its own user: let it read the files
            os.chmod(self._dir, 0o755)
            for p in (self.ca_path, self._cert, self._key):
                os.chmod(p, 0o644)
        self.users, self.acl = users, acl
        if (users or acl) and kind != "mosquitto":
            raise BrokerError("users and ACLs are set up for mosquitto only")
        if users:
            pw = os.path.join(self._dir, "passwd")
            with open(pw, "w") as f:  # plain "user:password" lines, hashed in place below
                f.write("".join("%s:%s\n" % kv for kv in users.items()))
            exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            subprocess.run([exe, "-U", pw], check=True, capture_output=True)
        if acl is not None:
            with open(os.path.join(self._dir, "acl"), "w") as f:
                f.write(acl)
        if users or acl:
            os.chmod(self._dir, 0o755)
            for n in ("passwd", "acl"):
                p = os.path.join(self._dir, n)
                if os.path.exists(p):
                    os.chmod(p, 0o644)

    # the address other code connects to
    @property
    def address(self):
        return self.host, self.port

    def _command(self):
        if self.kind == "mosquitto":
            conf = os.path.join(self._dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener %d %s\nallow_anonymous %s\npersistence false\n"
                        "set_tcp_nodelay true\n"
                        "log_dest stderr\nlog_type error\nlog_type warning\n"
                        "log_type notice\n" % (self.port, self.host,
                                                "false" if self.users else "true"))
                if self.users:
                    f.write("password_file %s\n" % os.path.join(self._dir, "passwd"))
                if self.acl is not None:
                    f.write("acl_file %s\n" % os.path.join(self._dir, "acl"))
                if self.tls:
                    f.write("cafile %s\ncertfile %s\nkeyfile %s\n" % (
                        self.ca_path, self._cert, self._key))
            return [mosquitto_path(), "-c", conf]
        conf = os.path.join(self._dir, "amqtt.yaml")
        with open(conf, "w") as f:
            f.write("listeners:\n  default:\n    type: tcp\n    bind: %s:%d\n"
                    "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                    "    allow_anonymous: true\n" % (self.host, self.port))
        exe = os.path.join(os.path.dirname(sys.executable), "amqtt")
        return [exe, "-c", conf]

    def start(self, timeout_s=10.0):
        if self.running():
            return self
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.starts += 1
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise BrokerError("%s exited with %d: %s" % (self.kind, self.proc.returncode,
                                                             self.log_tail()))
            try:
                with socket.create_connection(self.address, timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError("%s did not listen on %s:%d within %.0f s" % (
            self.kind, self.host, self.port, timeout_s))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=5.0):
        """Stop the broker (SIGTERM, then SIGKILL); the port stays ours for start()."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout_s)

    def kill(self):
        """Stop without a goodbye to anyone (SIGKILL)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def close(self):
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Broker(%s on %s:%d)" % (self.kind, self.host, self.port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="MQTT broker on a free loopback port")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--kind", choices=("mosquitto", "amqtt"), default=None)
    args = ap.parse_args(argv)
    with Broker(args.port, args.kind) as b:
        print("%s listening on %s:%d (Ctrl-C stops it)" % (b.kind, b.host, b.port), flush=True)
        try:
            while b.running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
