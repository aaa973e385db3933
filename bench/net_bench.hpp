// `forkvm-bench net`: the virtio-net device against QEMU's, same run. The guest (python3 on the
// Debian root filesystem, started at boot from a script disk) fetches from a BytesOrigin at
// 172.16.0.1:8080 inside a network namespace that tools/net/forkvm-netns makes (TAP fvtap0, the
// guest at 172.16.0.2): small GETs, a new connection each (latency), and large downloads
// (throughput). Each round boots forkvm with its NIC on that TAP, QEMU -M microvm with
// virtio-net-device (userspace, vhost off) with the same features as forkvm (no offloads), and
// QEMU with its default offloads, on the same kernel and images. Needs root.
#pragma once

#include <span>

namespace forkvm::bench {

/// The usage text.
extern const char* const kNetBenchUsage;

/// Runs the virtio-net benchmark with argv after "net"; returns the exit code.
int net_bench(std::span<char* const> args);

}  // namespace forkvm::bench
