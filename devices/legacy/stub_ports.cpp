#include "devices/legacy/stub_ports.hpp"

#include <algorithm>
#include <array>
#include <memory>

namespace forkvm {
namespace {

// Ascending by port. The reasons cite what the guest does with the range, so a range can be
// dropped the day nothing needs it.
constexpr std::array kStubRanges{
    StubPortRange{
        0x70, 2, uint8_t{0x00}, "cmos",
        "MC146818 CMOS/RTC index (0x70) and data (0x71). Reads must return 0, not 0xff: Linux "
        "6.1's mach_get_cmos_time() -> mc146818_get_time(&tm, 1000) polls register A until the "
        "update-in-progress bit (0x80) is clear, for up to 1000 ms in 100 us steps, then logs "
        "\"Unable to read current time from RTC\"; 0xff reads would cost that second whenever "
        "kvmclock does not provide the wall clock. Firecracker answers zeros here too. Writes "
        "(the NMI-mask bit in the index, the warm-reset code Linux's smpboot stores in CMOS "
        "register 0x0f) are ignored."},
    StubPortRange{
        0x80, 1, std::nullopt, "post",
        "POST-code / I/O-delay port. Linux's native_io_delay() writes it after slow port "
        "accesses (CONFIG_IO_DELAY_0X80, the default) unless the KVM_FEATURE_NOP_IO_DELAY "
        "CPUID bit makes the KVM guest code replace io_delay with a no-op; it is the "
        "most-written port of a boot otherwise. Nothing reads it."},
    StubPortRange{
        0x87, 1, std::nullopt, "dma-page0",
        "8237 DMA page register for channel 0. Linux's i8237A_init_ops() (arch/x86/kernel/"
        "i8237.c, built with CONFIG_ISA_DMA_API) reads it once and concludes there is no "
        "legacy DMA controller only if it reads 0xff (\"All removed ports must return 0xff\"), "
        "so it keeps the bus fill."},
    StubPortRange{
        0xed, 1, std::nullopt, "io-delay-alt",
        "Alternative I/O-delay port Linux writes instead of 0x80 with io_delay=0xed; kvmtool "
        "claims it as a dummy too."},
    StubPortRange{
        0x2e8, 8, std::nullopt, "com4",
        "COM4. Reads of 0xff are how a UART's absence looks: Linux's 8250 autoconfig() writes "
        "IER = 0 and reads it back, and 0xff & 0x0f != 0 ends the probe with no port. "
        "Firecracker registers COM2-4 as sink UARTs instead; claiming them as empty is enough "
        "for a kernel built with CONFIG_SERIAL_8250_NR_UARTS=1 or one that probes all four."},
    StubPortRange{
        0x2f8, 8, std::nullopt, "com2", "COM2, absent for the same reason as COM4."},
    StubPortRange{
        0x3e8, 8, std::nullopt, "com3", "COM3, absent for the same reason as COM4."},
};

constexpr std::array kInKernelRanges{
    StubPortRange{0x20, 2, std::nullopt, "pic-master",
                  "8259A master PIC: KVM's in-kernel irqchip (KVM_CREATE_IRQCHIP)."},
    StubPortRange{0x40, 4, std::nullopt, "pit",
                  "8254 PIT channels 0-2 and mode register: KVM's in-kernel PIT "
                  "(KVM_CREATE_PIT2); Linux calibrates the TSC against it."},
    StubPortRange{0x61, 1, std::nullopt, "nmi-sc",
                  "NMI status / speaker control (PIT channel 2 gate): in-kernel with "
                  "KVM_PIT_SPEAKER_DUMMY. It sits inside the i8042's 0x60-0x64 range, which "
                  "therefore never sees it."},
    StubPortRange{0xa0, 2, std::nullopt, "pic-slave",
                  "8259A slave PIC: KVM's in-kernel irqchip."},
    StubPortRange{0x4d0, 2, std::nullopt, "elcr",
                  "8259 edge/level control registers: KVM's in-kernel irqchip."},
};

}  // namespace

std::span<const StubPortRange> legacy_stub_port_ranges() noexcept { return kStubRanges; }

std::span<const StubPortRange> in_kernel_port_ranges() noexcept { return kInKernelRanges; }

void StubPorts::read(uint64_t /*offset*/, std::span<uint8_t> data) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  // Guest-controlled: offset and size are irrelevant; every byte of any access gets the value.
  if (read_value_) std::fill(data.begin(), data.end(), *read_value_);
}

void StubPorts::write(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {
  writes_.fetch_add(1, std::memory_order_relaxed);
}

void insert_legacy_stub_ports(Bus& bus) {
  for (const StubPortRange& range : kStubRanges) {
    bus.insert(std::make_shared<StubPorts>(range.read_value), range.base, range.length);
  }
}

}  // namespace forkvm
