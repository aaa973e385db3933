/*
 * lab-pin: keeps one KVM VM alive inside kvm-lab's L1 whose only vCPU has its local APIC
 * hardware- and software-disabled, and never runs it.
 *
 * Why: KVM counts such APICs in two deferred static keys (apic_hw_disabled, apic_sw_disabled).
 * Each time a count goes from 0 to 1 or back (a VM is created, a guest enables its APIC, a VM
 * is destroyed) the L1 kernel live-patches its own text with int3 breakpoints and cross-CPU
 * syncs. Under QEMU 7.2's multi-threaded TCG that patching has been seen to livelock both L1
 * CPUs on the int3 at __apic_accept_irq (the "lab stalls", tools/kvm-lab/README.md). With this
 * VM holding both counts at 1 or more for L1's whole life, creating and destroying test VMs
 * never patches that text again.
 *
 * Prints "pinned" once both counts are held, then sleeps until killed. Built by `prepare` (as a
 * static binary) into L1's initramfs and started by l1-init before the command.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char* what) {
  fprintf(stderr, "lab-pin: %s failed: %s\n", what, strerror(errno));
  return 1;
}

int main(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return fail("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return fail("KVM_CREATE_VM");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) return fail("KVM_CREATE_IRQCHIP");
  /* A new vCPU's local APIC starts software-disabled (its SPIV enable bit clear). */
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return fail("KVM_CREATE_VCPU");
  /* IA32_APIC_BASE (MSR 0x1b) at the default base with the global enable bit (11) clear. */
  struct {
    struct kvm_msrs header;
    struct kvm_msr_entry entry;
  } msrs;
  memset(&msrs, 0, sizeof msrs);
  msrs.header.nmsrs = 1;
  msrs.entry.index = 0x1b;
  msrs.entry.data = 0xfee00000;
  if (ioctl(vcpu, KVM_SET_MSRS, &msrs) != 1) return fail("KVM_SET_MSRS(IA32_APIC_BASE)");
  printf("pinned\n");
  fflush(stdout);
  for (;;) pause();
}
