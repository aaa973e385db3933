// unit tier: every #include between forkvm's folders points down the floors that
// include_rules.txt lists (devices and snapshots stand on base/ and memory/, never on vmm/; the
// host and the agent share only contract/). A wrong-way include fails here, naming the file and
// line. `unit_include_direction --gtest_filter=IncludeGraph.*` prints which folder includes
// which, with counts; FORKVM_INCLUDE_ROOT=<checkout> prints it for another checkout.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace forkvm {
namespace {

namespace fs = std::filesystem;

/// folder -> the folders it may include ("public" means include/forkvm/).
using Rules = std::map<std::string, std::set<std::string>>;

Rules parse_rules(std::istream& in) {
  Rules rules;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string folder, allowed;
    if (!(words >> folder)) continue;
    auto& set = rules[folder];
    while (words >> allowed) {
      if (allowed == "public") set.insert("include/forkvm/");
      else if (allowed != "-") set.insert(allowed);
    }
  }
  return rules;
}

Rules load_rules() {
  std::ifstream in(fs::path(FORKVM_SOURCE_DIR) / "tests/unit/package/include_rules.txt");
  if (!in) throw std::runtime_error("cannot read include_rules.txt");
  return parse_rules(in);
}

/// The longest rule folder holding `path` (relative, '/'-separated), or "" for none.
std::string folder_of(const Rules& rules, const std::string& path) {
  std::string best;
  for (const auto& [folder, allowed] : rules) {
    if (path.starts_with(folder) && folder.size() > best.size()) best = folder;
  }
  return best;
}

struct Include {
  std::string file;  ///< the including file, relative to the root
  int line = 0;
  std::string target;  ///< the included file, relative to the root
};

/// Every quoted #include of a production source under `root` that names a file of the tree
/// (rooted at the top, as the code writes them, or relative to the including file).
std::vector<Include> includes_under(const fs::path& root, const Rules& rules) {
  static const std::regex kInclude(R"re(^\s*#\s*include\s+"([^"]+)")re");
  std::vector<Include> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string rel = fs::relative(it->path(), root).generic_string();
    if (it->is_directory() && (rel == "tests" || rel == "build" || rel.starts_with("build") ||
                               rel.starts_with("."))) {
      it.disable_recursion_pending();
      continue;
    }
    const auto ext = it->path().extension();
    if (!it->is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
    if (folder_of(rules, rel).empty()) continue;
    std::ifstream in(it->path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      std::smatch m;
      if (!std::regex_search(line, m, kInclude)) continue;
      std::string target = m[1].str();
      if (target.starts_with("forkvm/")) target = "include/" + target;
      if (!fs::exists(root / target)) {
        const fs::path sibling = fs::path(rel).parent_path() / target;
        if (!fs::exists(root / sibling)) continue;  // a system or generated header
        target = sibling.lexically_normal().generic_string();
      }
      out.push_back({rel, n, target});
    }
  }
  return out;
}

/// "file:line: folder -> folder (target)" for every include the rules do not allow.
std::vector<std::string> violations(const fs::path& root, const Rules& rules) {
  std::vector<std::string> out;
  for (const Include& inc : includes_under(root, rules)) {
    const std::string from = folder_of(rules, inc.file);
    const std::string to = folder_of(rules, inc.target);
    if (to.empty() || from == to || rules.at(from).contains(to)) continue;
    out.push_back(inc.file + ":" + std::to_string(inc.line) + ": " + from + " may not include " +
                  to + " (" + inc.target + ")");
  }
  return out;
}

/// A scratch tree for the tests of the checker itself.
class ScratchTree {
 public:
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((dir_.path() / rel).parent_path());
    std::ofstream(dir_.path() / rel) << text;
  }
  const fs::path& root() const { return dir_.path(); }

 private:
  test::TempDir dir_{"forkvm-include"};
};

const char* kTestRules = R"(
base/ public
devices/ public base/
vmm/ public base/ devices/
include/forkvm/ -
)";

TEST(IncludeDirection, TheCheckerFindsAnIncludePointingUp) {
  std::istringstream in(kTestRules);
  const Rules rules = parse_rules(in);
  ScratchTree t;
  t.write("include/forkvm/errors.hpp", "#pragma once\n");
  t.write("base/fd.hpp", "#include \"forkvm/errors.hpp\"\n");
  t.write("vmm/vm.cpp", "#include \"devices/bus.hpp\"\n#include \"base/fd.hpp\"\n");
  t.write("devices/bus.hpp", "#include <vector>\n#include \"base/fd.hpp\"\n");
  EXPECT_TRUE(violations(t.root(), rules).empty());
  // The wrong way: a device standing on the VMM, and the floor reaching up to the devices.
  t.write("devices/bus.cpp", "#include \"devices/bus.hpp\"\n\n#include \"vmm/vm_impl.hpp\"\n");
  t.write("vmm/vm_impl.hpp", "#pragma once\n");
  t.write("base/event_fd.cpp", "#include \"../devices/bus.hpp\"\n");
  const auto v = violations(t.root(), rules);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].find("base/event_fd.cpp:1: base/ may not include devices/"), 0u) << v[0];
  EXPECT_EQ(v[1], "devices/bus.cpp:3: devices/ may not include vmm/ (vmm/vm_impl.hpp)");
}

TEST(IncludeDirection, EveryIncludeOfTheTreeFollowsTheRules) {
  const Rules rules = load_rules();
  // Every production folder of the tree has a rule: a new folder must say where it stands.
  for (const char* dir : {"base", "memory", "contract", "devices", "snapshot", "vmm", "net", "sandbox",
                          "guest-init", "tools/cli", "tools/initramfs", "bench", "include/forkvm"}) {
    EXPECT_FALSE(folder_of(rules, std::string(dir) + "/x.cpp").empty()) << dir;
  }
  const auto found = includes_under(FORKVM_SOURCE_DIR, rules);
  EXPECT_GT(found.size(), 300u) << "the scan found too few includes to be looking at the tree";
  const auto v = violations(FORKVM_SOURCE_DIR, rules);
  std::string all;
  for (const auto& s : v) all += "  " + s + "\n";
  EXPECT_TRUE(v.empty()) << v.size() << " includes point the wrong way:\n" << all;
}

TEST(IncludeGraph, PrintsWhichFolderIncludesWhich) {
  const Rules rules = load_rules();
  const char* other = std::getenv("FORKVM_INCLUDE_ROOT");
  const fs::path root = other ? fs::path(other) : fs::path(FORKVM_SOURCE_DIR);
  std::map<std::pair<std::string, std::string>, int> edges;
  for (const Include& inc : includes_under(root, rules)) {
    const std::string from = folder_of(rules, inc.file), to = folder_of(rules, inc.target);
    if (!to.empty() && from != to) ++edges[{from, to}];
  }
  std::cout << "includes between folders of " << root.string() << " (count, then "
            << "'WRONG WAY' where include_rules.txt does not allow it):\n";
  for (const auto& [edge, count] : edges) {
    const bool ok = rules.at(edge.first).contains(edge.second);
    std::cout << "  " << edge.first << " -> " << edge.second << "  " << count
              << (ok ? "" : "  WRONG WAY") << "\n";
  }
  EXPECT_FALSE(edges.empty());
}

}  // namespace
}  // namespace forkvm
