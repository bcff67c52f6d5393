#include "pod.hpp"

#include <arpa/inet.h>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <rapidjson/document.h>

#include "process.hpp"
#include "tenantdb/dsn.hpp"
#include "testdb.hpp"

namespace fs = std::filesystem;

namespace tenantdb::test {

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string connector_secret_json(const std::string& which, const std::string& ns, const std::string& name) {
  std::string data;
  for (const auto& entry : fs::directory_iterator(testdb_dir() / (which + ".connector"))) {
    if (!data.empty()) data += ",";
    data += "\"" + entry.path().filename().string() + "\":\"" + base64(read_file(entry.path().string())) + "\"";
  }
  return R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":")" + name + R"(","namespace":")" + ns +
         R"("},"type":"Opaque","data":{)" + data + "}}";
}

void set_up_pod(KubeStandin& api, const pod_identity& who, const std::string& which, const std::string& secret_name) {
  api.add_token(who.token, who.user);
  api.allow(who.user, "get", who.connector_ns, "secrets", who.connector_name);
  api.allow(who.user, "get", who.ns, "secrets", secret_name);
  api.allow(who.user, "update", who.ns, "secrets", secret_name);
  api.allow(who.user, "create", who.ns, "secrets");
  api.allow(who.user, "create", who.ns, "events");  // optional in manifests/rbac.yaml
  api.put_object(connector_secret_json(which, who.connector_ns, who.connector_name));
}

void write_kubeconfig(const fs::path& path, const KubeStandin& api, const pod_identity& who) {
  std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n"
                      << "    server: " << api.url() << "\n    certificate-authority-data: " << base64(api.ca_pem())
                      << "\nusers:\n- name: sa\n  user:\n    token: " << who.token
                      << "\ncontexts:\n- name: c\n  context:\n    cluster: standin\n    user: sa\n"
                      << "    namespace: " << who.ns << "\ncurrent-context: c\n";
}

int connect_from(const std::string& source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

http_reply http(std::uint16_t port, const std::string& method, const std::string& path, const std::string& extra) {
  http_reply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
                          (extra.empty() && method == "POST" ? "Content-Length: 0\r\n" : extra) + "\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto head_end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, head_end);
  r.body = raw.substr(head_end + 4);
  return r;
}

std::string secret_annotation(const KubeStandin& api, const std::string& ns, const std::string& name,
                              const std::string& key) {
  const auto object = api.get_object("secrets", ns, name);
  if (!object) return {};
  rapidjson::Document doc;
  doc.Parse(object->data(), object->size());
  if (doc.HasParseError() || !doc.HasMember("metadata")) return {};
  const auto& meta = doc["metadata"];
  if (!meta.HasMember("annotations")) return {};
  const auto& a = meta["annotations"];
  const auto it = a.FindMember(key.c_str());
  return it == a.MemberEnd() || !it->value.IsString() ? std::string() : std::string(it->value.GetString());
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t i = 0; i <= lines; ++i) {
    if (pos == 0) return text;
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

}  // namespace tenantdb::test

namespace tenantdb::test {

std::string find_password(const std::string& text, const std::vector<std::string>& passwords) {
  for (std::size_t i = 0; i < passwords.size(); ++i) {
    const std::string& p = passwords[i];
    if (p.empty()) continue;
    if (text.find(p) != std::string::npos) return "password #" + std::to_string(i) + " raw";
    if (const std::string url = percent_encode(p); text.find(url) != std::string::npos)
      return "password #" + std::to_string(i) + " URL-encoded";
    // base64 at each of the three alignments inside a longer encoded value: the part
    // not touched by its neighbours.
    for (std::size_t head = 0; head < 3; ++head) {
      const std::string encoded = base64(std::string(head, 'x') + p);
      const std::size_t skip = head == 0 ? 0 : 4;
      if (encoded.size() < skip + 4 + 8) continue;
      if (text.find(encoded.substr(skip, encoded.size() - skip - 4)) != std::string::npos)
        return "password #" + std::to_string(i) + " base64";
    }
  }
  return {};
}

}  // namespace tenantdb::test
