// Checks every YAML file under manifests/ and examples/ against the binaries and the
// library they configure, so that the examples cannot drift from the code:
//
//   * every flag given to tenantdb-init / tenantdb-sidecar is one the built binary lists
//     in --help, every environment variable set on them is one they read;
//   * paths given in flags (--output-dir, --connector-file, ...) are mounts of that
//     container, the credentials live on a memory-backed emptyDir, and the connector
//     volume is mounted into the init container only;
//   * Secret keys referenced (secretKeyRef, files read under the credentials directory)
//     are keys tenantdb-init writes, formats the sidecar is asked to publish, or
//     connector keys the parser knows;
//   * connector example Secrets parse with tenantdb::parse_connector (and with the
//     file reader), their caCert is valid PEM;
//   * RBAC grants nothing but get/update/watch by name and create on Secrets -- no list,
//     delete or "*"; watch only on the credentials Secret -- and the bindings the
//     workloads need exist; manifests/ grants no
//     create at all: it pre-creates each workload's credentials Secret, empty and Opaque;
//   * the vCluster values use only the keys README.md documents as verified, carry no
//     credentials, and name the database tenantdb derives for the example tenant;
//   * images name no registry host; the Dockerfiles build with the project's scripts
//     onto an empty base as UID 65532.

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "tenantdb/connector.hpp"
#include "tenantdb/credentials.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/formats.hpp"
#include "tenantdb/naming.hpp"

#ifndef TENANTDB_SOURCE_DIR
#error "TENANTDB_SOURCE_DIR must be defined by the build"
#endif
#ifndef TENANTDB_INIT_BIN
#error "TENANTDB_INIT_BIN must be defined by the build"
#endif
#ifndef TENANTDB_SIDECAR_BIN
#error "TENANTDB_SIDECAR_BIN must be defined by the build"
#endif

namespace fs = std::filesystem;

namespace {

const fs::path source_dir{TENANTDB_SOURCE_DIR};

// ---------------------------------------------------------------- the binaries

/// What a binary accepts, from its own --help and sources.
struct binary_interface {
  std::string name;                   ///< tenantdb-init or tenantdb-sidecar
  std::map<std::string, bool> flags;  ///< --flag -> takes a value
  std::set<std::string> env;          ///< environment variables it reads
};

std::string run_help(const std::string& binary) {
  const std::string command = "'" + binary + "' --help 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << binary << " --help failed:\n" << out;
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Environment variables named in `text` by getenv("X") or CLI11's envname("X").
void add_env_reads(const std::string& text, std::set<std::string>& out) {
  static const std::regex re(R"re((?:getenv|envname)\("([A-Z_][A-Z0-9_]*)"\))re");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    out.insert((*it)[1].str());
}

binary_interface load_binary(const std::string& name, const std::string& path, const std::string& main_dir) {
  binary_interface b;
  b.name = name;
  const std::string help = run_help(path);
  // Option lines: "  --flag TYPE..." or "  -h,--help ..."; a flag without a type (one
  // space, then an upper-case word such as TEXT or UINT) is a switch.
  static const std::regex option(R"(^\s+(?:-[A-Za-z],)?(--[a-z][a-z0-9-]*)( ([A-Z]+)(?=$|[ =]))?)");
  static const std::regex env_note(R"((?:Env:|\$)([A-Z_][A-Z0-9_]*))");
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, option)) b.flags[m[1].str()] = m[3].matched;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), env_note); it != std::sregex_iterator(); ++it)
      b.env.insert((*it)[1].str());
  }
  // Variables read without a flag (in-cluster config, CA bundle, temp dir): from the
  // sources of the executable and of the library both link.
  add_env_reads(read_text(source_dir / main_dir / "main.cpp"), b.env);
  for (const auto& entry : fs::directory_iterator(source_dir / "common" / "src"))
    if (entry.path().extension() == ".cpp") add_env_reads(read_text(entry.path()), b.env);
  return b;
}

const binary_interface& init_binary() {
  static const binary_interface b = load_binary("tenantdb-init", TENANTDB_INIT_BIN, "init");
  return b;
}
const binary_interface& sidecar_binary() {
  static const binary_interface b = load_binary("tenantdb-sidecar", TENANTDB_SIDECAR_BIN, "sidecar");
  return b;
}

// ---------------------------------------------------------------- the YAML corpus

struct document {
  fs::path file;  ///< relative to the source dir
  YAML::Node root;
  std::string where() const { return file.string(); }
};

