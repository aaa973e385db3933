// Sandbox::fork and Sandbox::make_template: freeze a running sandbox into an image (Vm::freeze)
// and make children from it with Template::fork (template.cpp, where every child is made).
#include <chrono>
#include <exception>

#include "forkvm/template.hpp"
#include "sandbox/sandbox_impl.hpp"

namespace forkvm {

using Clock = std::chrono::steady_clock;

std::shared_ptr<const VmImage> Sandbox::Impl::freeze() {
  if (state.load() != SandboxState::kReady) {
    throw InvalidStateError("cannot fork a sandbox that is " + std::string(to_string(state.load())));
  }
  resetting = true;  // the capture closes the agent connection (reconnect_after_reset clears it)
  try {
    return vm->freeze();
  } catch (const InvalidStateError&) {
    resetting = false;  // refused before anything was touched
    throw;
  }
}

std::shared_ptr<Template> Sandbox::make_template(const TemplateOptions& options) {
  std::lock_guard once(impl_->shutdown_mutex);  // vm stays while we use it; one at a time
  std::shared_ptr<const VmImage> image;
  std::exception_ptr failure;
  try {
    image = impl_->freeze();
  } catch (const InvalidStateError&) {
    throw;  // nothing was touched
  } catch (...) {
    if (impl_->vm->wait(std::chrono::milliseconds(0))) {  // the VM is gone: no reconnect
      impl_->resetting = false;
      throw;
    }
    failure = std::current_exception();
  }
  impl_->reconnect_after_reset("a fork of the sandbox");
  if (failure) std::rethrow_exception(failure);
  TemplateOptions with_egress = options;
  if (!with_egress.egress) with_egress.egress = impl_->egress_config();
  return Template::from_image(std::move(image), with_egress);
}

std::unique_ptr<Sandbox> Sandbox::fork(const ForkConfig& config, std::stop_token stop) {
  const auto t0 = Clock::now();
  check_hostname(config.hostname, "ForkConfig::hostname");
  std::lock_guard once(impl_->shutdown_mutex);
  std::shared_ptr<const VmImage> image;
  try {
    image = impl_->freeze();
  } catch (const InvalidStateError&) {
    throw;
  } catch (...) {
    if (!impl_->vm->wait(std::chrono::milliseconds(0))) {
      impl_->reconnect_after_reset("a failed fork of the sandbox");
    } else {
      impl_->resetting = false;  // the VM is gone: no reconnect
    }
    throw;
  }
  const auto frozen = Clock::now();
  // The child first (it is what the caller waits for), then the parent's new connection, which
  // is made whether or not the child came up.
  TemplateOptions options;
  options.runtime_dir = impl_->config.runtime_dir;
  options.kvm_device = impl_->config.vm.kvm_device;
  options.egress = impl_->egress_config();
  std::unique_ptr<Sandbox> child;
  std::exception_ptr failure;
  try {
    child = Template::from_image(std::move(image), options)->fork(config, std::move(stop));
  } catch (...) {
    failure = std::current_exception();
  }
  impl_->reconnect_after_reset("a fork of the sandbox");
  if (failure) std::rethrow_exception(failure);
  ForkTimings& t = child->impl_->fork_timings;
  t.freeze = frozen - t0;
  t.to_vcpus_ready += t.freeze;
  t.to_ready += t.freeze;
  return child;
}

}  // namespace forkvm
