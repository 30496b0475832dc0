# SunSpec model layouts used by gateway.devices.sunspec (data only).
#
# Offsets count from the model's ID register (ID at +0, L at +1, first point at +2), taken from
# the SunSpec models JSON (github.com/sunspec/models, json/model_<id>.json).
#   101/102/103 inverter: W +14, W_SF +15, DCW +31, DCW_SF +32, St +38, Evt1 +40..41 (bitfield32)
#   120 nameplate: WRtg +3, WRtg_SF +4
#   123 controls: WMaxLimPct +5, _WinTms +6, _RvrtTms +7, _RmpTms +8, WMaxLim_Ena +9, _SF +23
#   124 storage: WChaMax +2, StorCtl_Mod +5, ChaState +8, OutWRte +12, InWRte +13,
#       InOutWRte_WinTms +14, _RvrtTms +15, WChaMax_SF +18, ChaState_SF +22, InOutWRte_SF +25
#   701 DER AC measurement: ConnSt +5, W +10, W_SF +116
#   704 DER AC controls: WMaxLimPctEna +14, WMaxLimPct +15, WMaxLimPctRvrt +16,
#       WMaxLimPctEnaRvrt +17, WMaxLimPctRvrtTms +18..19 (uint32), WMaxLimPct_SF +54
#   802 battery: SoC +11, Hb +18, CtrlHb +19, W +47, SoC_SF +56, W_SF +63
from micropython import const

SUNS = (0x5375, 0x6E53)  # "SunS"
MODELS = (1, 101, 102, 103, 120, 123, 124, 701, 704, 802)
INVERTERS = (103, 102, 101)

# block kinds (indexes into the driver's per-kind image table)
K_W = const(0)
K_ST = const(1)
K_DCW = const(2)
K_701 = const(3)
K_701SF = const(4)
K_120 = const(5)
K_123 = const(6)
K_123SF = const(7)
K_704 = const(8)
K_704SF = const(9)
K_124 = const(10)
K_124ST = const(11)
K_124R = const(12)
K_124SF = const(13)
K_802 = const(14)
K_802HB = const(15)
K_802W = const(16)
K_802SF = const(17)
N_KINDS = const(18)

# (model, kind, offset, registers, slow); model 101 stands for whichever inverter model is there
BLOCKS = (
    (101, K_W, 14, 2, False),
    (101, K_DCW, 31, 2, False),
    (101, K_ST, 38, 4, False),
    (701, K_701, 5, 6, False),
    (701, K_701SF, 116, 1, True),
    (120, K_120, 3, 2, True),
    (123, K_123, 5, 5, True),
    (123, K_123SF, 23, 1, True),
    (704, K_704, 14, 6, True),
    (704, K_704SF, 54, 1, True),
    (124, K_124, 2, 1, True),
    (124, K_124ST, 8, 1, True),
    (124, K_124R, 12, 4, True),
    (124, K_124SF, 18, 8, True),
    (802, K_802, 11, 1, False),
    (802, K_802HB, 18, 2, False),
    (802, K_802W, 47, 1, False),
    (802, K_802SF, 56, 8, True),
)

# register offsets for writes
O123_PCT = const(5)  # WMaxLimPct, WinTms, RvrtTms, RmpTms, WMaxLim_Ena: one write of 5
O124_MODE = const(5)  # StorCtl_Mod
O124_RATE = const(12)  # OutWRte, InWRte, InOutWRte_WinTms, InOutWRte_RvrtTms: write of 4
O704_ENA = const(14)  # Ena, Pct, PctRvrt, EnaRvrt, RvrtTms (u32): write of 6
O802_CTRLHB = const(19)

# model 103 Evt1 bits that mean the grid is not there or out of its window
EVT1_GRID = const((1 << 4) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11))

NOT_SF = const(0x8000)  # sunssf "not implemented"
_P10 = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000)


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


def scale(v, sf_raw):
    """v x 10**sf (sf a sunssf register), truncated toward zero; None if not implemented."""
    if sf_raw == NOT_SF:
        return None
    sf = s16(sf_raw)
    if sf >= 0:
        return v * _P10[sf] if sf < 9 else None
    if sf < -8:
        return None
    p = _P10[-sf]
    return v // p if v >= 0 else -((-v) // p)


def pct100_raw(pct100, sf_raw):
    """A percentage given x100 as the raw register value for scale factor sf."""
    return scale(pct100, (s16(sf_raw) * -1 - 2) & 0xFFFF) if sf_raw != NOT_SF else None