std::vector<fs::path> yaml_files() {
  std::vector<fs::path> out;
  for (const char* dir : {"manifests", "examples"}) {
    if (!fs::is_directory(source_dir / dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(source_dir / dir)) {
      const auto ext = entry.path().extension();
      if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml"))
        out.push_back(fs::relative(entry.path(), source_dir));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

const std::vector<document>& corpus() {
  static const std::vector<document> docs = [] {
    std::vector<document> out;
    for (const auto& file : yaml_files()) {
      std::vector<YAML::Node> roots;
      try {
        roots = YAML::LoadAllFromFile((source_dir / file).string());
      } catch (const YAML::Exception& e) {
        ADD_FAILURE() << file << ": not valid YAML: " << e.what();
        continue;
      }
      for (const auto& root : roots)
        if (root && !root.IsNull()) out.push_back({file, root});
    }
    return out;
  }();
  return docs;
}

std::string scalar(const YAML::Node& node, const std::string& fallback = {}) {
  return node && node.IsScalar() ? node.Scalar() : fallback;
}

/// node[k1][k2]...; a null node where any step is missing (yaml-cpp throws when a
/// missing key of a const node is indexed again).
YAML::Node get(const YAML::Node& node, std::initializer_list<const char*> keys) {
  YAML::Node cur = node;
  for (const char* k : keys) {
    if (!cur.IsDefined() || !cur.IsMap()) return YAML::Node();
    const YAML::Node& map = cur;
    const YAML::Node next = map[k];
    if (!next.IsDefined()) return YAML::Node();
    cur.reset(next);
  }
  return cur;
}

bool has(const YAML::Node& node, std::initializer_list<const char*> keys) {
  return !get(node, keys).IsNull();
}

bool in_dir(const fs::path& file, const std::string& dir) {
  return file.string().rfind(dir, 0) == 0;
}

/// Calls `visit` on every map node below (and including) `node`.
void walk_maps(const YAML::Node& node, const std::function<void(const YAML::Node&)>& visit) {
  if (node.IsMap()) {
    visit(node);
    for (const auto& kv : node) walk_maps(kv.second, visit);
  } else if (node.IsSequence()) {
    for (const auto& item : node) walk_maps(item, visit);
  }
}

void walk_scalars(const YAML::Node& node, const std::function<void(const std::string&)>& visit) {
  if (node.IsScalar()) {
    visit(node.Scalar());
  } else if (node.IsMap()) {
    for (const auto& kv : node) walk_scalars(kv.second, visit);
  } else if (node.IsSequence()) {
    for (const auto& item : node) walk_scalars(item, visit);
  }
}

// ---------------------------------------------------------------- pods and containers

enum class role { init, sidecar, other };

struct container {
  YAML::Node node;
  std::string name;
  bool in_init_list = false;
  std::size_t index = 0;  ///< position in its list
  role kind = role::other;
  std::map<std::string, std::string> flags;  ///< --flag -> value ("" for switches)
  std::map<std::string, YAML::Node> env;
  std::map<std::string, YAML::Node> mounts;  ///< mountPath -> volumeMount
  std::vector<std::string> problems;         ///< what parse_args refused

  const binary_interface& binary() const { return kind == role::init ? init_binary() : sidecar_binary(); }
  std::optional<std::string> flag(const std::string& f) const {
    auto it = flags.find(f);
    if (it == flags.end()) return std::nullopt;
    return it->second;
  }
  std::string env_value(const std::string& variable) const {
    auto it = env.find(variable);
    return it == env.end() ? std::string() : scalar(it->second["value"]);
  }
  std::string tenant() const { return flag("--tenant").value_or(env_value("TENANTDB_TENANT")); }
  std::string secret_name() const { return flag("--secret-name").value_or("vc-db-" + tenant()); }
  /// tenantdb-init in a lifecycle mode (--deprovision, --list, --sweep) runs as a Job of
  /// its own, not in front of a workload: no credentials directory, no sidecar.
  bool lifecycle() const { return kind == role::init && (flag("--deprovision") || flag("--list") || flag("--sweep")); }
};

/// A pod template: a Kubernetes pod spec, or the vCluster chart's controlPlane.statefulSet.
struct pod {
  const document* doc = nullptr;
  YAML::Node spec;
  std::string label;
  std::string namespace_name;
  std::string service_account;
  std::map<std::string, YAML::Node> volumes;
  std::vector<container> containers;

  std::string where() const { return doc->where() + " (" + label + ")"; }
  const container* find(role r) const {
    for (const auto& c : containers)
      if (c.kind == r) return &c;
    return nullptr;
  }
};

std::string image_repository(const std::string& image) {
  std::string repo = image.substr(0, image.find('@'));
  const auto slash = repo.rfind('/');
  const auto colon = repo.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) repo.resize(colon);
  return repo;
}

role role_of(const YAML::Node& c) {
  std::string repo = image_repository(scalar(c["image"]));
  repo = repo.substr(repo.rfind('/') == std::string::npos ? 0 : repo.rfind('/') + 1);
  if (repo == "tenantdb-init") return role::init;
  if (repo == "tenantdb-sidecar") return role::sidecar;
  return role::other;
}

/// Splits args into --flag -> value using the binary's own notion of which flags take
/// a value; records anything else as a failure.
void parse_args(container& c, const std::string& where) {
  const auto problem = [&](const std::string& what) { c.problems.push_back(where + ": " + what); };
  std::vector<std::string> args;
  if (const YAML::Node cmd = c.node["command"]; cmd) {
    if (!cmd.IsSequence() || cmd.size() == 0) return problem("command must be a non-empty list");
    const std::string program = scalar(cmd[0]);
    if (fs::path(program).filename().string() != c.binary().name)
      problem("command runs " + program + ", not the image's binary " + c.binary().name);
    for (std::size_t i = 1; i < cmd.size(); ++i) args.push_back(scalar(cmd[i]));
  }
  if (const YAML::Node a = c.node["args"]; a) {
    if (!a.IsSequence()) return problem("args must be a list");
    for (const auto& item : a) args.push_back(scalar(item));
  }
  const auto& accepted = c.binary().flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      problem("argument \"" + arg + "\" is not a flag; " + c.binary().name + " takes no positional arguments");
      continue;
    }
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const auto known = accepted.find(name);
    if (known == accepted.end()) {
      problem(c.binary().name + " has no flag " + name + " (see its --help)");
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      if (!known->second) problem(name + " is a switch and takes no value");
      value = arg.substr(eq + 1);
    } else if (known->second) {
      if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        problem(name + " needs a value");
      }
    }
    if (c.flags.count(name) != 0) problem(name + " given twice");
    c.flags[name] = value;
  }
}

std::vector<pod> find_pods() {
  std::vector<pod> pods;
  for (const auto& doc : corpus()) {
    walk_maps(doc.root, [&](const YAML::Node& m) {
      const bool has_lists = (m["containers"] && m["containers"].IsSequence()) ||
                             (m["initContainers"] && m["initContainers"].IsSequence());
      if (!has_lists) return;
      pod p;
      p.doc = &doc;
      p.spec = m;
      p.label = scalar(doc.root["kind"], "Helm values") + " " + scalar(get(doc.root, {"metadata", "name"}));
      if (in_dir(doc.file, "examples/vcluster")) {
        // Helm values carry no namespace: the examples install release my-vc into
        // vcluster-my-vc, and the chart runs the pod as ServiceAccount vc-<release>.
        p.namespace_name = "vcluster-my-vc";
        p.service_account = "vc-my-vc";
      } else {
        p.namespace_name = scalar(get(doc.root, {"metadata", "namespace"}));
        p.service_account = scalar(m["serviceAccountName"], "default");
      }
      // Pod volumes, or the vCluster chart's controlPlane.statefulSet.persistence.addVolumes.
      const YAML::Node vols = m["volumes"] ? m["volumes"] : get(m, {"persistence", "addVolumes"});
      if (vols && vols.IsSequence())
        for (const auto& v : vols) p.volumes[scalar(v["name"])] = YAML::Node(static_cast<const YAML::Node&>(v));
      for (const char* list : {"initContainers", "containers", "sidecarContainers"}) {
        const auto& seq = m[list];
        if (!seq || !seq.IsSequence()) continue;
        for (std::size_t i = 0; i < seq.size(); ++i) {
          container c;
          c.node = seq[i];
          c.name = scalar(seq[i]["name"]);
          c.in_init_list = std::string(list) == "initContainers";
          c.index = i;
          c.kind = role_of(seq[i]);
          if (const auto& env = seq[i]["env"]; env && env.IsSequence())
            for (const auto& e : env) c.env[scalar(e["name"])] = YAML::Node(static_cast<const YAML::Node&>(e));
          if (const auto& vm = seq[i]["volumeMounts"]; vm && vm.IsSequence())
            for (const auto& mount : vm)
              c.mounts[scalar(mount["mountPath"])] = YAML::Node(static_cast<const YAML::Node&>(mount));
          if (c.kind != role::other) parse_args(c, p.where() + " container " + c.name);
          p.containers.push_back(std::move(c));
        }
      }
      pods.push_back(std::move(p));
    });
  }
  return pods;
}

const std::vector<pod>& pods() {
  static const std::vector<pod> all = find_pods();
  return all;
}

