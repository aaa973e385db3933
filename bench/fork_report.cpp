#include "bench/fork_report.hpp"

#include <cmath>
#include <cstdio>

namespace forkvm::bench {

std::string render_text(const Report& report) {
  std::string out;
  for (const auto& h : report.header) out += h + "\n";
  for (const auto& s : report.sections) {
    out += "\n" + s.title + "\n";
    for (const auto& n : s.notes) out += "  (" + n + ")\n";
    for (const auto& r : s.rows) out += format_row(r.label, r.summary, r.unit) + "\n";
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
    for (const auto& v : s.values) {
      sec[v.key] = {{"label", v.label}, {"unit", v.unit}};
      if (v.present && std::isfinite(v.value)) sec[v.key]["value"] = v.value;
      else sec[v.key]["value"] = nullptr;
    }
    j[s.key] = std::move(sec);
  }
  return j;
}

ReportValue optional_value(std::string key, std::string label, std::string unit,
                           const std::optional<double>& v) {
  ReportValue r{std::move(key), std::move(label), std::move(unit), v.value_or(0), v.has_value()};
  return r;
}

}  // namespace forkvm::bench
