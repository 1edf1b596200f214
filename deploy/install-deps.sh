#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what hfleet needs to build, test and run on Debian 12, from
# Debian's own packages only.  Installs nothing that is already there, so
# it is cheap to run every time.  Needs root (or sudo) when something is
# missing.
#
#   deploy/install-deps.sh              build, test and run
#   deploy/install-deps.sh --packaging  also build and check the Debian
#                                       packages (debhelper, lintian: about
#                                       150 packages, so only when asked)
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libuv1-dev libnng-dev protobuf-c-compiler libprotobuf-c-dev libpq-dev
  libjansson-dev libinih-dev libmbedtls-dev check libsubunit-dev
  postgresql-15 postgresql-client-15
  python3
  clang-14 libclang-rt-14-dev
  scdoc
)
case "${1:-}" in
  --packaging) packages+=(debhelper dpkg-dev lintian systemd) ;;
  "") ;;
  *) echo "usage: $0 [--packaging]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "hfleet: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "hfleet: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