/// The volumeMount of `c` whose mountPath is `path` or a parent of it.
const YAML::Node* mount_for(const container& c, const std::string& path) {
  const YAML::Node* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [mount_path, mount] : c.mounts) {
    const bool covers =
        path == mount_path || (path.size() > mount_path.size() && path.compare(0, mount_path.size(), mount_path) == 0 &&
                               (path[mount_path.size()] == '/' || mount_path == "/"));
    if (covers && mount_path.size() >= best_len) {
      best = &mount;
      best_len = mount_path.size();
    }
  }
  return best;
}

bool yes(const YAML::Node& n) {
  return n && n.IsScalar() && n.as<bool>(false);
}

std::set<std::string> credential_keys() {
  using namespace tenantdb::keys;
  return {database, user, password, host, port, type, data_source, ca_cert, ssl_mode, standby_user, standby_password};
}

/// Keys that reach the workload's directory (never the standby account).
std::set<std::string> workload_keys() {
  auto all = credential_keys();
  all.erase(tenantdb::keys::standby_user);
  all.erase(tenantdb::keys::standby_password);
  return all;
}

/// The connector keys README.md documents (and the parser names as known).
const std::set<std::string>& connector_keys() {
  static const std::set<std::string> keys{"type",     "host", "port",    "adminUser", "adminPassword",
                                          "sslMode",  "tls",  "caCert",  "ca.crt",    "database",
                                          "endpoint", "user", "password"};
  return keys;
}

std::vector<tenantdb::credential_format> all_formats() {
  return tenantdb::parse_formats("pgpass,mycnf,env,json");
}

// ---------------------------------------------------------------- tests

TEST(Manifests, TheExpectedFilesExist) {
  for (const char* f :
       {"manifests/rbac.yaml", "manifests/workload.yaml", "manifests/workload-classic-sidecar.yaml",
        "manifests/kustomization.yaml", "examples/connector-mysql.yaml", "examples/connector-mariadb.yaml",
        "examples/connector-postgres.yaml", "examples/connector-postgres-verify-full.yaml",
        "examples/connector-platform-style.yaml", "examples/app-reads-credentials.yaml",
        "examples/vcluster/vcluster-values.yaml", "examples/vcluster/vcluster-values-mysql.yaml",
        "examples/vcluster/README.md", "manifests/sweep-cronjob.yaml"})
    EXPECT_TRUE(fs::is_regular_file(source_dir / f)) << f;
  EXPECT_FALSE(corpus().empty());
}

TEST(Manifests, HelpListsTheFlagsTheTestReliesOn) {
  // If --help's layout changes, this says so instead of every other test failing oddly.
  EXPECT_TRUE(init_binary().flags.count("--connector-file"));
  EXPECT_TRUE(init_binary().flags.at("--output-dir"));
  EXPECT_FALSE(init_binary().flags.at("--local"));
  EXPECT_TRUE(sidecar_binary().flags.count("--formats"));
  EXPECT_TRUE(init_binary().env.count("TENANTDB_TENANT"));
  EXPECT_TRUE(sidecar_binary().env.count("POD_NAME"));
  EXPECT_FALSE(init_binary().env.count("POD_NAME")) << "only the sidecar reads POD_NAME";
}

TEST(Manifests, ArgumentsAreFlagsTheBinariesAccept) {
  std::size_t containers = 0;
  for (const auto& p : pods())
    for (const auto& c : p.containers) {
      if (c.kind == role::other) continue;
      ++containers;
      for (const auto& problem : c.problems) ADD_FAILURE() << problem;
    }
  EXPECT_GE(containers, 10u);
}

TEST(Manifests, EveryWorkloadRunsBothTenantdbContainers) {
  std::size_t inits = 0;
  for (const auto& p : pods()) {
    const container* init = p.find(role::init);
    const container* sidecar = p.find(role::sidecar);
    if (init == nullptr && sidecar == nullptr) continue;
    if (init != nullptr && init->lifecycle()) continue;
    ++inits;
    ASSERT_NE(init, nullptr) << p.where() << ": a sidecar without tenantdb-init";
    EXPECT_TRUE(init->in_init_list) << p.where() << ": tenantdb-init must be an init container";
    EXPECT_NE(scalar(init->node["restartPolicy"]), "Always") << p.where() << ": tenantdb-init must run to completion";
    if (sidecar != nullptr && sidecar->in_init_list) {
      EXPECT_EQ(scalar(sidecar->node["restartPolicy"]), "Always")
          << p.where() << ": a sidecar in initContainers needs restartPolicy: Always (native sidecar)";
      EXPECT_LT(init->index, sidecar->index) << p.where() << ": the sidecar must start after tenantdb-init";
    }
    EXPECT_FALSE(init->tenant().empty()) << p.where() << ": no --tenant or TENANTDB_TENANT on tenantdb-init";
    if (sidecar != nullptr) {
      EXPECT_EQ(init->tenant(), sidecar->tenant()) << p.where();
      EXPECT_EQ(init->secret_name(), sidecar->secret_name()) << p.where();
      EXPECT_EQ(init->flag("--output-dir"), sidecar->flag("--output-dir")) << p.where();
      EXPECT_EQ(init->flag("--strategy").value_or("dual"), sidecar->flag("--strategy").value_or("dual")) << p.where();
      EXPECT_EQ(init->flag("--file-mode").value_or("0440"), sidecar->flag("--file-mode").value_or("0440"))
          << p.where() << ": both write the same files";
    }
  }
  EXPECT_GE(inits, 5u) << "workload.yaml, the classic variant, the app example and two vCluster values";
}

TEST(Manifests, EnvironmentVariablesAreOnesTheBinariesRead) {
  for (const auto& p : pods())
    for (const auto& c : p.containers) {
      if (c.kind == role::other) continue;
      for (const auto& [name, node] : c.env)
        EXPECT_TRUE(c.binary().env.count(name))
            << p.where() << " container " << c.name << ": " << c.binary().name << " does not read $" << name;
      EXPECT_FALSE(c.node["envFrom"]) << p.where() << " container " << c.name << ": no envFrom, name each variable";
    }
}

TEST(Manifests, PathFlagsAreMountsOfTheContainer) {
  for (const auto& p : pods())
    for (const auto& c : p.containers) {
      if (c.kind == role::other) continue;
      const std::string where = p.where() + " container " + c.name;
      for (const char* f : {"--output-dir", "--connector-file", "--store-dir", "--kubeconfig"}) {
        const auto value = c.flag(f);
        if (!value) continue;
        const YAML::Node* mount = mount_for(c, *value);
        if (mount == nullptr) {
          ADD_FAILURE() << where << ": " << f << "=" << *value << " is not under any volumeMount of the container";
          continue;
        }
        const std::string volume = scalar((*mount)["name"]);
        ASSERT_TRUE(p.volumes.count(volume)) << where << ": volume " << volume << " is not defined in the pod";
        if (std::string(f) == "--output-dir") {
          EXPECT_FALSE(yes((*mount)["readOnly"])) << where << ": the credentials directory must be writable";
          const auto& v = p.volumes.at(volume);
          EXPECT_EQ(scalar(get(v, {"emptyDir", "medium"})), "Memory")
              << where << ": the credentials belong on a memory-backed emptyDir";
        }
      }
      if (!c.lifecycle()) {
        EXPECT_TRUE(c.flag("--output-dir").has_value()) << where << ": no --output-dir";
      }
      if (c.kind == role::init) {
        EXPECT_NE(c.flag("--connector").has_value(), c.flag("--connector-file").has_value())
            << where << ": exactly one of --connector and --connector-file";
        EXPECT_FALSE(c.flag("--local").has_value()) << where << ": --local is not for Kubernetes";
      }
    }
}

