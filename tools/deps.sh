#!/bin/sh
# Checks the Debian packages pelix-mqtt needs; installs the missing ones when run as root,
# otherwise prints the exact command to run and fails.
set -eu

PACKAGES="build-essential cmake pkg-config clang-format libmosquitto-dev libjansson-dev libcmocka-dev libedit-dev \
mosquitto mosquitto-clients openssl groff-base"
# `tools/deps.sh fuzz` (make fuzz): clang and its libFuzzer runtime.
if [ "${1:-}" = fuzz ]; then
    PACKAGES="clang libclang-rt-14-dev"
fi

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run this, then try again:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
