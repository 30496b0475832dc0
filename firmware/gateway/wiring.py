# Boot: board, configuration, the gateway, and the services around it.
#
# build() is the one place a gateway is assembled (main(), the simulator and the
# tests all use it; docs/architecture.md). Order matters: the board is opened and
# its interlock de-energised before the configuration is even read; a broken
# board file stops here with a clear message; a broken configuration means
# defaults and a latched fault, never a half-applied mix (gateway.config); a
# missing or mismatched RS-485 UART means no bus (export stays blocked), never an
# aborted boot.
# Environment (unix port; on the board the defaults are files on flash):
#   GATEWAY_BOARD       board file (default boards/sim.json on the host, /board.json on flash)
#   GATEWAY_CONFIG      configuration file (default config.json in the board's storage)
#   GATEWAY_DURATION_S  stop cleanly after this many seconds (default: run until stopped)
#   GATEWAY_CONSOLE     "0": no serial console (e.g. when stdin is not a terminal)
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
    from gateway.devices import charger, solax, sunspec
    from gateway.modbus import bus

    inverter = {"kind": ("sunspec", ("sunspec", "solax", "none"), None)}
    for sch in (solax.SCHEMA, sunspec.SCHEMA):  # the union; the chosen driver takes its own
        inverter.update(sch)
    return {"app": app.SCHEMA, "safety": safety_cfg.SCHEMA, "control": control_cfg.SCHEMA,
            "bus": bus.SCHEMA, "charger": charger.SCHEMA, "inverter": inverter,
            "mqtt": mqtt.SCHEMA, "telemetry": telemetry.SCHEMA, "commands": commands.SCHEMA,
            "plan": plan.SCHEMA, "tariff": tariff.SCHEMA}


def live_keys():
    """{section: keys applied while running}; every other key applies at the next start."""
    from gateway import commands, control_cfg, plan_cfg, safety_cfg, telemetry

    return {"safety": safety_cfg.LIVE, "control": control_cfg.LIVE, "plan": plan_cfg.LIVE,
            "telemetry": telemetry.LIVE, "commands": commands.LIVE}


def rules():
    """{section: rule(d)}: the rules across keys, beside their sections."""
    from gateway import control_cfg, safety_cfg

    return {"safety": safety_cfg.rule, "control": control_cfg.rule}


def build_bus(gw):
    """The RS-485 bus with the charger and the inverter drivers, or None with the reason
    in gw.view.bus_error (no UART, or its settings differ from the config section `bus`):
    the devices stay offline and export stays blocked, the rest of the gateway runs."""
    from gateway.modbus.bus import Bus
    from gateway.modbus.settings import settings

    data = gw.config.data
    try:
        uart = gw.board.uart("rs485")
    except (ports.BoardError, OSError) as e:
        return _no_bus(gw, "no RS-485 UART (%s)" % e)
    b = data["bus"]
    if (uart.baud, uart.parity, uart.stop) != (b["baud"], b["parity"], b["stop"]):
        return _no_bus(gw, "board UART rs485 is %d %s %d but config section bus says "
                       "baud %d, parity %s, stop %d: make them agree" % (
                           uart.baud, uart.parity, uart.stop, b["baud"], b["parity"],
                           b["stop"]))
    try:
        return _bus_with_devices(gw, Bus(uart, b, gw.clock), settings)
    except ValueError as e:  # the sections' ConfigErrors: already validated, but never abort
        return _no_bus(gw, str(e))


def _bus_with_devices(gw, bus, settings):
    from gateway.devices import charger

    data = gw.config.data
    bus.add(charger.RefCharger(settings(charger.SCHEMA, data["charger"], "charger"),
                               gw.charger, gw.setpoints))
    inv = data["inverter"]
    kind = inv["kind"]
    if kind != "none":
        if kind == "solax":
            from gateway.devices import solax as mod

            Drv = mod.SolaxHybrid
        else:
            from gateway.devices import sunspec as mod

            Drv = mod.SunSpecInverter
        own = {k: v for k, v in inv.items() if k in mod.SCHEMA}
        bus.add(Drv(settings(mod.SCHEMA, own, "inverter"), gw.inverter, gw.setpoints))
    return bus


def _no_bus(gw, why):
    gw.view.bus_error = why
    gw.log.error("bus: %s; devices offline, export stays blocked" % why)