TEST(Manifests, ConnectorVolumeIsMountedIntoTheInitContainerOnly) {
  std::size_t file_routes = 0;
  for (const auto& p : pods()) {
    const container* init = p.find(role::init);
    if (init == nullptr || !init->flag("--connector-file")) continue;
    ++file_routes;
    const YAML::Node* mount = mount_for(*init, *init->flag("--connector-file"));
    ASSERT_NE(mount, nullptr) << p.where();
    const std::string volume = scalar((*mount)["name"]);
    EXPECT_TRUE(yes((*mount)["readOnly"])) << p.where() << ": mount the connector read-only";
    EXPECT_TRUE(p.volumes.at(volume)["secret"]) << p.where() << ": the connector comes from a Secret volume";
    for (const auto& c : p.containers) {
      if (&c == init) continue;
      for (const auto& [path, m] : c.mounts) {
        EXPECT_NE(scalar(m["name"]), volume)
            << p.where() << ": container " << c.name << " must not see the connector (admin password)";
      }
    }
  }
  EXPECT_GE(file_routes, 2u);
}

TEST(Manifests, ContainersAreLockedDown) {
  for (const auto& p : pods()) {
    const YAML::Node pod_sc = p.spec["securityContext"];
    for (const auto& c : p.containers) {
      if (c.kind == role::other) continue;
      const std::string where = p.where() + " container " + c.name;
      const YAML::Node sc = c.node["securityContext"];
      ASSERT_TRUE(sc && sc.IsMap()) << where << ": no securityContext";
      EXPECT_TRUE(yes(sc["readOnlyRootFilesystem"])) << where;
      EXPECT_EQ(scalar(sc["allowPrivilegeEscalation"]), "false") << where;
      bool drops_all = false;
      if (get(sc, {"capabilities", "drop"}).IsSequence())
        for (const auto& d : get(sc, {"capabilities", "drop"})) drops_all = drops_all || d.Scalar() == "ALL";
      EXPECT_TRUE(drops_all) << where << ": capabilities.drop must be [ALL]";
      EXPECT_TRUE(yes(sc["runAsNonRoot"]) || (pod_sc && yes(pod_sc["runAsNonRoot"]))) << where;
      const auto seccomp = [](const YAML::Node& s) {
        return scalar(get(s, {"seccompProfile", "type"})) == "RuntimeDefault";
      };
      EXPECT_TRUE(seccomp(sc) || seccomp(pod_sc)) << where << ": seccompProfile RuntimeDefault";
      // libpq and Connector/C take the connector's CA from a temp file ($TMPDIR or /tmp).
      const std::string tmp = c.env_value("TMPDIR").empty() ? "/tmp" : c.env_value("TMPDIR");
      const YAML::Node* tmp_mount = mount_for(c, tmp);
      EXPECT_TRUE(tmp_mount != nullptr && !yes((*tmp_mount)["readOnly"]))
          << where << ": a read-only root needs a writable " << tmp;
      const YAML::Node res = c.node["resources"];
      EXPECT_TRUE(res && has(res, {"requests", "memory"}) && has(res, {"limits", "memory"}))
          << where << ": memory requests and limits";
    }
  }
}

int port_of(const std::string& listen) {
  const auto colon = listen.rfind(':');
  return std::stoi(listen.substr(colon + 1));
}

TEST(Manifests, SidecarProbesHitItsHealthEndpoints) {
  for (const auto& p : pods()) {
    const container* s = p.find(role::sidecar);
    if (s == nullptr) continue;
    const std::string where = p.where() + " container " + s->name;
    const int port = port_of(s->flag("--listen").value_or("0.0.0.0:8080"));
    const auto probe_port = [&](const YAML::Node& probe) {
      const YAML::Node pn = get(probe, {"httpGet", "port"});
      if (!pn || !pn.IsScalar()) return -1;
      if (std::all_of(pn.Scalar().begin(), pn.Scalar().end(), ::isdigit)) return std::stoi(pn.Scalar());
      if (const auto& ports = s->node["ports"]; ports && ports.IsSequence())
        for (const auto& cp : ports)
          if (scalar(cp["name"]) == pn.Scalar()) return cp["containerPort"].as<int>();
      return -1;
    };
    const YAML::Node live = s->node["livenessProbe"];
    ASSERT_TRUE(has(live, {"httpGet"})) << where << ": no liveness probe";
    EXPECT_EQ(scalar(get(live, {"httpGet", "path"})), "/healthz") << where;
    EXPECT_EQ(probe_port(live), port) << where << ": liveness probe port is not --listen's";
    bool readyz = false;
    for (const char* kind : {"readinessProbe", "startupProbe"}) {
      const YAML::Node probe = s->node[kind];
      if (!has(probe, {"httpGet"})) continue;
      EXPECT_EQ(scalar(get(probe, {"httpGet", "path"})), "/readyz") << where << " " << kind;
      EXPECT_EQ(probe_port(probe), port) << where << " " << kind;
      readyz = true;
    }
    EXPECT_TRUE(readyz) << where << ": no probe on /readyz";
    // The admin endpoint must stay on loopback (the binary refuses others, too).
    const std::string admin = s->flag("--admin-listen").value_or("127.0.0.1:8081");
    EXPECT_TRUE(admin == "off" || admin.rfind("127.", 0) == 0 || admin.rfind("[::1]", 0) == 0) << where;
  }
}

TEST(Manifests, SidecarFormatsAreConsistentWithTheFileMode) {
  for (const auto& p : pods()) {
    const container* s = p.find(role::sidecar);
    if (s == nullptr || !s->flag("--formats")) continue;
    std::vector<tenantdb::credential_format> formats;
    try {
      formats = tenantdb::parse_formats(*s->flag("--formats"));
    } catch (const tenantdb::error& e) {
      ADD_FAILURE() << p.where() << ": " << e.what();
      continue;
    }
    if (std::find(formats.begin(), formats.end(), tenantdb::credential_format::pgpass) != formats.end()) {
      const auto mode = std::stoul(s->flag("--file-mode").value_or("0440"), nullptr, 8);
      EXPECT_EQ(mode & 077ul, 0ul) << p.where() << ": libpq ignores a pgpass that group or others can read";
    }
  }
}

