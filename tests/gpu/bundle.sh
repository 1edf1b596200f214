#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Packs what the GPU machine needs to run hfleet end to end into .carry/
# (ignored by git): our binaries, every shared library they load that is not
# part of glibc, and PostgreSQL 15 unpacked from Debian's packages with the
# libraries it loads.  That machine has no package registry.
#   tests/gpu/bundle.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build}
out=$root/.carry
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/debs" "$out/pg"

cp "$build/coordinator/hf-coordinator" "$build/worker/hf-worker" "$build/coordinator/hfctl/hfctl" "$out/bin/"

(cd "$out/debs" && apt-get download postgresql-15 postgresql-client-15 libpq5 >/dev/null 2>&1)
for d in "$out"/debs/*.deb; do dpkg -x "$d" "$out/pg"; done
rm -rf "$out/debs" "$out/pg/usr/share/doc" "$out/pg/usr/share/man" "$out/pg/usr/share/locale"
rm -rf "$out/pg/usr/lib/postgresql/15/lib/llvmjit"* "$out/pg/usr/lib/postgresql/15/lib/bitcode"

libs() {
  ldd "$@" 2>/dev/null | awk '/=> \// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libresolv|libstdc\+\+|libgcc_s)\.so'  || true
}
for f in "$out"/bin/* "$out"/pg/usr/lib/postgresql/15/bin/{postgres,initdb,pg_ctl,psql} ; do
  libs "$f"
done | sort -u | while read -r l; do cp -L "$l" "$out/lib/"; done
# The tree that travels is limited: ship it compressed.
tar -C "$out" -cJf "$root/.carry.tar.xz" bin lib pg
rm -rf "$out"; mkdir -p "$out"; mv "$root/.carry.tar.xz" "$out/bundle.tar.xz"
du -sh "$out"
