#!/usr/bin/env bash
# Builds the forkvm guest kernel (bzImage and ELF vmlinux) from Debian's linux-source-6.1:
# `make tinyconfig`, then forkvm.config merged on top. The result lands in a cache outside the
# repo, keyed by the SHA-256 of this script, the fragment and the linux-source package version,
# so a rebuild happens only when one of them changes.
#
# Usage: tools/guest-kernel/build.sh            prints the directory holding bzImage and vmlinux
# Env:   FORKVM_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/forkvm)
#        JOBS           parallel make jobs (default: nproc)
# Progress goes to stderr; the only thing on stdout is the output directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${FORKVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forkvm}
src_tar=/usr/src/linux-source-6.1.tar.xz
log() { printf '[guest-kernel] %s\n' "$*" >&2; }

[ -r "$src_tar" ] || { log "error: $src_tar missing (apt-get install linux-source-6.1)"; exit 1; }
src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || echo unknown)
key=$(cat "$here/build.sh" "$here/forkvm.config" <(echo "$src_version") | sha256sum | cut -c1-16)
out="$cache/guest-kernel/$key"

if [ -s "$out/bzImage" ] && [ -s "$out/vmlinux" ]; then
  log "cached: $out (linux-source $src_version)"
  echo "$out"; exit 0
fi

mkdir -p "$cache/guest-kernel"
exec 9>"$cache/guest-kernel/.lock"
log "waiting for the build lock" ; flock 9
if [ -s "$out/bzImage" ] && [ -s "$out/vmlinux" ]; then echo "$out"; exit 0; fi

work="$cache/guest-kernel/work-$key"
rm -rf "$work" && mkdir -p "$work"
start=$(date +%s)
log "unpacking $src_tar (linux-source $src_version) ..."
tar -xJf "$src_tar" -C "$work"
tree=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'linux-source-*' | head -n1)
cd "$tree"

log "configuring: tinyconfig + forkvm.config"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$here/forkvm.config" >/dev/null
make -s olddefconfig >&2

# Kconfig silently drops options whose dependencies are unmet: fail loudly instead.
missing=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  opt=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    grep -q "^$opt=" .config && { log "config: $opt is on, wanted off"; missing=1; }
  else
    grep -qx "$line" .config || { log "config: $line did not stick"; missing=1; }
  fi
done < "$here/forkvm.config"
[ "$missing" = 0 ] || { log "error: the config fragment did not apply"; exit 1; }

jobs=${JOBS:-$(nproc)}
log "compiling with $jobs jobs (a few minutes on 2 cores; a line every 200 objects)"
n=0
make -j"$jobs" bzImage 2>&1 | while IFS= read -r l; do
  case "$l" in
    *" CC "*|*" AS "*|*" LD "*|*" AR "*) n=$((n+1)); [ $((n % 200)) = 0 ] && log "  $n objects, $(( $(date +%s) - start ))s" ;;
    *error*|*Error*) printf '%s\n' "$l" >&2 ;;
  esac
done
[ -s arch/x86/boot/bzImage ] || { log "error: kernel build failed"; exit 1; }

mkdir -p "$out.tmp"
cp arch/x86/boot/bzImage vmlinux .config "$out.tmp/"
mv "$out.tmp" "$out"
cd / && rm -rf "$work"
log "done in $(( $(date +%s) - start ))s: $out ($(du -h "$out/bzImage" | cut -f1) bzImage)"
echo "$out"