TEST(Manifests, SecretKeyRefsNameKeysThatExist) {
  std::set<std::string> connector_secrets;
  for (const auto& doc : corpus())
    if (scalar(doc.root["kind"]) == "Secret" && in_dir(doc.file, "examples/connector-"))
      connector_secrets.insert(scalar(get(doc.root, {"metadata", "name"})));
  ASSERT_FALSE(connector_secrets.empty());
  for (const auto& doc : corpus()) {
    std::set<std::string> credential_secrets;
    for (const auto& p : pods())
      if (p.doc == &doc)
        for (const auto& c : p.containers)
          if (c.kind != role::other) credential_secrets.insert(c.secret_name());
    walk_maps(doc.root, [&](const YAML::Node& m) {
      const YAML::Node ref = m["secretKeyRef"];
      if (!ref) return;
      const std::string name = scalar(ref["name"]);
      const std::string key = scalar(ref["key"]);
      if (credential_secrets.count(name)) {
        EXPECT_TRUE(credential_keys().count(key)) << doc.where() << ": Secret " << name << " has no key " << key;
      } else if (connector_secrets.count(name)) {
        EXPECT_TRUE(connector_keys().count(key)) << doc.where() << ": " << key << " is not a connector key";
      } else {
        ADD_FAILURE() << doc.where() << ": secretKeyRef to " << name
                      << ", which is neither a credentials Secret of this file nor a connector";
      }
    });
  }
  // No file uses secretKeyRef today (workloads get files or the proxy; the vCluster values
  // no longer pass credentials through the environment); this guards the next one.
}

