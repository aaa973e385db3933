// unit tier: AgentClient::close_nowait(), what Sandbox::shutdown() does on the caller's thread.
// It must not wait for the reader thread to end, yet once it returns no stream callback runs
// any more: one that is running is waited for, and one that closes its own client from inside
// does not deadlock. Against HostileAgent, which streams stdout frames without end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "contract/protocol/messages.hpp"
#include "forkvm/agent_client.hpp"
#include "forkvm/sandbox_errors.hpp"
#include "tests/unit/sandbox/hostile_agent.hpp"

namespace forkvm {
namespace {

using namespace std::chrono_literals;
namespace proto = forkvm::protocol;
using test::HostileAgent;
using test::HostileWire;

// stdout frames every millisecond for as long as the connection lives; never the exit frame.
HostileAgent endless_stdout() {
  return HostileAgent([](const proto::Frame& req, HostileWire& w) {
    const uint64_t id = req.header["id"].get<uint64_t>();
    if (req.header["type"].get<std::string>() != proto::msg::kExec) return;
    w.send({{"type", "started"}, {"id", id}, {"pid", 7}});
    while (w.send({{"type", "stdout"}, {"id", id}}, "x")) std::this_thread::sleep_for(1ms);
  });
}

std::unique_ptr<AgentClient> connect_to(const HostileAgent& agent) {
  return AgentClient::connect(test::client_options(agent.path(), 10s));
}

TEST(CloseNowait, WaitsForARunningCallbackAndNoneRunsAfterwards) {
  HostileAgent agent = endless_stdout();
  auto client = connect_to(agent);
  std::atomic<int> calls{0};
  std::atomic<bool> in_slow_call{false};
  std::atomic<bool> slow_call_done{false};
  std::promise<void> entered;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view) {
    if (calls.fetch_add(1) == 3) {  // the fourth chunk: a slow callback that close must wait out
      in_slow_call = true;
      entered.set_value();
      std::this_thread::sleep_for(300ms);
      slow_call_done = true;
      in_slow_call = false;
    }
  };
  auto exec = std::async(std::launch::async, [&] { return client->exec_stream({"yes"}, {}, cb); });
  ASSERT_EQ(entered.get_future().wait_for(10s), std::future_status::ready);
  client->close_nowait(std::make_exception_ptr(InvalidStateError("closed by the test")));
  EXPECT_TRUE(slow_call_done) << "close_nowait() returned while a callback was still running";
  EXPECT_FALSE(in_slow_call);
  const int calls_at_close = calls.load();
  EXPECT_THROW(exec.get(), InvalidStateError);  // the pending exec failed with the reason given
  std::this_thread::sleep_for(100ms);  // the agent keeps sending meanwhile (until it sees EOF)
  EXPECT_EQ(calls.load(), calls_at_close) << "a callback ran after close_nowait() returned";
  EXPECT_FALSE(client->connected());
  EXPECT_THROW(client->ping(), InvalidStateError);
  client->close();  // joins the reader; idempotent with what close_nowait() did
}

TEST(CloseNowait, FromInsideACallbackDoesNotDeadlock) {
  HostileAgent agent = endless_stdout();
  auto client = connect_to(agent);
  std::atomic<int> calls{0};
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view) {
    if (calls.fetch_add(1) == 0) client->close_nowait();  // e.g. a callback shutting its sandbox
  };
  auto exec = std::async(std::launch::async, [&] { return client->exec_stream({"yes"}, {}, cb); });
  ASSERT_EQ(exec.wait_for(10s), std::future_status::ready) << "close_nowait() from a callback hung";
  EXPECT_THROW(exec.get(), InvalidStateError);
  EXPECT_EQ(calls.load(), 1);
  client.reset();  // the destructor joins the reader, which already returned
}

}  // namespace
}  // namespace forkvm
