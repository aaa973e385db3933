#!/usr/bin/env bash
# Builds the built-in root filesystem: an ext4 image of Debian 12 (bookworm) made from Debian
# packages with the host's apt configuration (mmdebstrap, minbase variant, the packages of
# packages.txt), then `mkfs.ext4 -d`. The guest mounts it read-only under a writable overlay
# (guest-init/root_switch.hpp). The image lands in a cache outside the repo keyed by the SHA-256
# of this script, the package lists, the release and the apt sources, so it is built once.
#
# Usage: tools/rootfs/build.sh        prints the directory holding rootfs.ext4
# Env:   FORKVM_CACHE                  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/forkvm)
#        FORKVM_ROOTFS_EXTRA_PACKAGES  a file with more packages (same format as packages.txt)
#        FORKVM_ROOTFS_SOURCES         apt sources for mmdebstrap (a sources.list or deb822
#                                      .sources file, or a mirror URL); default: the host's
# Needs root (mmdebstrap's root mode) or unprivileged user namespaces (its unshare mode).
# Progress goes to stderr; the only thing on stdout is the output directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${FORKVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forkvm}
release=bookworm
log() { printf '[rootfs] %s\n' "$*" >&2; }

command -v mmdebstrap >/dev/null || { log "error: mmdebstrap missing (apt-get install mmdebstrap)"; exit 1; }
command -v mkfs.ext4 >/dev/null || { log "error: mkfs.ext4 missing (apt-get install e2fsprogs)"; exit 1; }

# The package list: packages.txt plus the optional extra file, comments and blanks dropped.
lists=("$here/packages.txt")
if [ -n "${FORKVM_ROOTFS_EXTRA_PACKAGES:-}" ]; then
  [ -r "$FORKVM_ROOTFS_EXTRA_PACKAGES" ] \
    || { log "error: FORKVM_ROOTFS_EXTRA_PACKAGES=$FORKVM_ROOTFS_EXTRA_PACKAGES is not a readable file"; exit 1; }
  lists+=("$FORKVM_ROOTFS_EXTRA_PACKAGES")
fi
packages=$(sed -e 's/#.*//' "${lists[@]}" | tr -s ' \t' '\n\n' | grep -v '^$' | sort -u | paste -sd, -)
[ -n "$packages" ] || { log "error: the package list is empty"; exit 1; }

# The apt sources: the host's enabled Debian sources, unless overridden.
sources=()
if [ -n "${FORKVM_ROOTFS_SOURCES:-}" ]; then
  sources=("$FORKVM_ROOTFS_SOURCES")
else
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -qE '^[[:space:]]*(deb |URIs:)' "$f" && sources+=("$f")
  done
  [ ${#sources[@]} -gt 0 ] || { log "error: no apt sources on this host; set FORKVM_ROOTFS_SOURCES"; exit 1; }
fi
source_text=$(for s in "${sources[@]}"; do if [ -f "$s" ]; then cat "$s"; else echo "$s"; fi; done)

key=$(cat "$here/build.sh" <(echo "$packages") <(echo "$release") <(echo "$source_text") \
      | sha256sum | cut -c1-16)
out="$cache/rootfs/$key"
if [ -s "$out/rootfs.ext4" ]; then
  log "cached: $out/rootfs.ext4 (Debian $release; $(echo "$packages" | tr ',' ' '))"
  echo "$out"; exit 0
fi

mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.lock"
log "waiting for the build lock"; flock 9
if [ -s "$out/rootfs.ext4" ]; then echo "$out"; exit 0; fi

work="$cache/rootfs/work-$key"
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "building Debian $release with mmdebstrap (about a minute with a nearby mirror): $(echo "$packages" | tr ',' ' ')"
# Documentation, manuals and translations are left out (copyright files stay); apt's package
# lists are dropped at the end, as in Debian's container images.
mmdebstrap --mode=auto --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  --customize-hook='echo forkvm > "$1/etc/hostname"' \
  "$release" "$work/tree" "${sources[@]}" 2>&1 \
  | while IFS= read -r l; do printf '[rootfs]   %s (%ss)\n' "$l" "$(( $(date +%s) - start ))" >&2; done
[ -x "$work/tree/usr/bin/python3" ] || { log "error: mmdebstrap failed (no /usr/bin/python3 in the tree)"; exit 1; }

# Room for the files plus a quarter and 64 MiB, rounded to MiB: the image is read-only in the
# guest (writes go to the overlay), so little free space is needed.
used_kib=$(du -sk "$work/tree" | cut -f1)
size_mib=$(( (used_kib + used_kib / 4) / 1024 + 64 ))
log "making a ${size_mib} MiB ext4 image from $(( used_kib / 1024 )) MiB of files"
mkdir -p "$out.tmp"
mkfs.ext4 -q -F -L forkvm-root -m 0 -d "$work/tree" "$out.tmp/rootfs.ext4" "${size_mib}M" >&2
e2fsck -fn "$out.tmp/rootfs.ext4" >/dev/null 2>&1 || { log "error: e2fsck found problems in the new image"; exit 1; }
echo "$packages" | tr ',' '\n' > "$out.tmp/packages"
rm -rf "$out" && mv "$out.tmp" "$out"
log "done in $(( $(date +%s) - start ))s: $out/rootfs.ext4 (${size_mib} MiB)"
echo "$out"