TEST(Manifests, FilesReadFromTheCredentialsDirectoryExist) {
  std::set<std::string> names = workload_keys();
  std::map<std::string, tenantdb::credential_format> format_files;
  for (const auto f : all_formats()) format_files.emplace(std::string(tenantdb::format_file_name(f)), f);
  std::size_t reads = 0;
  for (const auto& doc : corpus()) {
    std::set<std::string> dirs;
    std::set<std::string> published;  // format files some sidecar of this file publishes
    for (const auto& p : pods()) {
      if (p.doc != &doc) continue;
      for (const auto& c : p.containers) {
        if (c.kind == role::other || !c.flag("--output-dir")) continue;
        dirs.insert(*c.flag("--output-dir"));
        if (c.kind == role::sidecar && c.flag("--formats"))
          for (const auto f : tenantdb::parse_formats(*c.flag("--formats")))
            published.insert(std::string(tenantdb::format_file_name(f)));
      }
    }
    for (const auto& dir : dirs) {
      const std::regex ref(std::regex_replace(dir, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                           R"(/([A-Za-z0-9._-]+))");
      walk_scalars(doc.root, [&](const std::string& text) {
        for (auto it = std::sregex_iterator(text.begin(), text.end(), ref); it != std::sregex_iterator(); ++it) {
          const std::string file = (*it)[1].str();
          ++reads;
          if (format_files.count(file)) {
            EXPECT_TRUE(published.count(file))
                << doc.where() << ": reads " << dir << "/" << file << " but no sidecar has it in --formats";
          } else {
            EXPECT_TRUE(names.count(file)) << doc.where() << ": reads " << dir << "/" << file
                                           << ", which tenantdb never writes to the workload's directory";
          }
        }
      });
    }
  }
  EXPECT_GE(reads, 5u);
}

// ---------------------------------------------------------------- connectors

std::optional<std::string> base64_decode(const std::string& in) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  std::size_t pad = 0;
  for (char ch : in) {
    if (ch == '=') {
      ++pad;
      continue;
    }
    if (pad != 0) return std::nullopt;
    const auto pos = alphabet.find(ch);
    if (pos == std::string::npos) return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (pad > 2) return std::nullopt;
  return out;
}

TEST(Connectors, ExamplesParse) {
  std::size_t parsed = 0;
  bool verify_full_with_ca = false;
  for (const auto& doc : corpus()) {
    if (!in_dir(doc.file, "examples/connector-")) continue;
    ASSERT_EQ(scalar(doc.root["kind"]), "Secret") << doc.where();
    tenantdb::connector_data data;
    if (const auto& s = doc.root["stringData"]; s && s.IsMap())
      for (const auto& kv : s) data[kv.first.Scalar()] = kv.second.Scalar();
    if (const auto& d = doc.root["data"]; d && d.IsMap())
      for (const auto& kv : d) {
        const auto decoded = base64_decode(kv.second.Scalar());
        ASSERT_TRUE(decoded.has_value()) << doc.where() << ": data." << kv.first.Scalar() << " is not base64";
        data[kv.first.Scalar()] = *decoded;
      }
    for (const auto& [key, value] : data)
      EXPECT_TRUE(connector_keys().count(key))
          << doc.where() << ": unknown connector key " << key << " (the parser would ignore it)";
    if (data.count("caCert")) {
      EXPECT_NO_THROW(tenantdb::validate_ca_pem(data.at("caCert"), "caCert")) << doc.where();
    }
    tenantdb::connector conn;
    try {
      conn = tenantdb::parse_connector(tenantdb::connector_data(data));
      ++parsed;
    } catch (const tenantdb::error& e) {
      ADD_FAILURE() << doc.where() << ": parse_connector: " << e.what();
      continue;
    }
    EXPECT_EQ(conn.server.tls, tenantdb::tls_mode::verify_full) << doc.where() << ": the examples verify TLS fully";
    if (doc.file.filename() == "connector-postgres-verify-full.yaml")
      verify_full_with_ca = !conn.server.ca_pem.empty() && conn.server.type == tenantdb::engine_type::postgres;
    // The binaries read the same file through read_connector_path (--connector-file with
    // a manifest): it must see the same keys.
    try {
      auto from_file = tenantdb::read_connector_path(source_dir / doc.file);
      for (const auto& [key, value] : data)
        EXPECT_EQ(from_file.count(key), 1u) << doc.where() << ": read_connector_path lost " << key;
      EXPECT_NO_THROW(tenantdb::parse_connector(std::move(from_file))) << doc.where();
    } catch (const tenantdb::error& e) {
      ADD_FAILURE() << doc.where() << ": read_connector_path: " << e.what();
    }
  }
  EXPECT_EQ(parsed, 5u);
  EXPECT_TRUE(verify_full_with_ca) << "connector-postgres-verify-full.yaml must carry a caCert";
}

TEST(Connectors, WorkloadsMountAnExampleConnector) {
  std::set<std::string> connector_secrets;
  for (const auto& doc : corpus())
    if (in_dir(doc.file, "examples/connector-")) connector_secrets.insert(scalar(get(doc.root, {"metadata", "name"})));
  for (const auto& p : pods()) {
    const container* init = p.find(role::init);
    if (init == nullptr) continue;
    std::string name;
    if (init->flag("--connector-file")) {
      const YAML::Node* mount = mount_for(*init, *init->flag("--connector-file"));
      ASSERT_NE(mount, nullptr);
      name = scalar(get(p.volumes.at(scalar((*mount)["name"])), {"secret", "secretName"}));
    } else {
      const std::string ref = init->flag("--connector").value_or("");
      name = ref.substr(ref.find('/') == std::string::npos ? 0 : ref.find('/') + 1);
    }
    EXPECT_TRUE(connector_secrets.count(name)) << p.where() << ": connector " << name << " is none of the examples";
  }
}

// ---------------------------------------------------------------- RBAC

struct rule_view {
  std::set<std::string> verbs, resources, names, groups;
};

std::vector<rule_view> rules_of(const YAML::Node& role) {
  std::vector<rule_view> out;
  const auto set_of = [](const YAML::Node& n) {
    std::set<std::string> s;
    if (n && n.IsSequence())
      for (const auto& i : n) s.insert(i.Scalar());
    return s;
  };
  if (role["rules"] && role["rules"].IsSequence())
    for (const auto& r : role["rules"])
      out.push_back({set_of(r["verbs"]), set_of(r["resources"]), set_of(r["resourceNames"]), set_of(r["apiGroups"])});
  return out;
}

TEST(Rbac, RolesGrantOnlyNamedSecretAccessAndCreate) {
  std::size_t roles = 0;
  for (const auto& doc : corpus()) {
    const std::string kind = scalar(doc.root["kind"]);
    // The one exception: the orphan sweep must ask whether Secrets of names it learns
    // from the server exist in any namespace: get on Secrets, nothing else, bound to
    // its own ServiceAccount only.
    if ((kind == "ClusterRole" || kind == "ClusterRoleBinding") && doc.file.filename() == "sweep-cronjob.yaml" &&
        in_dir(doc.file, "manifests/")) {
      if (kind == "ClusterRole") {
        const auto rules = rules_of(doc.root);
        ASSERT_EQ(rules.size(), 1u) << doc.where();
        EXPECT_EQ(rules[0].verbs, std::set<std::string>{"get"}) << doc.where() << ": the sweep needs get only";
        EXPECT_EQ(rules[0].resources, std::set<std::string>{"secrets"}) << doc.where();
        EXPECT_EQ(rules[0].groups, std::set<std::string>{""}) << doc.where();
      } else {
        EXPECT_EQ(scalar(get(doc.root, {"roleRef", "name"})), "tenantdb-sweep") << doc.where();
        ASSERT_EQ(doc.root["subjects"].size(), 1u) << doc.where();
        EXPECT_EQ(scalar(doc.root["subjects"][0]["name"]), "tenantdb-sweep") << doc.where();
      }
      continue;
    }
    EXPECT_NE(kind, "ClusterRole") << doc.where() << ": tenantdb needs no cluster-wide permission";
    EXPECT_NE(kind, "ClusterRoleBinding") << doc.where();
    if (kind != "Role") continue;
    ++roles;
    for (const auto& r : rules_of(doc.root)) {
      // The one other rule: Events (optional), create only, no names to limit it by.
      if (r.resources == std::set<std::string>{"events"}) {
        EXPECT_EQ(r.verbs, std::set<std::string>{"create"}) << doc.where() << ": Events need create only";
        EXPECT_EQ(r.groups, std::set<std::string>{""}) << doc.where() << ": core/v1 Events";
        EXPECT_TRUE(r.names.empty()) << doc.where() << ": resourceNames never match a create";
        continue;
      }
      for (const char* bad : {"*", "list", "delete", "deletecollection", "patch", "escalate", "bind", "impersonate"})
        EXPECT_FALSE(r.verbs.count(bad)) << doc.where() << ": verb " << bad;
      // The sidecar watches its credentials Secret (the one it also updates), nothing else.
      if (r.verbs.count("watch")) {
        EXPECT_TRUE(r.verbs.count("update")) << doc.where() << ": watch on a Secret tenantdb does not write";
      }
      EXPECT_FALSE(r.resources.count("*")) << doc.where();
      EXPECT_FALSE(r.groups.count("*")) << doc.where();
      EXPECT_EQ(r.resources, std::set<std::string>{"secrets"}) << doc.where() << ": Secrets only";
      EXPECT_EQ(r.groups, std::set<std::string>{""}) << doc.where();
      for (const auto& v : r.verbs) {
        if (v == "create") {
          EXPECT_TRUE(r.names.empty()) << doc.where() << ": resourceNames never match a create";
        } else {
          EXPECT_FALSE(r.names.empty()) << doc.where() << ": " << v << " must be limited by resourceNames";
        }
      }
    }
  }
  EXPECT_GE(roles, 3u);
}

/// True if some RoleBinding in `ns` binds ServiceAccount `sa_ns/sa` to a Role in `ns`
/// whose rules allow `verb` on Secret `name` ("" for create).
bool allowed(const std::string& ns, const std::string& sa_ns, const std::string& sa, const std::string& verb,
             const std::string& name) {
  for (const auto& binding : corpus()) {
    if (scalar(binding.root["kind"]) != "RoleBinding" || scalar(get(binding.root, {"metadata", "namespace"})) != ns)
      continue;
    bool subject = false;
    for (const auto& s : binding.root["subjects"])
      subject = subject ||
                (scalar(s["kind"]) == "ServiceAccount" && scalar(s["name"]) == sa && scalar(s["namespace"]) == sa_ns);
    if (!subject) continue;
    for (const auto& role : corpus()) {
      if (scalar(role.root["kind"]) != "Role" || scalar(get(role.root, {"metadata", "namespace"})) != ns ||
          scalar(get(role.root, {"metadata", "name"})) != scalar(get(binding.root, {"roleRef", "name"})))
        continue;
      for (const auto& r : rules_of(role.root))
        if (r.verbs.count(verb) && r.resources.count("secrets") && (r.names.empty() || r.names.count(name)))
          return true;
    }
  }
  return false;
}

/// The Secret `ns/name` the manifests create (for the init to fill), or nullptr.
const document* precreated_secret(const std::string& ns, const std::string& name) {
  for (const auto& doc : corpus())
    if (in_dir(doc.file, "manifests/") && scalar(doc.root["kind"]) == "Secret" &&
        scalar(get(doc.root, {"metadata", "namespace"})) == ns && scalar(get(doc.root, {"metadata", "name"})) == name)
      return &doc;
  return nullptr;
}

// Issue 12, finding 4: `create` cannot be limited by name, and with it the pod's token
// can swap its credentials Secret for a ServiceAccount token Secret. manifests/ therefore
// pre-creates each workload's credentials Secret and grants no create.
TEST(Rbac, ManifestsPreCreateTheCredentialsSecretsAndGrantNoCreate) {
  std::size_t checked = 0;
  for (const auto& p : pods()) {
    const container* init = p.find(role::init);
    // (A lifecycle Job such as the sweep has no credentials Secret of its own.)
    if (init == nullptr || init->lifecycle() || !in_dir(p.doc->file, "manifests/")) continue;
    ++checked;
    const document* secret = precreated_secret(p.namespace_name, init->secret_name());
    ASSERT_NE(secret, nullptr) << p.where() << ": manifests/ does not create " << p.namespace_name << "/"
                               << init->secret_name();
    EXPECT_EQ(scalar(secret->root["type"]), "Opaque") << secret->where() << ": say type Opaque explicitly";
    EXPECT_FALSE(secret->root["data"] && secret->root["data"].size() > 0) << secret->where() << ": no data";
    EXPECT_FALSE(secret->root["stringData"] && secret->root["stringData"].size() > 0) << secret->where();
    EXPECT_FALSE(secret->root["immutable"] && secret->root["immutable"].as<bool>(false))
        << secret->where() << ": the init must be able to fill it";
    const YAML::Node annotations = get(secret->root, {"metadata", "annotations"});
    if (annotations.IsMap()) {
      for (const auto& kv : annotations) {
        EXPECT_EQ(kv.first.Scalar().rfind("kubernetes.io/service-account.", 0), std::string::npos)
            << secret->where() << ": tenantdb refuses a Secret with " << kv.first.Scalar();
      }
    }
    EXPECT_FALSE(allowed(p.namespace_name, p.namespace_name, p.service_account, "create", ""))
        << p.where() << ": " << p.service_account << " may create Secrets; the pre-created Secret makes that needless";
  }
  EXPECT_GE(checked, 2u) << "workload.yaml and the classic variant";
}

TEST(Rbac, WorkloadsHaveThePermissionsTheyUse) {
  for (const auto& p : pods()) {
    const container* init = p.find(role::init);
    if (init == nullptr) continue;
    const std::string secret = init->secret_name();
    if (!in_dir(p.doc->file, "examples/vcluster")) {
      // (The vCluster chart's own Role covers the credentials Secret: README.md.)
      if (init->flag("--sweep")) {
        // The sweep's ClusterRole (checked in RolesGrantOnlyNamedSecretAccessAndCreate).
      } else if (init->lifecycle()) {
        // Deprovisioning reads the Secret's deletion-policy annotation and writes nothing.
        EXPECT_TRUE(allowed(p.namespace_name, p.namespace_name, p.service_account, "get", secret))
            << p.where() << ": " << p.service_account << " may not get " << secret;
      } else {
        for (const char* verb : {"get", "update"})
          EXPECT_TRUE(allowed(p.namespace_name, p.namespace_name, p.service_account, verb, secret))
              << p.where() << ": " << p.service_account << " may not " << verb << " " << secret;
        // The sidecar watches the Secret (issue 11); without it, it polls every 5 s.
        if (p.find(role::sidecar) != nullptr) {
          EXPECT_TRUE(allowed(p.namespace_name, p.namespace_name, p.service_account, "watch", secret))
              << p.where() << ": " << p.service_account << " may not watch " << secret;
        }
        // The init creates the Secret only if nobody pre-created it.
        EXPECT_TRUE(precreated_secret(p.namespace_name, secret) != nullptr ||
                    allowed(p.namespace_name, p.namespace_name, p.service_account, "create", secret))
            << p.where() << ": " << secret << " is neither pre-created nor may " << p.service_account << " create it";
      }
      EXPECT_EQ(scalar(p.spec["automountServiceAccountToken"]), "false")
          << p.where() << ": project the token into the tenantdb containers only";
    }
    if (const auto ref = init->flag("--connector")) {
      const auto slash = ref->find('/');
      const std::string ns = slash == std::string::npos ? p.namespace_name : ref->substr(0, slash);
      const std::string name = slash == std::string::npos ? *ref : ref->substr(slash + 1);
      EXPECT_TRUE(allowed(ns, p.namespace_name, p.service_account, "get", name))
          << p.where() << ": no Role lets " << p.namespace_name << "/" << p.service_account << " get " << *ref;
    }
  }
}

TEST(Rbac, BindingsReferToRolesAndServiceAccounts) {
  for (const auto& binding : corpus()) {
    if (scalar(binding.root["kind"]) != "RoleBinding") continue;
    const std::string ns = scalar(get(binding.root, {"metadata", "namespace"}));
    EXPECT_FALSE(ns.empty()) << binding.where() << ": name the namespace";
    EXPECT_EQ(scalar(get(binding.root, {"roleRef", "kind"})), "Role") << binding.where();
    bool found = false;  // each RBAC file here is self-contained: the Role is in the same file
    for (const auto& role : corpus())
      found = found || (role.file == binding.file && scalar(role.root["kind"]) == "Role" &&
                        scalar(get(role.root, {"metadata", "namespace"})) == ns &&
                        scalar(get(role.root, {"metadata", "name"})) == scalar(get(binding.root, {"roleRef", "name"})));
    EXPECT_TRUE(found) << binding.where() << ": roleRef names no Role in " << ns;
    const YAML::Node subjects = binding.root["subjects"];
    ASSERT_TRUE(subjects && subjects.IsSequence()) << binding.where();
    for (const auto& s : subjects) {
      EXPECT_EQ(scalar(s["kind"]), "ServiceAccount") << binding.where() << ": bind ServiceAccounts only";
      EXPECT_FALSE(scalar(s["namespace"]).empty()) << binding.where() << ": subject without namespace";
    }
  }
}

TEST(Rbac, KustomizationListsExistingFiles) {
  const auto root = YAML::LoadFile((source_dir / "manifests/kustomization.yaml").string());
  ASSERT_TRUE(root["resources"] && root["resources"].IsSequence());
  for (const auto& r : root["resources"])
    EXPECT_TRUE(fs::is_regular_file(source_dir / "manifests" / r.Scalar())) << r.Scalar();
}

// ---------------------------------------------------------------- vCluster

void flatten(const YAML::Node& node, const std::string& prefix, const std::set<std::string>& leaves,
             std::vector<std::string>& out) {
  if (leaves.count(prefix) || !node.IsMap()) {
    out.push_back(prefix);
    return;
  }
  for (const auto& kv : node)
    flatten(kv.second, prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar(), leaves, out);
}

TEST(VCluster, ValuesUseOnlyVerifiedKeys) {
  // The keys examples/vcluster/README.md lists as verified in the chart's schema/config;
  // lists of containers, volumes and args are checked by the tests above.
  const std::set<std::string> verified{
      "controlPlane.distro.k8s.enabled",
      "controlPlane.distro.k8s.apiServer.extraArgs",
      "controlPlane.backingStore.database.embedded.enabled",
      "controlPlane.backingStore.database.embedded.dataSource",
      "controlPlane.backingStore.database.embedded.caFile",
      "controlPlane.statefulSet.env",
      "controlPlane.statefulSet.persistence.addVolumes",
      "controlPlane.statefulSet.persistence.addVolumeMounts",
      "controlPlane.statefulSet.initContainers",
  };
  std::size_t files = 0;
  for (const auto& doc : corpus()) {
    if (!in_dir(doc.file, "examples/vcluster") || doc.file.filename().string().find("values") == std::string::npos)
      continue;
    ++files;
    std::vector<std::string> keys;
    flatten(doc.root, "", verified, keys);
    for (const auto& k : keys) EXPECT_TRUE(verified.count(k)) << doc.where() << ": unverified values key " << k;
  }
  EXPECT_EQ(files, 2u);
}

// The sidecar container of a vCluster values file and its --proxy-listen port.
int proxy_port_of(const std::string& file) {
  for (const auto& p : pods()) {
    if (p.doc->file != fs::path(file)) continue;
    const container* side = p.find(role::sidecar);
    if (side == nullptr) break;
    const std::string listen = side->flag("--proxy-listen").value_or("");
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) break;
    return std::stoi(listen.substr(colon + 1));
  }
  return -1;
}

