# OTA slots on the ESP32: MicroPython's esp32.Partition API over ESP-IDF's app partitions
# (ota_0/ota_1 + otadata). Needs a partition table with two OTA app slots and a bootloader
# built with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (MicroPython's OTA board variants, e.g.
# ESP32_GENERIC-OTA): without rollback support set_boot() of a pending image cannot be
# undone. The bootloader marks a freshly set image "pending verify"; if the running app
# resets before mark_app_valid_cancel_rollback(), the next boot runs the old slot.
# Not run on this host (no esp32 module); ports/sim_ota.py is its file-based twin and
# gateway/ota.py only uses what both offer.
import esp32
import machine


class Slots:
    def running(self):
        return esp32.Partition(esp32.Partition.RUNNING)

    def get_next_update(self):
        return self.running().get_next_update()

    def pending(self):
        """MicroPython offers no query of ESP_OTA_IMG_PENDING_VERIFY: None = unknown; the
        updater's marker file (gateway/ota.py) says whether this image is on trial."""
        return None

    def mark_app_valid_cancel_rollback(self):
        esp32.Partition.mark_app_valid_cancel_rollback()


def reset():
    machine.reset()


class RtcMemory:
    """ESP32 RTC slow memory (2 KB) for gateway/persist.py: kept across watchdog, soft and
    OTA resets (not a power cut); a write costs microseconds, no flash."""

    def read(self):
        return machine.RTC().memory()

    def write(self, data):
        if len(data) > 2000:
            raise OSError(27, "record too large for RTC memory")
        machine.RTC().memory(data)
