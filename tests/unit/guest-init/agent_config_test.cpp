#include "guest-init/agent_config.hpp"

#include <gtest/gtest.h>

namespace forkvm {
namespace {

TEST(AgentConfig, DefaultsToPowerOff) {
  const AgentConfig c = parse_agent_config("console=ttyS0 reboot=k panic=-1\n");
  EXPECT_EQ(c.after_ready, AfterReady::kPowerOff);
  EXPECT_FALSE(c.run_command.has_value());
  EXPECT_TRUE(c.unknown_keys.empty());
}

TEST(AgentConfig, ReadsAfterReady) {
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=shell").after_ready, AfterReady::kShell);
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=idle").after_ready, AfterReady::kIdle);
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=poweroff").after_ready, AfterReady::kPowerOff);
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=serve").after_ready, AfterReady::kServe);
  EXPECT_EQ(to_string(AfterReady::kServe), "serve");
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=\"idle\"").after_ready, AfterReady::kIdle);
}

TEST(AgentConfig, LastKeyWins) {
  EXPECT_EQ(parse_agent_config("forkvm.after_ready=shell forkvm.after_ready=idle").after_ready,
            AfterReady::kIdle);
}

TEST(AgentConfig, RejectsBadAfterReady) {
  EXPECT_THROW(parse_agent_config("forkvm.after_ready=reboot"), AgentConfigError);
  EXPECT_THROW(parse_agent_config("forkvm.after_ready"), AgentConfigError);
  EXPECT_THROW(parse_agent_config("forkvm.after_ready="), AgentConfigError);
}

TEST(AgentConfig, ErrorNamesTheKey) {
  try {
    parse_agent_config("forkvm.after_ready=sleep");
    FAIL() << "no error";
  } catch (const AgentConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("forkvm.after_ready"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sleep"), std::string::npos) << e.what();
  }
}

TEST(AgentConfig, DecodesRun) {
  EXPECT_EQ(parse_agent_config("forkvm.run=echo%20hi%3B%20exit%203").run_command,
            "echo hi; exit 3");
  EXPECT_EQ(parse_agent_config("a=1 forkvm.run=\"echo hi there\" b").run_command,
            "echo hi there");
}

TEST(AgentConfig, RejectsBadRun) {
  EXPECT_THROW(parse_agent_config("forkvm.run"), AgentConfigError);
  EXPECT_THROW(parse_agent_config("forkvm.run="), AgentConfigError);
  EXPECT_THROW(parse_agent_config("forkvm.run=%zz"), AgentConfigError);
}

TEST(AgentConfig, ReadsRootDisk) {
  EXPECT_FALSE(parse_agent_config("forkvm.after_ready=serve").root_disk.has_value());
  EXPECT_EQ(parse_agent_config("forkvm.root=rootfs").root_disk, "rootfs");
  EXPECT_EQ(parse_agent_config("forkvm.root=A.b_c-9 forkvm.root=disk1").root_disk, "disk1");
}

TEST(AgentConfig, ReadsTheRootUpperDiskOnlyWithARoot) {
  const AgentConfig c = parse_agent_config("forkvm.root=rootfs forkvm.root_upper=upper");
  EXPECT_EQ(c.root_upper_disk, "upper");
  EXPECT_THROW(parse_agent_config("forkvm.root_upper=upper"), AgentConfigError);
  EXPECT_THROW(parse_agent_config("forkvm.root=rootfs forkvm.root_upper=../x"), AgentConfigError);
}

TEST(AgentConfig, RejectsRootDisksThatCouldNameAnotherFile) {
  for (const char* bad : {"forkvm.root", "forkvm.root=", "forkvm.root=../vda", "forkvm.root=a/b",
                          "forkvm.root=\"a b\"", "forkvm.root=123456789012345678901"}) {
    EXPECT_THROW(parse_agent_config(bad), AgentConfigError) << bad;
  }
}

TEST(AgentConfig, CollectsUnknownForkvmKeysOnly) {
  const AgentConfig c = parse_agent_config("foo=1 forkvm.bogus=2 forkvm.other forkvmish=3");
  EXPECT_EQ(c.unknown_keys, (std::vector<std::string>{"forkvm.bogus", "forkvm.other"}));
}

TEST(AgentConfig, ToStringRoundTrips) {
  for (AfterReady m : {AfterReady::kPowerOff, AfterReady::kShell, AfterReady::kIdle}) {
    EXPECT_EQ(parse_agent_config("forkvm.after_ready=" + std::string(to_string(m))).after_ready, m);
  }
}

}  // namespace
}  // namespace forkvm
