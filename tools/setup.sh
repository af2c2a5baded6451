#!/usr/bin/env bash
# Idempotent set-up of gr-isac on Debian 12 (bookworm), as root.
#   1. Debian packages (GNU Radio 3.10, compilers, numpy/scipy/zmq/matplotlib/pytest, pytest-timeout)
#   2. .venv/ from /usr/bin/python3 with system site packages, pinned pip packages
#   3. CMake build in build/ and install into .venv/
# Each step is skipped when it is already done, so a re-run takes seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(
  gnuradio gnuradio-dev cmake g++ make pkg-config git
  pybind11-dev python3-pybind11 libeigen3-dev libfftw3-dev
  python3-numpy python3-scipy python3-zmq python3-pytest python3-pytest-timeout python3-venv python3-pip
  python3-matplotlib python3-tqdm python3-pyqt5
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV from /usr/bin/python3 (with system site packages)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# The venv's own pip.conf: our constraints replace any machine-wide ones.
printf '[global]\nconstraint = %s\ndisable-pip-version-check = true\n' \
  "$ROOT/tools/constraints.txt" > "$VENV/pip.conf"
req_stamp="$VENV/.requirements.sha256"
req_hash="$(cat tools/requirements.txt tools/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$req_stamp" 2>/dev/null)" != "$req_hash" ]; then
  log "installing pinned pip packages"
  PIP_CONFIG_FILE="$VENV/pip.conf" "$VENV/bin/pip" install -q -r tools/requirements.txt
  echo "$req_hash" > "$req_stamp"
fi

BUILD="$ROOT/build"
# The kernels are built for THIS machine's instruction set (AVX-512 where present:
# 3-4x faster than the portable x86-64 baseline, see docs/performance.md). The build
# and the .venv it installs into therefore belong to the machine they were built on:
# after copying them to another machine, delete build/ and re-run this script (an
# older CPU would otherwise stop with "Illegal instruction"). The CMake default
# (ISAC_ARCH_FLAGS empty) stays portable for packagers.
ARCH_FLAGS="${ISAC_ARCH_FLAGS--march=native}"
if [ ! -f "$BUILD/CMakeCache.txt" ] ||
   ! grep -qxF "ISAC_ARCH_FLAGS:STRING=$ARCH_FLAGS" "$BUILD/CMakeCache.txt"; then
  log "configuring CMake in $BUILD (ISAC_ARCH_FLAGS='$ARCH_FLAGS')"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DPYTHON_EXECUTABLE="$VENV/bin/python" \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DCMAKE_INSTALL_RPATH="$VENV/lib/x86_64-linux-gnu" \
    -DISAC_ARCH_FLAGS="$ARCH_FLAGS" >/dev/null
fi
log "building and installing into $VENV"
cmake --build "$BUILD" -j"$(nproc)" -- --no-print-directory >/dev/null
cmake --install "$BUILD" >/dev/null
