# Boot: board, configuration, the gateway, and the services around it.
#
# Order matters: the board is opened and its interlock de-energised before the
# configuration is even read; a broken board file stops here with a clear
# message; a broken configuration means defaults and a latched fault, never a
# half-applied mix (gateway.config).
# Environment (unix port; on the board the defaults are files on flash):
#   GATEWAY_BOARD       board file (default boards/sim.json on the host, /board.json on flash)
#   GATEWAY_CONFIG      configuration file (default config.json in the board's storage)
#   GATEWAY_DURATION_S  stop cleanly after this many seconds (default: run until stopped)
import gc
import os
import sys

import asyncio
import gateway
from gateway import ports


def _env(name):
    return os.getenv(name) if hasattr(os, "getenv") else None


def schemas():
    """Every configuration section and the module that owns it."""
    from gateway import app, commands, control_cfg, mqtt, plan, safety_cfg, tariff, telemetry
    from gateway import netmgr, ota, persist, sntp
    from gateway.devices import charger, solax, sunspec
    from gateway.modbus import bus

    inverter = {"kind": ("sunspec", ("sunspec", "solax", "none"), None)}
    for sch in (solax.SCHEMA, sunspec.SCHEMA):  # the union; the chosen driver takes its own
        inverter.update(sch)
    return {"app": app.SCHEMA, "safety": safety_cfg.SCHEMA, "control": control_cfg.SCHEMA,
            "bus": bus.SCHEMA, "charger": charger.SCHEMA, "inverter": inverter,
            "mqtt": mqtt.SCHEMA, "telemetry": telemetry.SCHEMA, "commands": commands.SCHEMA,
            "plan": plan.SCHEMA, "tariff": tariff.SCHEMA, "time": sntp.SCHEMA,
            "net": netmgr.SCHEMA, "persist": persist.SCHEMA, "ota": ota.SCHEMA}


def build_bus(gw):
    """The RS-485 bus with the charger and the inverter drivers, or None (no UART)."""
    from gateway.modbus.bus import Bus
    from gateway.modbus.settings import settings

    data = gw.config.data
    try:
        uart = gw.board.uart("rs485")
    except (ports.BoardError, OSError) as e:
        gw.log.error("bus: no RS-485 UART (%s): devices offline, export stays blocked" % e)
        return None
    b = data["bus"]
    if (uart.baud, uart.parity, uart.stop) != (b["baud"], b["parity"], b["stop"]):
        gw.log.warning("bus: board UART %d %s %d differs from bus settings" % (
            uart.baud, uart.parity, uart.stop))
    bus = Bus(uart, b, gw.clock)
    from gateway.devices import charger

    bus.add(charger.RefCharger(settings(charger.SCHEMA, data["charger"], "charger"),
                               gw.charger, gw.setpoints))
    inv = data["inverter"]
    kind = inv["kind"]
    if kind != "none":
        if kind == "solax":
            from gateway.devices import solax as mod
            from gateway.devices.solax import SolaxHybrid as Drv
        else:
            from gateway.devices import sunspec as mod
            from gateway.devices.sunspec import SunSpecInverter as Drv
        own = {k: v for k, v in inv.items() if k in mod.SCHEMA}
        bus.add(Drv(settings(mod.SCHEMA, own, "inverter"), gw.inverter, gw.setpoints))
    return bus


def build_config(board, log, permits=None, path=""):
    """The live Config: code defaults + the JSON file + secrets, validated.

    path "" = the default place (GATEWAY_CONFIG or config.json in storage); None = no
    file at all (defaults only, e.g. tests). Saving waits while export protection is on.
    """
    from gateway import safety_cfg, tz
    from gateway.config import Config

    base = (board.storage + "/") if board.storage else ""
    if path == "":
        path = _env("GATEWAY_CONFIG") or base + "config.json"
    cfg = Config(schemas(), path or "/nonexistent/config.json", base + "secrets.json", log,
                 busy=(lambda: permits.export or permits.discharge) if permits else None,
                 validators={"safety": safety_cfg.validate, "time": tz.validate})
    cfg.load()
    return cfg


def start_services(gw):
    """Telemetry (MQTT), config persistence and the console, as supervised extras."""
    from gateway import control, safety

    data = gw.config.data
    gw.config.listeners.append(gw.apply_settings)
    gw.bus = build_bus(gw)
    if gw.bus is not None:
        gw.extra_services.append(("bus", gw.bus.run))
    if data["mqtt"]["host"]:
        from gateway.telemetry import Telemetry

        tel = Telemetry(gw, default_node=gw.board.name, version=gateway.VERSION,
                        actions={"stop_now": gw.stop_now},
                        names={"safety": safety.STATE_NAMES,
                               "safety_reason": safety.REASON_NAMES,
                               "reason": control.REASON_NAMES})
        gw.client = tel.client
        gw.extra_services.append(("telemetry", tel.run))
    gw.extra_services.append(("config", gw.config.run))
    from gateway import fieldwire

    fieldwire.attach(gw)  # network, time, persistent counters, updates
    if data["app"]["console"] and _env("GATEWAY_CONSOLE") != "0":
        from gateway.console import Console

        con = Console(gw, echo=sys.platform == "esp32")
        gw.extra_services.append(("console", con.run))


def main():
    if sys.platform == "esp32":
        import micropython

        micropython.alloc_emergency_exception_buf(100)
    path = _env("GATEWAY_BOARD") or ("/board.json" if sys.platform == "esp32"
                                     else "boards/sim.json")
    spec = ports.load_spec(path)
    board = ports.open_board(spec)
    board.set_interlock(False)
    from gateway.app import Gateway

    from gateway.log import Log

    log = Log(40, board.clock)  # the config is read before the gateway (and its log) exists
    cfg = build_config(board, log)
    gw = Gateway(board, cfg)
    cfg.log = gw.log
    cfg.busy = lambda: gw.permits.export or gw.permits.discharge
    gw.log.info("gateway %s on board %s (%s), reset cause %s, config from %s" % (
        gateway.VERSION, board.name, spec["port"], board.reset_cause(), cfg.source))
    for _, _, msg in log.entries():  # what the config loader said before the gateway existed
        gw.log.warning(msg)
    board.contact_irq(gw.on_contact)
    gw.log.info("SAFE STATE: interlock de-energised (export blocked), charger 0 W, "
                "inverter export limit 0 W")
    start_services(gw)
    dur = _env("GATEWAY_DURATION_S")
    duration_ms = int(float(dur) * 1000) if dur else None
    gc.collect()
    try:
        asyncio.run(gw.run(duration_ms))
    except KeyboardInterrupt:
        gw.safe_state("ctrl-c")
    finally:
        gw.safe_state("exit")
        board.close()
    gw.log.info("stopped in safe state: interlock %s" % (
        "ON" if board.interlock_on() else "off"))
    return 0