std::string embedded_data_source(const std::string& file) {
  const auto root = YAML::LoadFile((source_dir / file).string());
  return scalar(get(root, {"controlPlane", "backingStore", "database", "embedded", "dataSource"}));
}

// What `tenantdb-init --print-names` says for the example tenant (the binary, not the library).
std::string printed_database(const std::string& ns, const std::string& tenant) {
  const std::string command =
      "'" + std::string(TENANTDB_INIT_BIN) + "' --print-names --namespace " + ns + " --tenant " + tenant;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  EXPECT_EQ(::pclose(pipe), 0) << command << ": " << out;
  std::smatch m;
  static const std::regex database(R"re("database":"([a-z0-9_]+)")re");
  return std::regex_search(out, m, database) ? m[1].str() : std::string();
}

TEST(VCluster, PostgresKineUsesTheSidecarsProxyWithAStaticSecretFreeDataSource) {
  const std::string file = "examples/vcluster/vcluster-values.yaml";
  const std::string dsn = embedded_data_source(file);
  const int port = proxy_port_of(file);
  ASSERT_GT(port, 0) << "the sidecar in " << file << " must run the proxy (--proxy-listen 127.0.0.1:PORT)";
  // The same for every virtual cluster: loopback, the proxy's port, no password, no
  // server address, no TLS file that may be missing.
  EXPECT_EQ(dsn, "postgres://kine@127.0.0.1:" + std::to_string(port) + "/kine?sslmode=disable");
}

