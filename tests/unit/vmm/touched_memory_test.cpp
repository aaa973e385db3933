// united_touches(): what an image learns from several VMs' first execs.
#include "vmm/touched_memory.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace forkvm {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;
constexpr uint64_t kP = 4096;

TouchedMemory touches(Ranges written, Ranges read) {
  TouchedMemory t;
  t.written = std::move(written);
  t.read = std::move(read);
  return t;
}

TEST(UnitedTouches, JoinsWhatEitherTouched) {
  const TouchedMemory a = touches({{0, kP}, {10 * kP, 2 * kP}}, {{20 * kP, kP}});
  const TouchedMemory b = touches({{kP, kP}, {11 * kP, 4 * kP}}, {{40 * kP, kP}, {21 * kP, kP}});
  const TouchedMemory u = united_touches(a, b);
  EXPECT_EQ(u.written, (Ranges{{0, 2 * kP}, {10 * kP, 5 * kP}}));  // adjacent and overlapping joined
  EXPECT_EQ(u.read, (Ranges{{20 * kP, 2 * kP}, {40 * kP, kP}}));  // sorted
  EXPECT_EQ(u.written_bytes(), 7 * kP);
  EXPECT_EQ(u.read_bytes(), 3 * kP);
}

TEST(UnitedTouches, APageOneWroteIsNotAlsoRead) {
  // b wrote pages a only read: they are copied (written), which maps them as well.
  const TouchedMemory a = touches({}, {{0, 10 * kP}});
  const TouchedMemory b = touches({{2 * kP, kP}, {5 * kP, 2 * kP}, {9 * kP, 3 * kP}}, {});
  const TouchedMemory u = united_touches(a, b);
  EXPECT_EQ(u.written, (Ranges{{2 * kP, kP}, {5 * kP, 2 * kP}, {9 * kP, 3 * kP}}));
  EXPECT_EQ(u.read, (Ranges{{0, 2 * kP}, {3 * kP, 2 * kP}, {7 * kP, 2 * kP}}));
  // Nothing read is lost, nothing is counted twice.
  EXPECT_EQ(u.written_bytes() + u.read_bytes(), 12 * kP);
}

TEST(UnitedTouches, WithItselfOrNothingItIsTheSame) {
  const TouchedMemory a = touches({{0, kP}, {8 * kP, kP}}, {{4 * kP, 2 * kP}});
  const TouchedMemory same = united_touches(a, a);
  EXPECT_EQ(same.written, a.written);
  EXPECT_EQ(same.read, a.read);
  const TouchedMemory alone = united_touches(a, TouchedMemory{});
  EXPECT_EQ(alone.written, a.written);
  EXPECT_EQ(alone.read, a.read);
  EXPECT_TRUE(united_touches(TouchedMemory{}, TouchedMemory{}).written.empty());
}

}  // namespace
}  // namespace forkvm
