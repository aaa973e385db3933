#include "base/json_reader.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace forkvm {
namespace {

using nlohmann::json;

/// The SnapshotError message `f` throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonReader, ReadsEveryKindOfMember) {
  const std::vector<uint8_t> bytes = {1, 2, 3, 250};
  const json j = {{"u8", 200},          {"i32", -5},     {"flag", 1},
                  {"on", true},         {"name", "abc"}, {"blob", json_blob(bytes)},
                  {"list", {1, 2, 3}},  {"inner", {{"x", 7}}}};
  JsonReader r(j, "dev");
  EXPECT_EQ(r.num<uint8_t>("u8"), 200);
  EXPECT_EQ(r.num<int32_t>("i32"), -5);
  EXPECT_EQ(r.flag("flag"), 1);
  EXPECT_TRUE(r.boolean("on"));
  EXPECT_EQ(r.string("name", 3), "abc");
  EXPECT_EQ(r.blob("blob", 4, 4), bytes);
  const json& list = r.array("list", 3);
  EXPECT_EQ(json_element<uint16_t>(list[2], r.path("list[2]")), 3);
  JsonReader inner = r.object("inner");
  EXPECT_EQ(inner.num<uint64_t>("x"), 7u);
  inner.finish();
  EXPECT_NO_THROW(r.finish());
}

TEST(JsonReader, NamesTheFieldByItsPathAndContext) {
  const json j = {{"inner", {{"x", 300}}}};
  JsonReader r(j, "vcpu[0]", "/snap/state.json");
  JsonReader inner = r.object("inner");
  const std::string m = error_of([&] { inner.num<uint8_t>("x"); });
  EXPECT_EQ(m.rfind("/snap/state.json: vcpu[0].inner.x: ", 0), 0u) << m;
  EXPECT_NE(m.find("above the maximum 255"), std::string::npos) << m;
  // A top-level reader (empty path) names the key alone.
  JsonReader top(j, "", "state.json");
  EXPECT_EQ(error_of([&] { top.num<uint8_t>("missing"); }), "state.json: missing: missing");
}

TEST(JsonReader, RefusesWrongTypesInsteadOfConverting) {
  const json j = {{"neg", -1}, {"float", 1.0}, {"str", "1"}, {"null", nullptr}, {"int", 1},
                  {"bool", false}};
  JsonReader r(j, "c");
  for (const char* key : {"neg", "float", "str", "null", "bool"}) {
    EXPECT_NE(error_of([&] { r.num<uint32_t>(key); }), "") << key;
  }
  EXPECT_NE(error_of([&] { r.boolean("int"); }), "");   // 1 is not true
  EXPECT_NE(error_of([&] { r.flag("bool"); }), "");     // false is not 0
  EXPECT_NE(error_of([&] { r.string("int", 10); }), "");
  EXPECT_NE(error_of([&] { r.array("str", 10); }), "");
  EXPECT_NE(error_of([&] { r.object("int"); }), "");
  EXPECT_NE(error_of([&] { r.num<int8_t>("float"); }), "");
}

TEST(JsonReader, EnforcesLengthsBeforeDecoding) {
  const std::vector<uint8_t> ten(10, 0xab);
  const json j = {{"blob", json_blob(ten)}, {"name", "abcd"}, {"list", {1, 2}},
                  {"bad64", "Zh=="}};
  JsonReader r(j, "c");
  EXPECT_NE(error_of([&] { r.blob("blob", 0, 9); }).find("longer than 9 bytes"), std::string::npos);
  EXPECT_NE(error_of([&] { r.blob("blob", 11, 20); }).find("expected between 11 and 20"),
            std::string::npos);
  EXPECT_EQ(r.blob("blob", 10, 10), ten);
  EXPECT_NE(error_of([&] { r.string("name", 3); }), "");
  EXPECT_NE(error_of([&] { r.array("list", 1); }), "");
  EXPECT_NE(error_of([&] { r.blob("bad64", 0, 8); }).find("not canonical base64"),
            std::string::npos);
}

TEST(JsonReader, FinishRejectsFieldsNobodyRead) {
  const json j = {{"a", 1}, {"injected", 2}};
  JsonReader r(j, "dev");
  r.num<uint8_t>("a");
  EXPECT_EQ(error_of([&] { r.finish(); }), "snapshot: dev.injected: unknown field");
  EXPECT_NE(error_of([] { JsonReader(json::array(), "dev"); }).find("expected an object"),
            std::string::npos);
}

}  // namespace
}  // namespace forkvm