TEST(VCluster, MysqlKineUsesTheSidecarsProxyAndNamesTheTenantsOwnDatabase) {
  const std::string file = "examples/vcluster/vcluster-values-mysql.yaml";
  const std::string dsn = embedded_data_source(file);
  const int port = proxy_port_of(file);
  ASSERT_GT(port, 0) << "the sidecar in " << file << " must run the proxy (--proxy-listen 127.0.0.1:PORT)";
  // Kine's MySQL start-up stops unless it sees the data source's database in
  // information_schema.SCHEMATA: the name is the tenant's own, as the init prints it.
  const std::string database = printed_database("vcluster-my-vc", "my-vc");
  ASSERT_FALSE(database.empty());
  EXPECT_EQ(database, tenantdb::derive_names(tenantdb::tenant{"my-vc", "vcluster-my-vc"}).database);
  EXPECT_EQ(dsn, "mysql://kine@tcp(127.0.0.1:" + std::to_string(port) + ")/" + database);
}

TEST(VCluster, NoValuesFileCarriesAPasswordOrTheSharedServersAddress) {
  for (const char* file : {"examples/vcluster/vcluster-values.yaml", "examples/vcluster/vcluster-values-mysql.yaml"}) {
    const std::string text = read_text(source_dir / file);
    EXPECT_EQ(text.find("PGPASSWORD"), std::string::npos) << file;
    EXPECT_EQ(text.find("secretKeyRef"), std::string::npos) << file << ": no credential in the environment";
    const std::string dsn = embedded_data_source(file);
    const auto at = dsn.find('@');
    ASSERT_NE(at, std::string::npos) << file;
    EXPECT_EQ(dsn.substr(0, at).find(':', dsn.find("://") + 3), std::string::npos) << file << ": a password in " << dsn;
  }
}

// ---------------------------------------------------------------- images

TEST(Images, NameNoRegistryHost) {
  for (const auto& doc : corpus())
    walk_maps(doc.root, [&](const YAML::Node& m) {
      const std::string image = scalar(m["image"]);
      if (image.empty() || !m["name"]) return;
      const std::string first = image.substr(0, image.find('/'));
      if (image.find('/') == std::string::npos) return;
      EXPECT_TRUE(first.find('.') == std::string::npos && first.find(':') == std::string::npos && first != "localhost")
          << doc.where() << ": image " << image << " names a registry host";
    });
}

TEST(Images, DockerfilesBuildStaticallyOntoScratchAsNonRoot) {
  for (const char* name : {"Dockerfile.init", "Dockerfile.sidecar"}) {
    const std::string text = read_text(source_dir / name);
    ASSERT_FALSE(text.empty()) << name;
    const std::string binary = std::string(name) == "Dockerfile.init" ? "tenantdb-init" : "tenantdb-sidecar";
    std::vector<std::string> from;
    std::istringstream lines(text);
    std::string last_user;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("FROM ", 0) == 0) from.push_back(line.substr(5, line.find(' ', 5) - 5));
      if (line.rfind("USER ", 0) == 0) last_user = line.substr(5);
    }
    ASSERT_EQ(from.size(), 2u) << name;
    EXPECT_EQ(from[0], "debian:bookworm") << name;
    EXPECT_EQ(from[1], "scratch") << name;
    EXPECT_EQ(last_user, "65532:65532") << name;
    for (const char* needle : {"tools/install-deps.sh", "tools/build-static.sh", "tools/check-static.sh",
                               "/etc/ssl/certs/ca-certificates.crt", "65532:65532", "ENTRYPOINT"})
      EXPECT_NE(text.find(needle), std::string::npos) << name << " lacks " << needle;
    EXPECT_NE(text.find("ENTRYPOINT [\"/" + binary + "\"]"), std::string::npos) << name;
    // Every script it runs exists.
    static const std::regex script(R"(tools/[a-z0-9-]+\.sh)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), script); it != std::sregex_iterator(); ++it)
      EXPECT_TRUE(fs::is_regular_file(source_dir / it->str()))
          << name << " runs " << it->str() << ", which does not exist";
  }
  // The images are built by the script CI runs (via tools/static-smoke.sh), so the two
  // cannot drift apart.
  const std::string smoke = read_text(source_dir / "tools" / "static-smoke.sh");
  EXPECT_NE(smoke.find("tools/build-static.sh"), std::string::npos);
  const std::string test_command = read_text(source_dir / "tools" / "test.sh");
  EXPECT_NE(test_command.find("tools/static-smoke.sh"), std::string::npos) << "CI does not build the static binaries";
}

}  // namespace
