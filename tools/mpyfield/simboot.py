# The ESP-IDF bootloader's part in OTA, played for the unix port (run with micropython):
#   micropython simboot.py OTA_DIR
# OTA_DIR holds ota_0.bin / ota_1.bin (firmware images) and otadata.json (see
# firmware/gateway/ports/sim_ota.py). Like the bootloader with app rollback enabled:
#   state "new"     -> becomes "pending" and that slot boots (the image is on trial)
#   state "pending" -> the trial image reset before committing: roll back to "prev"
#   otherwise       -> boot "boot"
# An image is an archive: b"GWIMG1", then per file u16 name length, name, u32 length,
# data; a zero name length ends it. The chosen image is unpacked into OTA_DIR/run/slotN and
# its main.py runs with that folder first on the path. An unreadable image counts as a
# failed boot of that slot (rolled back when it was on trial).
import json
import os
import sys

MAGIC = b"GWIMG1"


def otadata(folder):
    try:
        with open(folder + "/otadata.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"boot": 0, "state": "valid", "seq": 0, "prev": 0}


def save(folder, d):
    with open(folder + "/otadata.json.tmp", "w") as f:
        f.write(json.dumps(d))
    os.rename(folder + "/otadata.json.tmp", folder + "/otadata.json")


def _rm_tree(path):
    try:
        items = list(os.ilistdir(path))
    except OSError:
        return
    for it in items:
        p = path + "/" + it[0]
        if it[1] == 0x4000:
            _rm_tree(p)
            os.rmdir(p)
        else:
            os.remove(p)


def _mkdirs(path):
    cur = ""
    for part in path.split("/"):
        cur = cur + "/" + part if cur or path.startswith("/") else part
        if part:
            try:
                os.mkdir(cur)
            except OSError:
                pass


def unpack(image, dest):
    _rm_tree(dest)
    _mkdirs(dest)
    with open(image, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError("not a firmware image")
        n = 0
        while True:
            b = f.read(2)
            if len(b) != 2:
                raise ValueError("image truncated")
            ln = (b[0] << 8) | b[1]
            if ln == 0:
                return n
            name = f.read(ln).decode()
            if name.startswith("/") or ".." in name:
                raise ValueError("bad file name in image")
            b = f.read(4)
            size = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
            d = dest + "/" + name
            _mkdirs(d.rpartition("/")[0])
            with open(d, "wb") as o:
                left = size
                while left:
                    chunk = f.read(min(left, 4096))
                    if not chunk:
                        raise ValueError("image truncated")
                    o.write(chunk)
                    left -= len(chunk)
            n += 1


def main(folder):
    d = otadata(folder)
    st = d.get("state")
    if st == "new":
        d["state"] = "pending"
        save(folder, d)
        print("boot: slot %d on trial (pending verify)" % d["boot"])
    elif st == "pending":
        print("boot: slot %d never committed: rollback to slot %d" % (d["boot"], d["prev"]))
        d = {"boot": d["prev"], "state": "valid", "seq": d.get("seq", 0) + 1, "prev": d["boot"]}
        save(folder, d)
    slot = d["boot"]
    dest = folder + "/run/slot%d" % slot
    try:
        unpack("%s/ota_%d.bin" % (folder, slot), dest)
    except (OSError, ValueError) as e:
        print("boot: slot %d unreadable (%s)" % (slot, e))
        sys.exit(4)  # a failed boot: the next one rolls back if this image was on trial
    print("boot: slot %d" % slot)
    sys.path.insert(0, dest)
    sys.argv[:] = [dest + "/main.py"]
    import main as _  # noqa: F401 - runs the firmware


main(sys.argv[1])
