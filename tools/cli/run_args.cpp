#include "tools/cli/run_args.hpp"

#include "contract/protocol/field_rules.hpp"
#include "tools/cli/add_dir_spec.hpp"
#include "tools/cli/args.hpp"
#include <cstdlib>

#include "tools/cli/disk_spec.hpp"
#include "tools/cli/egress_options.hpp"
#include "tools/cli/launch_plan.hpp"
#include "tools/cli/net_spec.hpp"
#include "tools/cli/rootfs_option.hpp"

namespace forkvm::cli {

const char* const kRunUsage =
    "usage: forkvm run [--vcpus N] [--memory MiB] [--env K=V]... [--cwd DIR] [--timeout S]\n"
    "                  [--json] [--kernel FILE --initramfs FILE] [--boot-timeout S]\n"
    "                  [--disk PATH[:ro|:rw|:cow][,id=ID]]... [--rootfs IMG|minimal]\n"
    "                  [--add-dir HOST:GUEST[:ro|:rw]]...\n"
    "                  [--allow-host H[:PORT]]... [--deny-host H[:PORT]]...\n"
    "                  [--secret NAME@HOST[:HEADER][,file=PATH]]... [--egress-log FILE]\n"
    "                  [-p HOSTPORT:GUESTPORT | -p unix:PATH:GUESTPORT]...\n"
    "                  [--net tap=NAME[,netns=PATH][,mac=MAC]]\n"
    "                  [--snapshot DIR] (-- ARGV... | --launch-plan FILE)\n"
    "Boots a transient sandbox, runs one command in it, and tears it down. stdout and stderr\n"
    "stream to forkvm's as they arrive (--json: one JSON object with stdout, stderr, exit_code,\n"
    "signal, timed_out and duration_ms instead). Exits with the command's status, 128+N when\n"
    "signal N killed it, 124 when --timeout killed it, 127/126 when it could not be executed\n"
    "(not found / permission denied), 2 on a usage error, 3 when the VM could not be set up,\n"
    "4 when the guest failed, 130/143 on Ctrl-C/SIGTERM (the VM is torn down).\n"
    "--launch-plan reads the command from a launch.json: apps[0].entrypoint.command (argv),\n"
    "apps[0].entrypoint.working_dir or apps[0].working_dir, apps[0].env overridden by\n"
    "apps[0].entrypoint.env; --env and --cwd override the plan. Exactly one app is accepted.\n"
    "--snapshot DIR runs the command in a copy-on-write fork of a snapshot (forkvm snapshot\n"
    "create) instead of booting: the files, processes and machine size are the snapshot's, so\n"
    "--vcpus, --memory, --kernel, --initramfs, --disk, --rootfs and --add-dir cannot be\n"
    "combined with it.\n"
    "--rootfs picks the root filesystem: an ext4 image mounted read-only under a writable\n"
    "overlay in guest RAM (the default is the built-in Debian 12 image with python3 when the\n"
    "built-in kernel boots), or 'minimal' for the initramfs alone (busybox; fastest to boot).\n"
    "--add-dir packs a host directory into an ext4 image and mounts it at GUEST (read-only by\n"
    "default); with :rw the guest's changes (new, changed and deleted files; links as links)\n"
    "are copied back to HOST after the command exits, before the VM is torn down.\n"
    "Network: the guest reaches out only through forkvm's HTTP(S) proxy (HTTP_PROXY and\n"
    "HTTPS_PROXY are set in the guest), which denies everything but what --allow-host allows:\n"
    "a name, *.suffix, *, an address or a CIDR block (private and loopback addresses only by\n"
    "address or block), optionally with :PORT; the first matching --allow-host/--deny-host\n"
    "decides. --secret puts a placeholder in the guest's $NAME and the real value (from the\n"
    "host's $NAME or the file) into requests to HOST only, in HEADER when given.\n"
    "--egress-log appends one JSON line per request (decision, rule, bytes each way).\n"
    "-p makes the guest's 127.0.0.1:GUESTPORT reachable at the host's 127.0.0.1:HOSTPORT\n"
    "while the command runs (HOSTPORT 0: a free port, printed on stderr), or at the Unix\n"
    "socket PATH (mode 0600; removed afterwards).\n";

RunOptions parse_run_args(std::span<char* const> argv) {
  RunOptions o;
  Args args(argv);
  std::map<std::string, std::string> cli_env;
  std::optional<std::string> cli_cwd;
  std::string machine_option;  // the first of --vcpus/--memory/--kernel/--initramfs given
  while (args.more()) {
    if (args.peek() == "--") {
      args.next_option();
      o.argv = args.rest();
      break;
    }
    if (args.peek().rfind("-", 0) != 0) {  // the command starts here
      o.argv = args.rest();
      break;
    }
    const std::string opt = args.next_option();
    if (machine_option.empty() &&
        (opt == "--kernel" || opt == "--initramfs" || opt == "--vcpus" || opt == "--memory" ||
         opt == "--disk" || opt == "--rootfs" || opt == "--add-dir")) {
      machine_option = opt;
    }
    if (opt == "--kernel") o.kernel = args.value(opt);
    else if (opt == "--initramfs") o.initramfs = args.value(opt);
    else if (opt == "--vcpus") o.vcpus = static_cast<uint32_t>(args.number(opt, 0, 1u << 20));
    else if (opt == "--memory") o.memory_mib = args.number(opt, 0, uint64_t{1} << 40);
    else if (opt == "--timeout") o.timeout = std::chrono::seconds(args.number(opt, 1, 7 * 86400));
    else if (opt == "--boot-timeout") o.boot_timeout = std::chrono::seconds(args.number(opt, 1, 86400));
    else if (opt == "--json") o.json = true;
    else if (opt == "--disk") o.disks.push_back(parse_disk_spec(args.value(opt)));
    else if (opt == "--rootfs") o.rootfs = parse_rootfs_option(args.value(opt));
    else if (opt == "--add-dir") o.add_dirs.push_back(parse_add_dir_spec(args.value(opt)));
    else if (opt == "--launch-plan") o.launch_plan = args.value(opt);
    else if (opt == "--allow-host") {
      o.egress.rules.push_back(parse_host_rule(opt, args.value(opt), EgressAction::kAllow));
    } else if (opt == "--deny-host") {
      o.egress.rules.push_back(parse_host_rule(opt, args.value(opt), EgressAction::kDeny));
    } else if (opt == "--secret") {
      o.egress.secrets.push_back(parse_secret_option(
          args.value(opt), [](const std::string& name) -> std::optional<std::string> {
            const char* v = std::getenv(name.c_str());
            if (v == nullptr) return std::nullopt;
            return std::string(v);
          }));
    } else if (opt == "--egress-log") {
      o.egress_log = args.value(opt);
      if (o.egress_log.empty()) throw UsageError("--egress-log: the file name is empty");
    } else if (opt == "-p" || opt == "--publish") {
      o.published.push_back(parse_publish_option(args.value(opt)));
    } else if (opt == "--net") {
      if (o.net) throw UsageError("--net: given twice (one NIC per sandbox)");
      o.net = parse_net_spec(args.value(opt));
    }
    else if (opt == "--snapshot") {
      o.snapshot = args.value(opt);
      if (o.snapshot.empty()) throw UsageError("--snapshot: the directory is empty");
    }
    else if (opt == "--cwd") {
      cli_cwd = args.value(opt);
      if (cli_cwd->empty() || cli_cwd->front() != '/') {
        throw UsageError("--cwd: '" + *cli_cwd + "' is not an absolute path");
      }
    } else if (opt == "--env") {
      const std::string kv = args.value(opt);
      const auto eq = kv.find('=');
      if (eq == std::string::npos) throw UsageError("--env: '" + kv + "' is not K=V");
      const std::string key = kv.substr(0, eq);
      if (!protocol::valid_env_key(key)) {
        throw UsageError("--env: '" + key + "' is not a valid name ([A-Za-z_][A-Za-z0-9_]*)");
      }
      if (!protocol::valid_env_value(kv.substr(eq + 1))) {
        throw UsageError("--env: the value of " + key + " contains a newline");
      }
      cli_env[key] = kv.substr(eq + 1);
    } else if (opt == "--help" || opt == "-h") {
      throw UsageError("");
    } else {
      throw UsageError("unknown option '" + opt + "'");
    }
  }
  if (!o.snapshot.empty() && !machine_option.empty()) {
    throw UsageError(machine_option + " cannot be combined with --snapshot: the machine is the "
                     "snapshot's");
  }
  if (!o.launch_plan.empty() && !o.argv.empty()) {
    throw UsageError("give either a command after -- or --launch-plan, not both");
  }
  if (!o.launch_plan.empty()) {
    LaunchPlan plan = load_launch_plan(o.launch_plan);
    o.argv = std::move(plan.argv);
    o.cwd = std::move(plan.working_dir);
    o.env = std::move(plan.env);
  }
  if (o.argv.empty()) throw UsageError("no command: give one after -- (or --launch-plan FILE)");
  if (o.argv.front().empty()) throw UsageError("the command's program (argv[0]) is empty");
  for (auto& [k, v] : cli_env) o.env[k] = v;
  if (cli_cwd) o.cwd = *cli_cwd;
  return o;
}

}  // namespace forkvm::cli
