// The output of `forkvm-bench fork`: sections of distribution rows (n, min, p50, p90, p99, max)
// and single values, rendered as the aligned text of the other benchmarks or as one JSON object
// with the same content. Pure formatting: no KVM, unit-tested.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/stats.hpp"

namespace forkvm::bench {

/// One distribution. `key` names it in JSON; `label` in the text (indent it to show a phase).
struct ReportRow {
  std::string key;
  std::string label;
  std::string unit;  ///< "ms", "MiB", "KiB", ...
  Summary summary;
};

/// One number (a ratio, a delta, a count). Omitted from the text when `present` is false
/// (e.g. a counter this kernel does not have), and null in JSON.
struct ReportValue {
  std::string key;
  std::string label;
  std::string unit;  ///< "x" for a ratio, "" for a count (printed without decimals)
  double value = 0;
  bool present = true;
};

/// One column of a ReportTable; unit "" marks a count (printed without decimals).
struct ReportColumn {
  std::string key;
  std::string label;
  std::string unit;
};

/// Single numbers per item, one row per item (e.g. per level of a chain of forks). A NaN cell
/// is "not measured": "-" in the text, null in JSON.
struct ReportTable {
  std::string key;
  std::vector<ReportColumn> columns;
  std::vector<std::vector<double>> rows;  ///< each as long as `columns`
};

/// A titled group of rows, tables and values, with free-text notes printed under the title.
struct ReportSection {
  std::string key;
  std::string title;
  std::vector<std::string> notes;
  std::vector<ReportRow> rows;
  std::vector<ReportTable> tables;
  std::vector<ReportValue> values;
};

/// Everything one run prints.
struct Report {
  std::vector<std::string> header;  ///< what is measured, and how to read it
  nlohmann::json setup = nlohmann::json::object();  ///< snapshot, sizes, counts (JSON only)
  std::vector<ReportSection> sections;
};

/// The text form: the header lines, then per section its title, notes, rows
/// ("<label>  n=.. min .. p50 .. p90 .. p99 .. max .. (unit)"), tables (a line of
/// "label (unit)" headers, then right-aligned cells) and values ("<label>: v unit").
std::string render_text(const Report& report);

/// The JSON form: {"header": [...], "setup": {...}, "<section key>": {"title", "notes",
/// "<row key>": {"unit","n","min","p50","p90","p99","max","mean"}, "<table key>": {"columns":
/// [{"key","label","unit"}], "rows": [{"<column key>": v|null}]}, "<value key>": {"unit",
/// "value"}}}.
nlohmann::json render_json(const Report& report);

/// Adds the values "<key>_p50" and "<key>_p90": `a` over `ref` at p50 and at p90 ("ratio
/// <what> p50", unit "x"). Adds nothing when either has no samples or a zero reference.
void add_ratio(ReportSection& sec, const std::string& key, const std::string& what, const Summary& a,
               const Summary& ref);

/// A ReportValue from an optional number.
ReportValue optional_value(std::string key, std::string label, std::string unit,
                           const std::optional<double>& v);

}  // namespace forkvm::bench
