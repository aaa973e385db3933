// The text and JSON forms of a benchmark report.
#include "bench/fork_report.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace forkvm::bench {
namespace {

Report sample() {
  Report r;
  r.header = {"title line", "  in kvm-lab only ratios mean something"};
  r.setup = {{"n", 3}};
  ReportSection s;
  s.key = "fork_latency";
  s.title = "fork latency (ms)";
  s.notes = {"a note"};
  s.rows.push_back({"nopool", "forkvm fork, no pool", "ms", summarize({3, 1, 2})});
  s.rows.push_back({"raw", "  raw", "ms", summarize({})});
  s.values.push_back({"ratio_p50", "ratio p50", "x", 2.0, true});
  s.values.push_back(optional_value("sec", "SecPageTables", "KiB", std::nullopt));
  s.values.push_back({"alive", "children alive", "", 41.6, true});
  r.sections.push_back(s);
  return r;
}

TEST(ForkReport, TextHasHeaderRowsAndPresentValues) {
  const std::string t = render_text(sample());
  EXPECT_EQ(t.rfind("title line\n", 0), 0u) << t;
  EXPECT_NE(t.find("\nfork latency (ms)\n  (a note)\n"), std::string::npos) << t;
  EXPECT_NE(t.find(format_row("forkvm fork, no pool", summarize({1, 2, 3}), "ms")), std::string::npos) << t;
  EXPECT_NE(t.find("ratio p50: 2.000 x\n"), std::string::npos) << t;
  EXPECT_NE(t.find("children alive: 42\n"), std::string::npos) << t;  // a count: no decimals
  EXPECT_EQ(t.find("SecPageTables"), std::string::npos) << t;  // absent values are not printed
}

TEST(ForkReport, RowFormat) {
  const std::string row = format_row("label", summarize({1, 2, 3, 4}), "MiB");
  EXPECT_EQ(row.rfind("label", 0), 0u);
  EXPECT_NE(row.find("n=4"), std::string::npos) << row;
  EXPECT_NE(row.find("p50      2.000"), std::string::npos) << row;
  EXPECT_NE(row.find("max      4.000"), std::string::npos) << row;
  EXPECT_EQ(row.substr(row.size() - 5), "(MiB)") << row;
}

TEST(ForkReport, JsonHasTheSameContent) {
  const auto j = render_json(sample());
  EXPECT_EQ(j["header"][0], "title line");
  EXPECT_EQ(j["setup"]["n"], 3);
  const auto& s = j["fork_latency"];
  EXPECT_EQ(s["title"], "fork latency (ms)");
  EXPECT_EQ(s["notes"][0], "a note");
  EXPECT_EQ(s["nopool"]["n"], 3);
  EXPECT_DOUBLE_EQ(s["nopool"]["p50"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(s["nopool"]["max"].get<double>(), 3.0);
  EXPECT_EQ(s["nopool"]["unit"], "ms");
  EXPECT_EQ(s["raw"]["n"], 0);
  EXPECT_DOUBLE_EQ(s["ratio_p50"]["value"].get<double>(), 2.0);
  EXPECT_EQ(s["ratio_p50"]["unit"], "x");
  EXPECT_TRUE(s["sec"]["value"].is_null());
}

ReportSection table_section() {
  ReportSection s;
  s.key = "chain";
  s.title = "chain";
  ReportTable t;
  t.key = "levels";
  t.columns = {{"level", "level", ""}, {"freeze_ms", "freeze", "ms"}, {"overlay_mib", "overlay", "MiB"}};
  t.rows = {{1, 12.5, 2.25}, {2, 1234.0, std::nan("")}};
  s.tables.push_back(t);
  return s;
}

TEST(ForkReport, TableTextIsAlignedWithUnitsAndDashes) {
  Report r;
  r.sections.push_back(table_section());
  const std::string t = render_text(r);
  // Each column is as wide as its widest cell or header, right-aligned.
  EXPECT_NE(t.find("  level  freeze (ms)  overlay (MiB)\n"), std::string::npos) << t;
  EXPECT_NE(t.find("      1       12.500          2.250\n"), std::string::npos) << t;
  EXPECT_NE(t.find("      2     1234.000              -\n"), std::string::npos) << t;
}

TEST(ForkReport, TableJsonHasColumnsAndNullForNaN) {
  Report r;
  r.sections.push_back(table_section());
  const nlohmann::json j = render_json(r);
  const auto& t = j["chain"]["levels"];
  ASSERT_EQ(t["columns"].size(), 3u);
  EXPECT_EQ(t["columns"][1]["key"], "freeze_ms");
  EXPECT_EQ(t["columns"][1]["unit"], "ms");
  ASSERT_EQ(t["rows"].size(), 2u);
  EXPECT_EQ(t["rows"][0]["level"], 1.0);
  EXPECT_EQ(t["rows"][0]["overlay_mib"], 2.25);
  EXPECT_TRUE(t["rows"][1]["overlay_mib"].is_null());
}

TEST(ForkReport, ShortTableRowsPrintDashes) {
  Report r;
  ReportSection s = table_section();
  s.tables[0].rows = {{3}};
  r.sections.push_back(s);
  EXPECT_NE(render_text(r).find("      3            -              -\n"), std::string::npos)
      << render_text(r);
  EXPECT_TRUE(render_json(r)["chain"]["levels"]["rows"][0]["freeze_ms"].is_null());
}

}  // namespace
}  // namespace forkvm::bench
