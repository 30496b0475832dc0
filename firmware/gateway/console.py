# Serial console for installers: status and settings over the REPL UART (ESP32) or
# stdin (unix port), as an asyncio task beside the control loop.
#
# Input is read one character at a time through asyncio.StreamReader(sys.stdin)
# (the way micropython-lib's aiorepl does it), into a bounded line buffer: a
# longer line is discarded with a message. Ctrl-C is never swallowed: on the
# ESP32 the UART driver raises KeyboardInterrupt itself, on a cooked unix
# terminal the kernel sends SIGINT, and a 0x03 that still arrives as data is
# turned into KeyboardInterrupt here. Output is written line by line with a
# yield in between, so a long listing never holds the loop for long (a 115200
# baud UART takes ~7 ms per 80-character line). execute() returns the lines, so
# the commands are tested without a terminal. The commands themselves live in
# gateway/consolecmd.py, imported when the first line arrives: a gateway nobody
# types at never loads them (~12 KB of heap on the unix port, less on the ESP32).
import asyncio
import sys

from micropython import const

MAX_LINE = const(120)


class Console:
    """ctx: the gateway's gateway.model.View (built by gateway.wiring.build()).
    echo: True where the terminal does not echo (the ESP32 UART), False on a
    cooked unix terminal (the kernel echoes and edits the line)."""

    def __init__(self, ctx, echo=False, prompt="> ", max_line=MAX_LINE):
        self.ctx = ctx
        self.echo = echo
        self.prompt = prompt
        self.max_line = max_line
        self.commands = 0
        self.errors = 0
        self._cmds = None  # gateway.consolecmd, imported when the first line arrives

    # ---- input ----
    async def run(self, reader=None, write=None):
        r = reader or asyncio.StreamReader(sys.stdin)
        out = write or self._write
        buf = bytearray(self.max_line)  # the line, UTF-8; allocated once
        n = 0
        over = False
        last = ""
        out(self.prompt)
        while True:
            c = await r.read(1)
            if not c:
                return  # end of input: the console ends, the gateway runs on
            if isinstance(c, (bytes, bytearray)):
                c = chr(c[0])
            if c == "\x03":
                raise KeyboardInterrupt  # Ctrl-C belongs to the REPL
            if c in "\r\n":
                if c == "\n" and last == "\r":
                    last = c
                    continue
                last = c
                if self.echo:
                    out("\r\n")
                if over:
                    lines = ("error: line longer than %d characters, ignored" % self.max_line,)
                    self.errors += 1
                else:
                    try:
                        line = bytes(buf[:n]).decode()
                    except UnicodeError:
                        line = "\x00"  # reported as an unknown command
                    lines = self.execute(line)
                n = 0
                over = False
                for ln in lines:
                    out(ln + "\r\n" if self.echo else ln + "\n")
                    await asyncio.sleep_ms(0)
                out(self.prompt)
                continue
            last = c
            if c in "\x08\x7f":
                while n and buf[n - 1] & 0xC0 == 0x80:  # a whole UTF-8 character
                    n -= 1
                if n:
                    n -= 1
                    if self.echo:
                        out("\b \b")
                continue
            if c < " ":
                continue  # other control characters are ignored
            b = ord(c)
            if b < 0x80 and n < self.max_line:
                buf[n] = b
                n += 1
            elif b >= 0x80 and n + len(c.encode()) <= self.max_line:
                for x in c.encode():
                    buf[n] = x
                    n += 1
            else:
                over = True
                continue
            if self.echo:
                out(c)

    # ---- commands ----
    def execute(self, line):
        """Run one command line; returns the output lines."""
        words = line.split()
        if not words:
            return ()
        self.commands += 1
        if self._cmds is None:
            import gc

            gc.collect()  # one clean heap for the import, not a fragmented one
            from gateway import consolecmd

            self._cmds = consolecmd
        out = self._cmds.run(self, words)
        if out and out[0].startswith("error:"):
            self.errors += 1
        return out

    @staticmethod
    def _write(s):
        sys.stdout.write(s)  # no flush(): on a unix tty it raises EINVAL
