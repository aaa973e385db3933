#include "bench/fork_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace forkvm::bench {
namespace {

std::string cell_text(double v, const std::string& unit) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, unit.empty() ? "%.0f" : "%.3f", v);  // "": a count
  return buf;
}

std::string table_text(const ReportTable& t) {
  std::vector<std::string> heads;
  std::vector<size_t> widths;
  for (const auto& c : t.columns) {
    heads.push_back(c.unit.empty() ? c.label : c.label + " (" + c.unit + ")");
    widths.push_back(heads.back().size());
  }
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : t.rows) {
    cells.emplace_back();
    for (size_t i = 0; i < t.columns.size(); ++i) {
      cells.back().push_back(cell_text(i < row.size() ? row[i] : NAN, t.columns[i].unit));
      widths[i] = std::max(widths[i], cells.back().back().size());
    }
  }
  auto line = [&](const std::vector<std::string>& items) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      out += "  " + std::string(widths[i] - items[i].size(), ' ') + items[i];
    }
    return out + "\n";
  };
  std::string out = line(heads);
  for (const auto& c : cells) out += line(c);
  return out;
}

}  // namespace

std::string render_text(const Report& report) {
  std::string out;
  for (const auto& h : report.header) out += h + "\n";
  for (const auto& s : report.sections) {
    out += "\n" + s.title + "\n";
    for (const auto& n : s.notes) out += "  (" + n + ")\n";
    for (const auto& r : s.rows) out += format_row(r.label, r.summary, r.unit) + "\n";
    for (const auto& t : s.tables) out += table_text(t);
    for (const auto& v : s.values) {
      if (!v.present) continue;
      char buf[64];
      std::snprintf(buf, sizeof buf, v.unit.empty() ? "%.0f" : "%.3f", v.value);  // "": a count
      out += v.label + ": " + buf + (v.unit.empty() ? "" : " " + v.unit) + "\n";
    }
  }
  return out;
}

nlohmann::json render_json(const Report& report) {
  nlohmann::json j = nlohmann::json::object();
  j["header"] = report.header;
  j["setup"] = report.setup;
  for (const auto& s : report.sections) {
    nlohmann::json sec = nlohmann::json::object();
    sec["title"] = s.title;
    sec["notes"] = s.notes;
    for (const auto& r : s.rows) {
      const Summary& m = r.summary;
      sec[r.key] = {{"label", r.label}, {"unit", r.unit}, {"n", m.n},      {"min", m.min},
                    {"p50", m.p50},     {"p90", m.p90},   {"p99", m.p99},  {"max", m.max},
                    {"mean", m.mean}};
    }
    for (const auto& t : s.tables) {
      nlohmann::json cols = nlohmann::json::array();
      for (const auto& c : t.columns) cols.push_back({{"key", c.key}, {"label", c.label}, {"unit", c.unit}});
      nlohmann::json rows = nlohmann::json::array();
      for (const auto& row : t.rows) {
        nlohmann::json o = nlohmann::json::object();
        for (size_t i = 0; i < t.columns.size(); ++i) {
          const double v = i < row.size() ? row[i] : NAN;
          if (std::isfinite(v)) o[t.columns[i].key] = v;
          else o[t.columns[i].key] = nullptr;
        }
        rows.push_back(std::move(o));
      }
      sec[t.key] = {{"columns", std::move(cols)}, {"rows", std::move(rows)}};
    }
    for (const auto& v : s.values) {
      sec[v.key] = {{"label", v.label}, {"unit", v.unit}};
      if (v.present && std::isfinite(v.value)) sec[v.key]["value"] = v.value;
      else sec[v.key]["value"] = nullptr;
    }
    j[s.key] = std::move(sec);
  }
  return j;
}

void add_ratio(ReportSection& sec, const std::string& key, const std::string& what, const Summary& a,
               const Summary& ref) {
  if (ref.n == 0 || a.n == 0 || ref.p50 <= 0 || ref.p90 <= 0) return;
  sec.values.push_back({key + "_p50", "ratio " + what + " p50", "x", a.p50 / ref.p50, true});
  sec.values.push_back({key + "_p90", "ratio " + what + " p90", "x", a.p90 / ref.p90, true});
}

ReportValue optional_value(std::string key, std::string label, std::string unit,
                           const std::optional<double>& v) {
  ReportValue r{std::move(key), std::move(label), std::move(unit), v.value_or(0), v.has_value()};
  return r;
}

}  // namespace forkvm::bench
