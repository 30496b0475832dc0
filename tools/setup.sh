#!/usr/bin/env bash
# One-command setup (`make setup`): system packages the tests need, the host
# virtual environment with pinned tools, and the MicroPython-only packages.
# Idempotent: a stamp keyed on the pinned inputs makes a re-run take well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
APT_PKGS="mosquitto mosquitto-clients socat chrony"
stamp_key=$(cat tools/requirements.txt tools/mpy-packages.lock tools/setup.sh | sha256sum | cut -c1-16)
stamp=".venv/.stamp-setup-$stamp_key"

missing_cmds() {
  for c in mosquitto mosquitto_sub socat chronyd; do
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || echo "$c"
  done
}

if [ -f "$stamp" ] && [ -z "$(missing_cmds)" ] && [ -x .venv/bin/micropython ]; then
  exit 0
fi

# 1. System packages (Debian): only when a command is missing.
if [ -n "$(missing_cmds)" ]; then
  echo "setup: installing system packages: $APT_PKGS"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
    # The Debian package starts a system broker on 1883; the project never uses it.
  else
    echo "setup: apt-get not found; install $APT_PKGS by hand" >&2
    exit 1
  fi
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
echo "setup: done"