def build_config(board, log, path=""):
    """The live Config: code defaults + the JSON file + secrets, validated.

    path "" = the default place (GATEWAY_CONFIG or config.json in storage); None = no
    file at all (defaults only, e.g. tests). The Gateway makes saving wait for a moment
    a flash write may stall (Gateway.flash_busy).
    """
    from gateway.config import Config

    base = (board.storage + "/") if board.storage else ""
    if path == "":
        path = _env("GATEWAY_CONFIG") or base + "config.json"
    sec = base + "secrets.json" if path else "/nonexistent/secrets.json"
    cfg = Config(schemas(), path or "/nonexistent/config.json", sec, log,
                 rules=rules(), strict=("safety",), live=live_keys())
    cfg.load()
    return cfg


def build(board, config=None, out=print, client=None, console=None):
    """The whole gateway from an open board and a configuration: the records, safety,
    control and the planner (gateway.app.Gateway), the RS-485 bus with its drivers,
    telemetry and the console, and the services that run them. main(), the simulator
    and the tests all build the gateway here, so what is tested is what boots.

    config: a gateway.config.Config, or a path ("" = the default place, see
    build_config; None = no file, code defaults only).
    client: an MQTT client to use instead of the real one (tests; telemetry is built
    when one is given or mqtt.host is set). console: True / False, or None = the
    `app.console` setting (and GATEWAY_CONSOLE != "0").
    Returns the Gateway with .view (the console's and telemetry's context), .bus,
    .telemetry and .console set (the last three may be None).
    """
    from gateway import control, safety
    from gateway.app import Gateway
    from gateway.log import Log
    from gateway.model import View

    if config is None or isinstance(config, str):
        pre = Log(40, board.clock)  # the config is read before the gateway (and its log)
        config = build_config(board, pre, path=config)
    else:
        pre = config.log
    gw = Gateway(board, config, out)
    config.log = gw.log  # (Gateway set config.busy: its flash_busy)
    gw.log.info("gateway %s on board %s (%s), reset cause %s, config from %s" % (
        gateway.VERSION, board.name, board.spec.get("port"), board.reset_cause(),
        config.source))
    if pre is not None and pre is not gw.log:
        for _, _, msg in pre.entries():  # what the config loader said before the gateway
            gw.log.warning(msg)
    data = config.data
    # the one context the console and telemetry read (gateway.model.View)
    v = gw.view = View(gw.clock, gw.log, config, gw.meter, gw.charger, gw.inverter,
                       gw.permits, gw.setpoints, gw.counters, gw.lag)
    v.state_names = safety.STATE_NAMES
    v.safety_reasons = safety.REASON_NAMES
    v.control_reasons = control.REASON_NAMES
    v.planner = gw.planner
    v.tariff = gw.tariff
    v.actions = {"stop_now": gw.stop_now}
    config.listeners.append(gw.apply_settings)
    gw.bus = v.bus = build_bus(gw)
    if gw.bus is not None:
        gw.extra_services.append(("bus", gw.bus.run))
    gw.telemetry = gw.console = None
    if data["mqtt"]["host"] or client is not None:
        from gateway.telemetry import Telemetry

        tel = Telemetry(v, default_node=board.name, version=gateway.VERSION, client=client)
        gw.telemetry = tel
        gw.client = v.client = tel.client
        gw.extra_services.append(("telemetry", tel.run))
    gw.extra_services.append(("config", config.run))
    if console is None:
        console = data["app"]["console"] and _env("GATEWAY_CONSOLE") != "0"
    if console:
        from gateway.console import Console

        gw.console = Console(v, echo=sys.platform == "esp32")
        gw.extra_services.append(("console", gw.console.run))
    return gw


def main():
    if sys.platform == "esp32":
        import micropython

        micropython.alloc_emergency_exception_buf(100)
    path = _env("GATEWAY_BOARD") or ("/board.json" if sys.platform == "esp32"
                                     else "boards/sim.json")
    spec = ports.load_spec(path)
    board = ports.open_board(spec)
    board.set_interlock(False)
    gw = build(board, "")
    board.contact_irq(gw.on_contact)
    gw.log.info("SAFE STATE: interlock de-energised (export blocked), charger 0 W, "
                "inverter export limit 0 W")
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
