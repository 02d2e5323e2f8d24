#!/usr/bin/env bash
# Installs the Debian 12 packages trialchain needs, only those missing.
# Usage: scripts/deps.sh [build|test|demo]
set -eu
pkgs="build-essential pkg-config libnng-dev libsodium-dev libleveldb-dev \
libprotobuf-c-dev protobuf-c-compiler libjansson-dev libcmocka-dev"
case "${1:-build}" in
test) pkgs="$pkgs clang libclang-rt-14-dev faketime iproute2 curl" ;;
demo) pkgs="$pkgs curl" ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing missing Debian packages:$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
        echo "deps: need root or sudo to install:$missing" >&2
        exit 1
    }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
$sudo apt-get install -y -qq $missing >/dev/null
echo "deps: installed:$missing"
