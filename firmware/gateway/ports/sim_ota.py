# File-based OTA slots for the unix port, with the interface of the ESP32's
# esp32.Partition OTA API (ports/esp32_ota.py), so gateway/ota.py runs unchanged:
#   slots.get_next_update() -> partition; partition.ioctl(4) block count, ioctl(5) block
#   size, ioctl(6, block) erase, writeblocks(block, buf), readblocks(block, buf),
#   set_boot(), info(); slots.running(); slots.mark_app_valid_cancel_rollback();
#   slots.pending() (True while the running image awaits its commit).
# Layout in `folder`: ota_0.bin, ota_1.bin (images) and otadata.json, the boot record:
#   {"boot": 0|1, "state": "valid"|"new"|"pending"|"aborted", "seq": n, "prev": 0|1}
# written atomically (tmp + rename), as ESP-IDF keeps two otadata sectors with a sequence
# number and CRC. tools/mpyfield/simboot.py plays the bootloader: "new" becomes "pending"
# at boot; a boot that finds "pending" (the new image never committed) rolls back.
# GATEWAY_OTA_CUT=<point>:<n> exits the process (a power cut, exit status 137) at the n-th
# time a point is reached: write (a block written), boot0/boot1/boot2 (before, midway and
# after the otadata write of set_boot), valid0/valid1 (the commit's otadata write).
import json
import os

SLOT_BLOCKS = 1024  # 4 MiB per slot at 4096-byte blocks (a board has ~1.5 MiB)
_BS = 4096


def read_otadata(folder):
    try:
        with open(folder + "/otadata.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"boot": 0, "state": "valid", "seq": 0, "prev": 0}


def write_otadata(folder, d, cut=None):
    tmp = folder + "/otadata.json.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(d))
    if cut:
        cut(1)
    os.rename(tmp, folder + "/otadata.json")


class _Cut:
    def __init__(self):
        v = os.getenv("GATEWAY_OTA_CUT") or ""
        self.point, _, n = v.partition(":")
        self.n = int(n or 1)
        self.seen = {}

    def at(self, point):
        if point != self.point:
            return
        k = self.seen.get(point, 0) + 1
        self.seen[point] = k
        if k == self.n:
            import sys

            print("simulated power cut at %s:%d" % (point, k))
            sys.exit(137)


class FilePartition:
    def __init__(self, slots, index):
        self.slots = slots
        self.index = index
        self.path = "%s/ota_%d.bin" % (slots.folder, index)

    def info(self):
        return (0, 0x10 + self.index, 0, SLOT_BLOCKS * _BS, "ota_%d" % self.index, False)

    def ioctl(self, op, arg):
        if op == 4:
            return SLOT_BLOCKS
        if op == 5:
            return _BS
        if op == 6:
            return 0  # erase: files need none (writes replace whole blocks)
        return None

    def writeblocks(self, block, buf):
        if not 0 <= block < SLOT_BLOCKS:
            raise OSError(22, "block outside the slot")
        mode = "r+b"
        try:
            os.stat(self.path)
        except OSError:
            mode = "wb"
        if block == 0:
            mode = "wb"  # a new image starts a new file
        with open(self.path, mode) as f:
            f.seek(block * _BS)
            f.write(buf)
        self.slots.cut.at("write")

    def readblocks(self, block, buf):
        with open(self.path, "rb") as f:
            f.seek(block * _BS)
            n = f.readinto(buf)
        for i in range(n, len(buf)):
            buf[i] = 0xFF

    def set_boot(self):
        d = read_otadata(self.slots.folder)
        cut = self.slots.cut.at
        cut("boot0")
        nd = {"boot": self.index, "state": "new", "seq": d.get("seq", 0) + 1,
              "prev": d.get("boot", 0)}
        write_otadata(self.slots.folder, nd, lambda _: cut("boot1"))
        cut("boot2")


class FileSlots:
    def __init__(self, folder):
        self.folder = folder
        self.cut = _Cut()
        try:
            os.mkdir(folder)
        except OSError:
            pass

    def running(self):
        return FilePartition(self, read_otadata(self.folder).get("boot", 0))

    def get_next_update(self):
        return FilePartition(self, 1 - read_otadata(self.folder).get("boot", 0))

    def pending(self):
        return read_otadata(self.folder).get("state") == "pending"

    def mark_app_valid_cancel_rollback(self):
        d = read_otadata(self.folder)
        if d.get("state") != "pending":
            return
        self.cut.at("valid0")
        d["state"] = "valid"
        write_otadata(self.folder, d, lambda _: self.cut.at("valid1"))


def reset():
    """The sim board's reset: leave the process with status 3; the supervisor that runs
    the firmware (tools/mpyfield/simboot.py under a loop, the bench) starts it again."""
    import sys

    print("reset")
    sys.exit(3)
