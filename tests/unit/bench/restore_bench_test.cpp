// `forkvm-bench restore`'s pure parts: its options, the QMP lines it sends and reads, and the
// serial responder's text (the QEMU reference's guest side).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bench/qmp.hpp"
#include "bench/restore_options.hpp"
#include "bench/serial_responder.hpp"
#include "contract/run_command.hpp"

namespace forkvm::bench {
namespace {

RestoreBenchOptions parse_restore(std::vector<std::string> a) {
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  return parse_restore_options(std::span<char* const>(argv.data(), argv.size()), "/default-images");
}

/// The fields parse_restore_options sets, in one comparable value.
struct Fields {
  unsigned n, vcpus, memory_mib;
  std::string image_dir;
  double timeout_s;
  bool qemu, json;
  bool operator==(const Fields&) const = default;
};
Fields fields(const RestoreBenchOptions& o) {
  return {o.n, o.vcpus, o.memory_mib, o.image_dir, o.timeout_s, o.qemu, o.json};
}

TEST(RestoreBenchOptions, Defaults) {
  EXPECT_TRUE(fields(parse_restore({})) == (Fields{10, 1, 256, "/default-images", 300, true, false}));
}

TEST(RestoreBenchOptions, ParsesEveryOption) {
  const auto o = parse_restore({"-n", "4", "--memory", "512", "--vcpus", "2", "--image-dir", "/img", "--timeout", "90",
                        "--no-qemu", "--json"});
  EXPECT_TRUE(fields(o) == (Fields{4, 2, 512, "/img", 90, false, true}));
}

TEST(RestoreBenchOptions, RefusesBadInput) {
  EXPECT_THROW(parse_restore({"--bogus"}), std::exception);
  EXPECT_THROW(parse_restore({"-n"}), std::exception);
  EXPECT_THROW(parse_restore({"-n", "0"}), std::exception);
  EXPECT_THROW(parse_restore({"-n", "x"}), std::exception);
  EXPECT_THROW(parse_restore({"--memory", "16"}), std::exception);
  EXPECT_THROW(parse_restore({"--memory", "8192"}), std::exception);
  EXPECT_THROW(parse_restore({"--vcpus", "0"}), std::exception);
  EXPECT_THROW(parse_restore({"--timeout", "0"}), std::exception);
  EXPECT_THROW(parse_restore({"--no-verify"}), std::exception);  // both ways are always measured
}

TEST(Qmp, ClassifiesEachKindOfLine) {
  const auto g = parse_qmp_line(
      R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}})"
      "\r\n");
  EXPECT_EQ(g.kind, QmpMessage::Kind::kGreeting);
  EXPECT_EQ(qmp_greeting_version(g.body), "7.2.22");

  const auto r = parse_qmp_line(R"({"return": {"status": "inmigrate", "singlestep": false, "running": false}})");
  EXPECT_EQ(r.kind, QmpMessage::Kind::kReturn);
  const auto st = parse_query_status(r.body);
  EXPECT_FALSE(st.running);
  EXPECT_EQ(st.status, "inmigrate");

  const auto e = parse_qmp_line(R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"})");
  EXPECT_EQ(e.kind, QmpMessage::Kind::kEvent);
  EXPECT_EQ(e.text, "RESUME");
  EXPECT_TRUE(e.body.is_null());

  const auto x = parse_qmp_line(R"({"error": {"class": "GenericError", "desc": "no such file"}})");
  EXPECT_EQ(x.kind, QmpMessage::Kind::kError);
  EXPECT_EQ(x.text, "GenericError: no such file");
}

TEST(Qmp, RefusesWhatIsNotAMessage) {
  EXPECT_THROW(parse_qmp_line(R"({"return": {"status": "run)"), std::runtime_error);  // truncated
  EXPECT_THROW(parse_qmp_line("[1, 2]"), std::runtime_error);
  EXPECT_THROW(parse_qmp_line(R"({"hello": 1})"), std::runtime_error);
  EXPECT_THROW(parse_qmp_line(R"({"return": {}, "event": "STOP"})"), std::runtime_error);
  EXPECT_THROW(parse_qmp_line(R"({"event": 5})"), std::runtime_error);
  EXPECT_THROW(qmp_greeting_version(nlohmann::json::object()), std::runtime_error);
  EXPECT_THROW(parse_query_status(nlohmann::json::object({{"running", "yes"}, {"status", "running"}})),
               std::runtime_error);
  EXPECT_THROW(parse_migration_status(nlohmann::json::array()), std::runtime_error);
}

TEST(Qmp, BuildsCommandLines) {
  EXPECT_EQ(qmp_command("qmp_capabilities"), "{\"execute\":\"qmp_capabilities\"}\n");
  EXPECT_EQ(qmp_command("migrate", {{"uri", "exec:cat > '/x'"}}),
            "{\"arguments\":{\"uri\":\"exec:cat > '/x'\"},\"execute\":\"migrate\"}\n");
  EXPECT_THROW(qmp_command("migrate", nlohmann::json::array({1})), std::runtime_error);
}

TEST(Qmp, ReadsTheMigrationStatus) {
  EXPECT_EQ(parse_migration_status(nlohmann::json::object()), "");  // none started yet
  EXPECT_EQ(parse_migration_status({{"status", "active"}, {"ram", {{"total", 1}}}}), "active");
  EXPECT_EQ(parse_migration_status({{"status", "completed"}}), "completed");
}

TEST(SerialResponder, MarkersDoNotAppearInTheKernelCommandLine) {
  // The kernel prints its command line on the console the host searches.
  const std::string cmdline = serial_responder_cmdline();
  EXPECT_EQ(cmdline.find(kResponderReady), std::string::npos);
  EXPECT_EQ(cmdline.find("ANSWER req-"), std::string::npos);
  EXPECT_EQ(cmdline.find(' ', cmdline.find("forkvm.run=")), std::string::npos);  // one kernel word
  EXPECT_NE(cmdline.find("forkvm.run=" + encode_run_command(serial_responder_command())), std::string::npos);
  EXPECT_NE(serial_responder_command().find("/bin/true"), std::string::npos);
}

TEST(SerialResponder, FindsOnlyTheCompleteAnswerToItsRequest) {
  EXPECT_EQ(responder_request(3), "req-3\n");
  EXPECT_FALSE(responder_answered("boot\nANSWER req-1", 1));        // line not ended yet
  EXPECT_TRUE(responder_answered("boot\nANSWER req-1\n", 1));
  EXPECT_TRUE(responder_answered("ANSWER req-1\r\n", 1));
  EXPECT_FALSE(responder_answered("ANSWER req-12\n", 1));           // another request
  EXPECT_TRUE(responder_answered("ANSWER req-12\nANSWER req-1\n", 1));
  EXPECT_FALSE(responder_answered("req-1\n", 1));                   // the request itself
}

}  // namespace
}  // namespace forkvm::bench
