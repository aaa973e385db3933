#include "vmm/vcpu_filter.hpp"

#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <seccomp.h>

namespace forkvm {

const ThreadFilter& vcpu_thread_filter() {
  // What runs on a vCPU thread besides the common calls (thread_filter.hpp), from the code:
  // - vcpu_thread.cpp: KVM_RUN; KVM_GET_REGS/SREGS/VCPU_EVENTS for the registers of a vCPU that
  //   stops on a fatal exit (report_stop); tgkill to kick the other vCPUs when the guest resets.
  // - the legacy devices on the port bus: KVM_IRQ_LINE (serial, i8042), eventfd writes.
  // - the virtio-mmio transports: a DRIVER_OK or reset written by the guest activates or resets
  //   a device here. Activation makes eventfds (eventfd2) and, for vsock, an epoll set over the
  //   host listener (epoll_create1, epoll_ctl); the worker thread itself is created by the
  //   unfiltered launcher (base/thread_launcher.hpp), the caller waiting on a futex. A reset
  //   joins the worker and closes its descriptors (epoll_ctl, close). Activating virtio-net
  //   over a TAP with a vnet header sets the TAP's offloads for the features the guest acked
  //   (TUNSETOFFLOAD, net_device.cpp).
  static const ThreadFilter filter(
      "vcpu",
      {SCMP_SYS(eventfd2), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl)},
      {KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS, KVM_IRQ_LINE, TUNSETOFFLOAD});
  return filter;
}

}  // namespace forkvm
