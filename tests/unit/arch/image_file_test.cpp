#include "vmm/arch/x86_64/image_file.hpp"

#include <gtest/gtest.h>

#include "arch_test_util.hpp"
#include "forkvm/errors.hpp"

namespace forkvm::x86 {
namespace {

using test::TempFile;

TEST(ImageFile, ReadsInsideTheFile) {
  const TempFile f({1, 2, 3, 4, 5, 6, 7, 8});
  const ImageFile img(f.path());
  EXPECT_EQ(img.size(), 8u);
  EXPECT_EQ(img.read_obj<uint32_t>(4), 0x08070605u);
  uint8_t none[1];
  EXPECT_NO_THROW(img.read_exact(8, std::span<uint8_t>(none, 0)));
}

TEST(ImageFile, RejectsReadsPastTheEnd) {
  const TempFile f({1, 2, 3, 4});
  const ImageFile img(f.path());
  uint8_t buf[4];
  EXPECT_THROW(img.read_exact(1, buf), ImageError);
  EXPECT_THROW(img.read_exact(5, std::span<uint8_t>(buf, 0)), ImageError);
  EXPECT_THROW(img.read_exact(~0ull, buf), ImageError);
}

TEST(ImageFile, MissingFileAndDirectory) {
  try {
    ImageFile img("/nonexistent/forkvm-kernel");
    FAIL() << "no throw";
  } catch (const ImageError& e) {
    EXPECT_EQ(e.path(), "/nonexistent/forkvm-kernel");
  }
  EXPECT_THROW(ImageFile("/"), ImageError);
}

}  // namespace
}  // namespace forkvm::x86
