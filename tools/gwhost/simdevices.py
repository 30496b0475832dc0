"""The devices on the simulated house's RS-485 bus (units as in the firmware's defaults).

Unit 1: the project's reference bidirectional DC charger (docs/charger-map.md).
Unit 2: the home's hybrid inverter: a SolaX X1/X3-Hybrid G4 (its export limit register is
what the plant models), or a SunSpec inverter (kind "sunspec").
"""

from gwhost.simcharger import SimRefCharger
from gwhost.simsolax import SimSolax
from gwhost.simsunspec import SimSunSpec

CHARGER_UNIT = 1
INVERTER_UNIT = 2


def house_devices(state, inverter="solax"):
    devs = [SimRefCharger(CHARGER_UNIT, state)]
    if inverter == "solax":
        devs.append(SimSolax(INVERTER_UNIT, state))
    elif inverter == "sunspec":
        devs.append(SimSunSpec(INVERTER_UNIT, state))
    return devs


def firmware_settings(inverter="solax"):
    """The firmware configuration sections that match these devices."""
    # The simulated inverter keeps no EEPROM: loosening its export limit may be frequent.
    return {"inverter": {"kind": inverter, "unit": INVERTER_UNIT, "export_min_ms": 5000},
            "charger": {"unit": CHARGER_UNIT}}
