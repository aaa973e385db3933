// VmConfig::ram_backing: validate() takes the three backings and refuses anything else with a
// ConfigError that names the field, before any file is opened; to_string names each.
#include <gtest/gtest.h>

#include <string>

#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"

namespace forkvm {
namespace {

VmConfig config_with(RamBacking backing) {
  VmConfig c;
  c.kernel = "/nonexistent/forkvm-test-kernel";  // validate() reaches the files last
  c.ram_backing = backing;
  return c;
}

TEST(RamBacking, DefaultIsTheMemfd) { EXPECT_EQ(VmConfig{}.ram_backing, RamBacking::kMemfd); }

TEST(RamBacking, EveryBackingPassesToTheFileChecks) {
  // ImageError: the configuration was accepted up to the (missing) kernel image.
  for (RamBacking b : {RamBacking::kMemfd, RamBacking::kMemfdHugePages, RamBacking::kAnonymous}) {
    EXPECT_THROW(validate(config_with(b)), ImageError) << to_string(b);
  }
}

TEST(RamBacking, ValueOutsideTheEnumIsAConfigError) {
  for (int v : {-1, 3, 1000}) {
    try {
      validate(config_with(static_cast<RamBacking>(v)));
      ADD_FAILURE() << "accepted ram_backing " << v;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("ram_backing"), std::string::npos) << e.what();
    }
  }
}

TEST(RamBacking, Names) {
  EXPECT_EQ(to_string(RamBacking::kMemfd), "memfd");
  EXPECT_EQ(to_string(RamBacking::kMemfdHugePages), "memfd-huge");
  EXPECT_EQ(to_string(RamBacking::kAnonymous), "anonymous");
}

}  // namespace
}  // namespace forkvm
