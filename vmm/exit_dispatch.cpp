#include "vmm/exit_dispatch.hpp"

#include <linux/kvm.h>

#include <cstdio>

#include "base/overloaded.hpp"

namespace forkvm {

ExitAction dispatch(const VcpuExit& exit, const Bus& pio, const Bus& mmio) {
  return std::visit(
      Overloaded{
          [&](const IoIn& io) {
            // rep ins: `count` elements of `size` bytes, each a separate device access.
            for (uint32_t i = 0; i < io.count; ++i) {
              pio.read(io.port, io.data.subspan(size_t{i} * io.size, io.size));
            }
            return ExitAction::kContinue;
          },
          [&](const IoOut& io) {
            for (uint32_t i = 0; i < io.count; ++i) {
              pio.write(io.port, io.data.subspan(size_t{i} * io.size, io.size));
            }
            return ExitAction::kContinue;
          },
          [&](const MmioRead& m) {
            mmio.read(m.addr, m.data);
            return ExitAction::kContinue;
          },
          [&](const MmioWrite& m) {
            mmio.write(m.addr, m.data);
            return ExitAction::kContinue;
          },
          // With the in-kernel irqchip HLT never reaches userspace; if it does, re-entering
          // is correct (KVM blocks until an interrupt).
          [](const Hlt&) { return ExitAction::kContinue; },
          [](const Interrupted&) { return ExitAction::kInterrupted; },
          [](const Shutdown&) { return ExitAction::kGuestReset; },
          [](const SystemEvent& e) {
            return e.type == KVM_SYSTEM_EVENT_SHUTDOWN ? ExitAction::kGuestHalt
                                                       : ExitAction::kGuestReset;
          },
          [](const FailEntry&) { return ExitAction::kFatal; },
          [](const InternalError&) { return ExitAction::kFatal; },
          [](const RunFailed&) { return ExitAction::kFatal; },
          [](const UnknownExit&) { return ExitAction::kFatal; },
      },
      exit);
}

std::string describe(const VcpuExit& exit) {
  char buf[96];
  std::visit(
      Overloaded{
          [&](const IoIn& io) { std::snprintf(buf, sizeof buf, "io in port 0x%x size %u count %u", io.port, io.size, io.count); },
          [&](const IoOut& io) { std::snprintf(buf, sizeof buf, "io out port 0x%x size %u count %u", io.port, io.size, io.count); },
          [&](const MmioRead& m) { std::snprintf(buf, sizeof buf, "mmio read 0x%llx len %zu", static_cast<unsigned long long>(m.addr), m.data.size()); },
          [&](const MmioWrite& m) { std::snprintf(buf, sizeof buf, "mmio write 0x%llx len %zu", static_cast<unsigned long long>(m.addr), m.data.size()); },
          [&](const Hlt&) { std::snprintf(buf, sizeof buf, "hlt"); },
          [&](const Shutdown&) { std::snprintf(buf, sizeof buf, "shutdown (triple fault)"); },
          [&](const SystemEvent& e) { std::snprintf(buf, sizeof buf, "system event %u", e.type); },
          [&](const Interrupted&) { std::snprintf(buf, sizeof buf, "interrupted"); },
          [&](const FailEntry& f) { std::snprintf(buf, sizeof buf, "entry failed (hardware reason 0x%llx)", static_cast<unsigned long long>(f.reason)); },
          [&](const InternalError& e) { std::snprintf(buf, sizeof buf, "KVM internal error (suberror %u)", e.suberror); },
          [&](const RunFailed& r) { std::snprintf(buf, sizeof buf, "KVM_RUN failed (errno %d)", r.err); },
          [&](const UnknownExit& u) { std::snprintf(buf, sizeof buf, "unhandled exit reason %u", u.reason); },
      },
      exit);
  return buf;
}

}  // namespace forkvm
