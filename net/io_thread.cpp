#include "net/io_thread.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <thread>

namespace forkvm::net {
namespace {

thread_local bool t_on_io_thread = false;

// The context outlives every handler: it is stopped and joined when the process exits (after
// main returns, when every sandbox, and with it every proxy, is gone).
class IoThread {
 public:
  IoThread() : guard_(boost::asio::make_work_guard(context_)), thread_([this] { run(); }) {}
  ~IoThread() {
    guard_.reset();
    context_.stop();
    if (thread_.joinable()) thread_.join();
  }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& context() noexcept { return context_; }

 private:
  void run() noexcept {
    t_on_io_thread = true;
    // A handler that throws must not end the thread (every sandbox's network would stop with
    // it): the connection it served is already lost, so the loop goes on.
    for (;;) {
      try {
        context_.run();
        return;  // stopped
      } catch (const std::exception&) {
      } catch (...) {
      }
    }
  }

  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace

boost::asio::io_context& io_context() {
  static IoThread thread;
  return thread.context();
}

bool on_io_thread() noexcept { return t_on_io_thread; }

void stop_and_wait(std::function<void()> stop, std::future<void> finished) {
  if (on_io_thread()) {
    stop();
    return;
  }
  boost::asio::post(io_context(), std::move(stop));  // moved: no copy left to hold the state
  finished.wait();
}

}  // namespace forkvm::net
