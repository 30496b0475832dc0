# The simulated front end outside the heap lock, for the metering allocation proofs on a
# 32-bit runtime (test_metering.firmware_only). A module of its own: the 64-bit tier never
# loads it, and its 110 KB heap holds the test's bytecode.
import micropython


class HostSide:
    """The simulated front end run outside the heap lock, on a 32-bit runtime only.

    There its ns arithmetic and the plain synth kernel make long ints: host simulator
    garbage (a board's front end is gateway.ports.esp32_analog). What stays under the
    lock is the firmware: metering.service.window and the engine.
    """

    def __init__(self, fe):
        self.fe = fe
        self.t0_us = fe.t0_us
        self.dt_ns = fe.dt_ns
        self.skew_ns = fe.skew_ns

    def now_us(self):
        micropython.heap_unlock()
        t = self.fe.now_us()
        micropython.heap_lock()
        return t

    def idle_us(self, us):
        micropython.heap_unlock()
        self.fe.idle_us(us)
        micropython.heap_lock()

    def capture(self, bufs, n, period_us):
        fe = self.fe
        micropython.heap_unlock()
        n = fe.capture(bufs, n, period_us)
        micropython.heap_lock()
        self.t0_us = fe.t0_us
        self.dt_ns = fe.dt_ns
        self.skew_ns = fe.skew_ns
        return n
