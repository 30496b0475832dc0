"""The way to a real board, tested without one: the deployable tree, the
freezing manifest, the mpremote/esptool commands, and clear errors."""

import os
import subprocess

from gwhost import paths

TOOLS = os.path.join(paths.ROOT, "tools")


def _run(*args, timeout=300):
    return subprocess.run([os.path.join(TOOLS, args[0]), *args[1:]], cwd=paths.ROOT,
                          capture_output=True, text=True, check=False, timeout=timeout)


def test_build_makes_a_deployable_tree_and_names_the_manifest(tmp_path):
    p = _run("build", "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    tree = tmp_path / "firmware"
    assert (tree / "main.py").exists(), "main.py must stay source: MicroPython runs it by name"
    assert (tree / "gateway" / "app.mpy").exists()
    assert not list(tree.rglob("gateway/**/*.py")), "modules are deployed compiled"
    with open(tree / "gateway" / "app.mpy", "rb") as f:
        assert f.read(1) == b"M", "not an .mpy file"
    assert not (tree / "manifest.py").exists(), "the manifest is build input, not firmware"
    assert "FROZEN_MANIFEST=firmware/manifest.py" in p.stdout
    with open(os.path.join(paths.FIRMWARE, "manifest.py")) as f:
        manifest = f.read()
    assert 'package("gateway", opt=3)' in manifest and 'include("$(MPY_DIR)/extmod/asyncio")' in manifest
    sizes = (tmp_path / "sizes.txt").read_text()
    assert "total .mpy (xtensawin)" in sizes and "budget" in sizes


def test_deploy_without_a_device_is_a_clear_error():
    p = _run("deploy", "--port", "/dev/ttyNO_SUCH_DEVICE", "--board", "esp32-devkitc")
    assert p.returncode == 2
    assert "no device at /dev/ttyNO_SUCH_DEVICE" in p.stderr
    assert "Traceback" not in p.stderr


def test_deploy_unknown_board_names_the_known_ones():
    p = _run("deploy", "--dry-run", "--port", "/dev/ttyUSB0", "--board", "nope")
    assert p.returncode == 2
    assert "esp32-devkitc" in p.stderr and "esp32-atm90e32" in p.stderr


def test_deploy_dry_run_builds_the_mpremote_commands():
    assert _run("build").returncode == 0
    p = _run("deploy", "--dry-run", "--port", "/dev/ttyUSB0", "--board", "esp32-atm90e32",
             "--config", "boards/sim.json")
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip().splitlines()[-1]
    assert "mpremote connect /dev/ttyUSB0" in line
    assert "fs cp -r build/firmware/gateway :" in line
    assert "boards/esp32-atm90e32.json :board.json" in line
    assert ":config.json" in line and line.endswith("+ reset")


def test_flash_needs_an_image():
    p = _run("deploy", "--flash", "--dry-run", "--port", "/dev/ttyUSB0")
    assert p.returncode == 2 and "FIRMWARE=" in p.stderr


def test_flash_dry_run_uses_esptool(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\x00" * 16)
    p = _run("deploy", "--flash", "--dry-run", "--port", "/dev/ttyUSB0", "--firmware", str(img))
    assert p.returncode == 0
    assert "erase-flash" in p.stdout and "write-flash -z 0x1000" in p.stdout


def test_every_real_board_file_is_complete():
    import json

    for name in ("esp32-devkitc", "esp32-atm90e32"):
        spec = json.load(open(os.path.join(paths.BOARDS, name + ".json")))
        for key in ("port", "interlock", "contact", "uarts"):
            assert key in spec, (name, key)
        assert spec["uarts"]["rs485"]["parity"] == "E", "Modbus RTU default is 8E1"
