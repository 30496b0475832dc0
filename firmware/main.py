# Gateway entry point: the same file boots the ESP32 and the MicroPython unix port.
# The board (boards/*.json) decides what hardware is underneath; see gateway/wiring.py.
import sys

from gateway import wiring

sys.exit(wiring.main())
