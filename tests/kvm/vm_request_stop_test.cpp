// Vm::request_stop() on a real /dev/kvm: what Sandbox::shutdown() relies on to return without
// joining threads. A guest that writes to COM1 without end keeps the console callback busy;
// once request_stop() returns, the callback is never called again (a call that was running
// has returned first), a call from inside the callback does not deadlock, and stop() then
// joins everything and reports the host stop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "forkvm/vm.hpp"
#include "tests/kvm/elf_kernel.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;

/// mov dx, 0x3f8; loop: mov al, 'x'; out dx, al; jmp loop
const std::vector<uint8_t> kEndlessX = {0x66, 0xba, 0xf8, 0x03, 0xb0, 'x', 0xee, 0xeb, 0xfb};

std::unique_ptr<Vm> make_vm(const test::ElfKernel& kernel, std::function<void(std::string_view)> console) {
  VmConfig c;
  c.kernel = kernel.path();
  c.vcpus = 1;
  c.memory_mib = 64;
  c.console = std::move(console);
  return Vm::create(c);  // not started: the caller starts it
}

TEST(VmRequestStop, WaitsForARunningConsoleCallbackAndNoneRunsAfterwards) {
  test::ElfKernel kernel(kEndlessX);
  std::atomic<int> calls{0};
  std::atomic<bool> slow_call_done{false};
  std::promise<void> entered;
  auto vm = make_vm(kernel, [&](std::string_view) {
    if (calls.fetch_add(1) == 100) {  // a slow call request_stop() must wait out
      entered.set_value();
      std::this_thread::sleep_for(300ms);
      slow_call_done = true;
    }
  });
  vm->start();
  ASSERT_EQ(entered.get_future().wait_for(60s), std::future_status::ready);
  vm->request_stop();
  EXPECT_TRUE(slow_call_done) << "request_stop() returned while the console callback ran";
  const int at_return = calls.load();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(calls.load(), at_return) << "the console callback ran after request_stop() returned";
  const auto r = vm->wait(10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, StopReason::kHostStop);
  EXPECT_EQ(vm->stop().reason, StopReason::kHostStop);  // joins; idempotent
  EXPECT_EQ(calls.load(), at_return);
}

TEST(VmRequestStop, FromInsideTheConsoleCallbackDoesNotDeadlock) {
  test::ElfKernel kernel(kEndlessX);
  std::atomic<int> calls{0};
  Vm* self = nullptr;
  std::promise<void> asked;
  auto vm = make_vm(kernel, [&](std::string_view) {
    if (calls.fetch_add(1) == 10) {
      self->request_stop();  // e.g. an embedder shutting its sandbox down from the callback
      asked.set_value();
    }
  });
  self = vm.get();  // before the guest runs
  vm->start();
  ASSERT_EQ(asked.get_future().wait_for(60s), std::future_status::ready) << "request_stop() hung";
  const auto r = vm->wait(10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, StopReason::kHostStop);
  vm->stop();
  EXPECT_EQ(calls.load(), 11);  // muted from inside: no call after the one that asked
}

}  // namespace
}  // namespace forkvm
