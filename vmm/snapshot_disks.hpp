// Disks in snapshots and frozen images. A frozen image holds each disk frozen
// (BlockBackend::freeze(): a read-only image shared by a duplicate descriptor, a copy-on-write
// disk's base and sealed layers), never copied. A snapshot directory records each disk by the
// identity of its image (snapshot::DiskRecord: path, size, SHA-256), and a copy-on-write disk's
// written blocks in an overlay file inside the directory; a restore re-opens the recorded path
// and checks size and digest first. Persistent read-write disks are refused by Vm::snapshot()
// and Vm::freeze().
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/block/block_backend.hpp"
#include "devices/virtio/block/disk_image.hpp"
#include "snapshot/state_file.hpp"

namespace forkvm {

/// The SHA-256 of the whole image behind `disk` (read through its descriptor, holes hashed as
/// zeros without reading them). Remembered for the life of the process per file identity
/// (device, inode, size, modification and change times), so a base image shared by many
/// snapshots and restores is hashed once; and across processes, by the same identity, once
/// the image's times had settled (vmm/disk_digest_cache.hpp). File times tick with the
/// kernel's coarse clock, so a
/// rewrite of the same size within a few milliseconds of the hash can go unnoticed; forkvm's
/// own writers are kept out by the shared lock every VM holds on a read-only image. Throws
/// SnapshotError naming the file.
std::string disk_sha256(const DiskImage& disk);

/// Opens every recorded disk frozen, in record order: the image read-only (ImageError becomes
/// SnapshotError naming the record), refused when its size differs or, with `verify_images`,
/// its SHA-256 (a base image changed after the snapshot was taken); for a copy-on-write disk
/// also its overlay file in `dir` (a regular file of the disk's size; its SHA-256 checked with
/// `verify_overlays`), which becomes the one layer over the base.
std::vector<std::shared_ptr<const FrozenDisk>> open_recorded_disks(
    const std::vector<snapshot::DiskRecord>& records, const std::filesystem::path& dir,
    bool verify_images, bool verify_overlays);

}  // namespace forkvm
