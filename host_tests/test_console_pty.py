"""The serial console on a pseudo-terminal, typed at like a person would: the firmware
node runs on the MicroPython unix port with the pty as its controlling terminal."""

import os
import pty
import select
import time

from gwhost.telnode import Node


class Terminal:
    def __init__(self):
        self.master, self.slave = pty.openpty()
        self.out = b""

    def read(self, until, timeout=5.0):
        """Read until `until` (bytes) appears after what was read before; returns the new text."""
        start = len(self.out)
        t_end = time.monotonic() + timeout
        while until not in self.out[start:]:
            left = t_end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %r in %r" % (until, self.out[start:]))
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    self.out += os.read(self.master, 4096)
                except OSError:
                    break
        return self.out[start:].decode(errors="replace")

    def type(self, text, delay=0.01):
        for ch in text:
            os.write(self.master, ch.encode())
            time.sleep(delay)

    def command(self, line):
        self.type(line + "\n")
        return self.read(b"\n> ")


def test_console_status_and_clear_errors():
    term = Terminal()
    node = Node(None, {"control": {"mode": "v1g"}}, console=True, stdin=term.slave,
                stdout=term.slave).start()
    os.close(term.slave)
    try:
        term.read(b"> ", 10)
        out = term.command("status")
        assert "grid  " in out and "safety  " in out and "control mode v1g" in out, out
        assert "mqtt    off" in out, out
        out = term.command("meters")
        assert "voltage 230." in out and " Hz" in out, out
        out = term.command("help")
        assert "config set NAME VALUE" in out, out
        out = term.command("frobnicate")
        assert "error: unknown command 'frobnicate'; type 'help' for the list" in out, out
        out = term.command("config set control.soc_reserve_pct 150")
        assert "error: control.soc_reserve_pct: 150 is above the maximum 100" in out, out
        out = term.command("config set control.soc_reserve_pct lots")
        assert "error: control.soc_reserve_pct: expected an integer, got 'lots'" in out, out
        out = term.command("config set control.soc_reserve_pct 45")
        assert "control.soc_reserve_pct = 45 (applied now" in out, out
        out = term.command("config get control.soc_reserve_pct")
        assert "control.soc_reserve_pct = 45" in out, out
        out = term.command("config get mqtt.password")
        assert "mqtt.password = ''" in out, out
        out = term.command("stat\x7f\x7f\x7f\x7fstatus")  # typos, erased with backspace
        assert "safety  " in out and "error:" not in out, out
        out = term.command("x" * 130)
        assert "error: line longer than 120 characters, ignored" in out, out
        out = term.command("config save")
        assert "saved to " in out, out
        with open(os.path.join(node.dir, "config.json")) as f:
            assert '"soc_reserve_pct": 45' in f.read()
        out = term.command("log 3")
        assert "config saved" in out, out
        term.type("\x03")  # Ctrl-C: reaches the REPL as KeyboardInterrupt
        node.proc.wait(5)
        time.sleep(0.2)
        assert any("KeyboardInterrupt" in ln for ln in node.err_lines), node.err_lines[-5:]
    finally:
        node.kill()
        os.close(term.master)
