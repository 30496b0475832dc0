# What is frozen into the MicroPython image with the gateway firmware (micropython-lib
# manifest form; paths are relative to this folder).
#
# Production ESP32 image, from a MicroPython checkout with ESP-IDF set up:
#   make -C $MPY_DIR/ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/firmware/manifest.py
# The host's ESP32-like runtime (tools/gwhost/esp32like.py) includes this file with
# port_modules=False: the unix port has no board modules to freeze.
options.defaults(port_modules=True)  # noqa: F821 - manifest API

if options.port_modules:  # noqa: F821
    # The port's own frozen modules (on the ESP32: _boot.py mounts the filesystem), asyncio among them.
    include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821
else:
    include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821

package("gateway", opt=3)  # noqa: F821
module("main.py", opt=3)  # noqa: F821
