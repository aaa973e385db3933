// `forkvm-bench egress --host-only`: the egress proxy's own cost, without a VM. A client on the
// host plays the guest's side of the vsock device: it connects to the proxy's Unix socket (as
// the device does for a guest connection to the egress port) and downloads through it from a
// BytesOrigin on 127.0.0.1, against the same client reading the same origin over its Unix
// listener directly. Tells whether a gap in the in-guest numbers is the proxy's or the guest's.
#pragma once

namespace forkvm::bench {

/// Runs `rounds` downloads of `mib` MiB each way and `n` small GETs of `small_bytes`;
/// prints distributions and ratios. Returns the exit code.
int egress_host_bench(unsigned n, unsigned small_bytes, unsigned mib, unsigned rounds);

}  // namespace forkvm::bench
