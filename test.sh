#!/usr/bin/env bash
# The README's test command: installs the Debian packages the tests need when any is missing
# (gcc and clang build the generated C on the host; the Arm cross-compiler, newlib and QEMU build
# and run it for Cortex-M; CMake builds the firmware projects; Chromium renders report.html), then
# runs the whole test suite.
# Arguments go to pytest: ./test.sh tests/ir -x
set -euo pipefail
cd "$(dirname "$0")"

# package -> a file it installs
declare -A PROVIDES=([gcc]=/usr/bin/gcc [make]=/usr/bin/make [clang]=/usr/bin/clang
                     [gcc-arm-none-eabi]=/usr/bin/arm-none-eabi-gcc
                     [libnewlib-arm-none-eabi]=/usr/lib/arm-none-eabi/newlib
                     [qemu-system-arm]=/usr/bin/qemu-system-arm [chromium]=/usr/bin/chromium
                     [cmake]=/usr/bin/cmake)
missing=()
for pkg in "${!PROVIDES[@]}"; do
    [ -e "${PROVIDES[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing the Debian packages the tests need: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec python -m pytest -q -n 2 "$@"
