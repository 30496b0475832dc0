#!/usr/bin/env bash
# One-command setup (`make setup`): system packages the tests need, the host
# virtual environment with pinned tools, and the MicroPython-only packages.
# With MPY_DIR set (a MicroPython checkout), also the ESP32-like runtime: a 32-bit,
# float32 unix port with the firmware frozen (tools/gwhost/esp32like.py), needing apt
# gcc-multilib. Idempotent: stamps keyed on the inputs make a re-run take well under a
# second (the ESP32-like build is redone only when firmware/ or the manifest changed).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
APT_PKGS="mosquitto mosquitto-clients socat"
stamp_key=$(cat tools/requirements.txt tools/mpy-packages.lock tools/setup.sh | sha256sum | cut -c1-16)
stamp=".venv/.stamp-setup-$stamp_key"

missing_cmds() {
  for c in mosquitto mosquitto_sub socat; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || echo "$c"
  done
}

apt_install() {
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "setup: apt-get not found; install $* by hand" >&2
    exit 1
  fi
}

# The ESP32-like runtime, when MPY_DIR names a MicroPython checkout. A quick check first:
# the build's stamp is newer than every frozen input and names the same checkout.
esp32like() {
  [ -n "${MPY_DIR:-}" ] || return 0
  local st=build/esp32like/stamp src
  src=$(cd "$MPY_DIR" 2>/dev/null && pwd) || { echo "setup: MPY_DIR=$MPY_DIR: no such folder" >&2; exit 1; }
  if [ -x build/esp32like/micropython ] && [ -f "$st" ] && [ "$(sed -n 3p "$st")" = "$src" ] &&
     [ -z "$(find firmware tools/gwhost/esp32like.py "$src/py/mpconfig.h" -newer "$st" -print -quit 2>/dev/null)" ]; then
    return 0
  fi
  if ! dpkg-query -W -f='${Status}' gcc-multilib 2>/dev/null | grep -q "ok installed"; then
    echo "setup: installing system packages: gcc-multilib (32-bit builds)"
    apt_install gcc-multilib
  fi
  PYTHONPATH=tools .venv/bin/python -m gwhost.esp32like build
}

if [ -f "$stamp" ] && [ -z "$(missing_cmds)" ] && [ -x .venv/bin/micropython ]; then
  esp32like
  exit 0
fi

# 1. System packages (Debian): only when a command is missing.
if [ -n "$(missing_cmds)" ]; then
  echo "setup: installing system packages: $APT_PKGS"
  # shellcheck disable=SC2086
  apt_install $APT_PKGS
  # The Debian package starts a system broker on 1883; the project never uses it.
fi

# 2. Host virtual environment with the pinned tools.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
echo "setup: installing pinned host tools"
# (grep drops pip's notes about extra index folders some machines configure)
.venv/bin/python -m pip install -q -r tools/requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }

# 3. MicroPython-only packages (pip refuses them): pinned by sha256.
.venv/bin/python tools/install_mpy_packages.py

rm -f .venv/.stamp-setup-*
touch "$stamp"
esp32like
echo "setup: done"
