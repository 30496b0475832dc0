# mpytest: heap=512k
# (the whole app's bytecode is loaded into the heap on the unix port; a board runs it frozen)
# The gateway boots into the safe state and any exception inside a service
# brings it back there (interlock de-energised, setpoints 0).
import unittest

import asyncio
from gateway.ports.sim import SimBoard
from gateway.wiring import build


def _board():
    return SimBoard({"name": "test", "port": "sim"})


class SafeState(unittest.TestCase):
    def setUp(self):
        import gc

        gc.collect()
    def test_boot_is_safe(self):
        b = _board()
        b.set_interlock(True)  # whatever the pin did before boot
        gw = build(b, out=lambda s: None, console=False)
        self.assertFalse(b.interlock_on())
        self.assertFalse(gw.permits.export)
        self.assertEqual(gw.setpoints.ev_w, 0)

    def test_exception_in_service_lands_in_safe_state(self):
        b = _board()
        lines = []
        gw = build(b, out=lines.append, console=False)
        seen = []

        async def rogue():
            # Pretend the gateway was exporting, then fail.
            b.set_interlock(True)
            gw.setpoints.ev_w = -3000
            gw.permits.discharge = True
            seen.append(True)
            await asyncio.sleep_ms(20)
            raise ValueError("bad register value")

        gw.extra_services.append(("rogue", rogue))
        asyncio.run(gw.run(300))
        self.assertTrue(seen, "the rogue service never ran")
        from gateway.safety import STATE_FAULT

        self.assertEqual(gw.safety.state, STATE_FAULT)
        self.assertFalse(b.interlock_on())
        self.assertEqual(gw.setpoints.ev_w, 0)
        self.assertFalse(gw.permits.discharge)
        self.assertTrue(gw.sup.failures.get("rogue", 0) >= 1)
        self.assertTrue(any("ValueError" in ln for ln in lines), "failure not logged")

    def test_stop_zeroes_every_setpoint(self):
        # Issue 15 item 4: the stop left the home battery discharging
        gw = build(_board(), out=lambda s: None, console=False)
        sp = gw.setpoints
        sp.ev_w = -3000
        sp.batt_w = -3970
        sp.export_limit_w = 30000
        gw.request_stop(1)
        self.assertEqual((sp.ev_w, sp.batt_w, sp.export_limit_w), (0, 0, 0))

    def test_contact_edge_blocks_at_once(self):
        b = _board()
        gw = build(b, out=lambda s: None, console=False)
        b.contact_irq(gw.on_contact)
        b.set_interlock(True)
        gw.permits.export = True
        b._set_contact(1)  # the transfer switch moves: the IRQ path runs
        self.assertFalse(b.interlock_on())
        self.assertFalse(gw.permits.export)
