// Sandbox::fork and Sandbox::make_template: freeze a running sandbox into an image (Vm::freeze)
// and make children from it with Template::fork (template.cpp, where every child is made).
#include <chrono>

#include "forkvm/template.hpp"
#include "sandbox/sandbox_impl.hpp"

namespace forkvm {

using Clock = std::chrono::steady_clock;

std::shared_ptr<const VmImage> Sandbox::Impl::freeze() {
  if (state.load() != SandboxState::kReady) {
    throw InvalidStateError("cannot fork a sandbox that is " + std::string(to_string(state.load())));
  }
  // Pauses the VM for the capture; the agent connection and the requests in flight wait it out
  // and go on (the children carry it when it is quiet: capture_options()).
  AgentClient::Quiet quiet;
  return vm->freeze(capture_options(quiet));
}

std::shared_ptr<Template> Sandbox::make_template(const TemplateOptions& options) {
  std::lock_guard once(impl_->shutdown_mutex);  // vm stays while we use it; one at a time
  std::shared_ptr<const VmImage> image = impl_->freeze();
  TemplateOptions with_egress = options;
  if (!with_egress.egress) with_egress.egress = impl_->egress_config();
  return Template::from_image(std::move(image), with_egress);
}

std::unique_ptr<Sandbox> Sandbox::fork(const ForkConfig& config, std::stop_token stop) {
  const auto t0 = Clock::now();
  check_hostname(config.hostname, "ForkConfig::hostname");
  std::lock_guard once(impl_->shutdown_mutex);
  std::shared_ptr<const VmImage> image = impl_->freeze();
  const auto frozen = Clock::now();
  const bool logged = image->written_pages_logged();
  TemplateOptions options;
  options.runtime_dir = impl_->config.runtime_dir;
  options.kvm_device = impl_->config.vm.kvm_device;
  options.egress = impl_->egress_config();
  options.allow_secrets = config.allow_secrets;
  // A one-off template: no other VM is made from this image (the parent's next fork freezes a
  // new one). The image knows the pages the first execs of its parent's earlier images' VMs
  // touched (Vm::freeze), and the child takes them ahead (TemplateOptions::prefault) instead
  // of faulting each in during its first exec; what its first exec adds, while the image is
  // still learning, reaches the parent's next fork.
  std::unique_ptr<Sandbox> child =
      Template::from_image(std::move(image), options)->fork(config, std::move(stop));
  ForkTimings& t = child->impl_->fork_timings;
  t.freeze = frozen - t0;
  t.freeze_logged = logged;
  t.to_vcpus_ready += t.freeze;
  t.to_ready += t.freeze;
  return child;
}

}  // namespace forkvm
