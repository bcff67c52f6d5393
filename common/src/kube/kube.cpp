#include "tenantdb/kube.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include "base/base64.hpp"
#include "base/small_file.hpp"
#include "tenantdb/dsn.hpp"
#include "tenantdb/error.hpp"
#include "tenantdb/log.hpp"
#include "tenantdb/time.hpp"

#ifndef TENANTDB_VERSION
#define TENANTDB_VERSION "unknown"
#endif

namespace tenantdb {
namespace {

/// Larger answers are refused: nothing we ask for comes near it, and a bound keeps a
/// misbehaving server or proxy from exhausting memory.
constexpr std::size_t max_response_bytes = std::size_t{8} << 20;
constexpr std::size_t max_token_bytes = std::size_t{64} << 10;
constexpr std::size_t max_ca_bytes = std::size_t{4} << 20;
/// API messages are quoted in our errors; longer ones are cut.
constexpr std::size_t max_api_message = 1024;

constexpr std::string_view user_agent = "tenantdb/" TENANTDB_VERSION;

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw error(error_kind::internal, "libcurl could not be initialised (curl_global_init failed)");
  });
}

/// Appends to a buffer that may hold Secret data. Growing moves the bytes to a bigger
/// allocation and wipes the old one, so no stale copy is left in freed memory.
void append_wiping(std::string& buffer, const char* data, std::size_t size) {
  if (buffer.size() + size > buffer.capacity()) {
    std::string bigger;
    bigger.reserve(std::max({buffer.capacity() * 2, buffer.size() + size, std::size_t{1024}}));
    bigger.append(buffer);
    wipe(buffer);
    buffer.swap(bigger);
  }
  buffer.append(data, size);
}

/// A rapidjson output stream over append_wiping.
class wiping_stream {
public:
  using Ch = char;
  explicit wiping_stream(std::string& out) : out_(out) {}
  void Put(char c) { append_wiping(out_, &c, 1); }
  void Flush() {}

private:
  std::string& out_;
};

/// A watch's stream: the body of a 200 answer is cut into lines, each handed to
/// `on_line`; any other answer is kept whole in the response body (a Status).
struct line_stream {
  CURL* handle = nullptr;
  std::function<void()> on_open;
  std::function<bool(std::string&)> on_line;  ///< false: stop the transfer
  const std::atomic<bool>* stop = nullptr;
  std::string line;  ///< the unfinished line; may hold Secret data
  long status = 0;   ///< of the answer, once its body starts
  bool line_too_long = false;
  bool stopped = false;        ///< on_line or *stop ended the transfer
  std::exception_ptr failure;  ///< thrown by a callback, rethrown after the transfer
};

/// Event lines longer than this are refused: a Secret is at most 1 MiB.
constexpr std::size_t max_line_bytes = std::size_t{8} << 20;

struct write_target {
  std::string* body;
  bool too_large = false;
  line_stream* stream = nullptr;
};

/// Feeds a 200 answer's bytes to the line stream; false stops the transfer.
bool feed_lines(line_stream& s, const char* data, std::size_t bytes) {
  try {
    std::size_t at = 0;
    while (at < bytes) {
      const char* newline = static_cast<const char*>(std::memchr(data + at, '\n', bytes - at));
      const std::size_t take = newline == nullptr ? bytes - at : static_cast<std::size_t>(newline - (data + at));
      if (s.line.size() + take > max_line_bytes) {
        s.line_too_long = true;
        return false;
      }
      append_wiping(s.line, data + at, take);
      at += take;
      if (newline == nullptr) break;
      ++at;  // the newline
      if (!s.line.empty() && !s.on_line(s.line)) {
        wipe(s.line);
        s.stopped = true;
        return false;
      }
      wipe(s.line);
    }
    return true;
  } catch (...) {
    s.failure = std::current_exception();
    wipe(s.line);
    return false;
  }
}

extern "C" std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* target = static_cast<write_target*>(user);
  const std::size_t bytes = size * count;
  if (line_stream* s = target->stream) {
    if (s->status == 0) {
      curl_easy_getinfo(s->handle, CURLINFO_RESPONSE_CODE, &s->status);
      if (s->status == 200 && s->on_open) s->on_open();
    }
    if (s->status == 200) return feed_lines(*s, data, bytes) ? bytes : 0;
  }
  if (target->body->size() + bytes > max_response_bytes) {
    target->too_large = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  append_wiping(*target->body, data, bytes);
  return bytes;
}

/// Tells the line stream that the answer's headers are complete: a watch that streams
/// may send no body byte for a long time, so it is "open" at its 200 header, not at its
/// first event.
extern "C" std::size_t watch_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* s = static_cast<line_stream*>(user);
  const std::size_t bytes = size * count;
  const bool end_of_headers = (bytes == 2 && data[0] == '\r' && data[1] == '\n') || (bytes == 1 && data[0] == '\n');
  if (end_of_headers && s->status == 0) {
    long status = 0;
    curl_easy_getinfo(s->handle, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) {  // not an interim 1xx answer
      s->status = status;
      if (status == 200 && s->on_open) s->on_open();
    }
  }
  return bytes;
}

/// Aborts a watch's transfer once its stop flag is set (libcurl calls this about once
/// a second while the stream is idle, more often while data flows).
extern "C" int watch_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<line_stream*>(user);
  if (s->stop != nullptr && s->stop->load()) {
    s->stopped = true;
    return 1;
  }
  return 0;
}

std::string errno_text(int code) {
  return std::generic_category().message(code);
}

void trim_trailing_whitespace(std::string& text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
    text.pop_back();
}

std::string secret_label(const std::string& ns, const std::string& name) {
  return "secret \"" + ns + "/" + name + "\"";
}

/// Keeps API messages printable and bounded before they go into our errors.
std::string clean_message(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, max_api_message)) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(byte < 0x20 || byte == 0x7f ? ' ' : c);
  }
  if (text.size() > max_api_message) out += "...";
  return out;
}

std::string secret_path(const std::string& ns, const std::string& name) {
  std::string path = "/api/v1/namespaces/" + percent_encode(ns) + "/secrets";
  if (!name.empty()) path += "/" + percent_encode(name);
  return path;
}

const char* status_text(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

std::string status_label(long status) {
  std::string label = "HTTP " + std::to_string(status);
  if (const char* text = status_text(status); *text != '\0') label += std::string(" ") + text;
  return label;
}

void write_string_map(rapidjson::Writer<wiping_stream>& writer, const char* key,
                      const std::map<std::string, std::string>& values) {
  if (values.empty()) return;
  writer.Key(key);
  writer.StartObject();
  for (const auto& [k, v] : values) {
    writer.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    writer.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
  writer.EndObject();
}

/// The Secret as JSON. The result holds Secret data: the caller wipes it.
std::string secret_to_json(const secret_object& object) {
  std::size_t estimate = 512 + object.name.size() + object.namespace_name.size() + object.type.size();
  for (const auto& [k, v] : object.labels) estimate += k.size() + v.size() + 8;
  for (const auto& [k, v] : object.annotations) estimate += 2 * (k.size() + v.size()) + 8;
  for (const auto& [k, v] : object.data) estimate += k.size() + (v.size() + 2) / 3 * 4 + 8;

  std::string out;
  out.reserve(estimate);
  wiping_stream stream(out);
  rapidjson::Writer<wiping_stream> writer(stream);
  writer.StartObject();
  writer.Key("apiVersion");
  writer.String("v1");
  writer.Key("kind");
  writer.String("Secret");
  writer.Key("metadata");
  writer.StartObject();
  writer.Key("name");
  writer.String(object.name);
  writer.Key("namespace");
  writer.String(object.namespace_name);
  if (!object.resource_version.empty()) {
    writer.Key("resourceVersion");
    writer.String(object.resource_version);
  }
  if (!object.uid.empty()) {
    writer.Key("uid");
    writer.String(object.uid);
  }
  write_string_map(writer, "labels", object.labels);
  write_string_map(writer, "annotations", object.annotations);
  writer.EndObject();
  writer.Key("type");
  writer.String(object.type.empty() ? std::string("Opaque") : object.type);
  writer.Key("data");
  writer.StartObject();
  for (const auto& [key, value] : object.data) {
    writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    std::string encoded = base64_encode(value.reveal());
    writer.String(encoded.data(), static_cast<rapidjson::SizeType>(encoded.size()));
    wipe(encoded);
  }
  writer.EndObject();
  writer.EndObject();
  return out;
}

[[noreturn]] void throw_bad_answer(const std::string& what, const std::string& detail) {
  throw error(error_kind::kubernetes, what + ": the API server's answer is not a valid Secret (" + detail + ")");
}

std::string member_string(const rapidjson::Value& object, const char* key, const std::string& what) {
  const auto it = object.FindMember(key);
  if (it == object.MemberEnd() || it->value.IsNull()) return {};
  if (!it->value.IsString()) throw_bad_answer(what, std::string(key) + " is not a string");
  return {it->value.GetString(), it->value.GetStringLength()};
}

std::map<std::string, std::string> member_string_map(const rapidjson::Value& object, const char* key,
                                                     const std::string& what) {
  std::map<std::string, std::string> out;
  const auto it = object.FindMember(key);
  if (it == object.MemberEnd() || it->value.IsNull()) return out;
  if (!it->value.IsObject()) throw_bad_answer(what, std::string(key) + " is not an object");
  for (const auto& member : it->value.GetObject()) {
    if (!member.value.IsString()) throw_bad_answer(what, std::string(key) + " holds a value that is not a string");
    out.emplace(std::string(member.name.GetString(), member.name.GetStringLength()),
                std::string(member.value.GetString(), member.value.GetStringLength()));
  }
  return out;
}

/// Parses a Secret from `body` in place (decoded strings stay inside `body`, which the
/// caller wipes), so the Secret's data is not copied into parser-owned memory.
secret_object secret_from_value(const rapidjson::Value& doc, const std::string& what) {
  if (!doc.IsObject()) throw_bad_answer(what, "not a JSON object");
  if (member_string(doc, "kind", what) != "Secret") throw_bad_answer(what, "kind is not Secret");
  const auto metadata = doc.FindMember("metadata");
  if (metadata == doc.MemberEnd() || !metadata->value.IsObject()) throw_bad_answer(what, "no metadata");

  secret_object out;
  const rapidjson::Value& meta = metadata->value;
  out.name = member_string(meta, "name", what);
  out.namespace_name = member_string(meta, "namespace", what);
  out.resource_version = member_string(meta, "resourceVersion", what);
  out.uid = member_string(meta, "uid", what);
  out.labels = member_string_map(meta, "labels", what);
  out.annotations = member_string_map(meta, "annotations", what);
  out.type = member_string(doc, "type", what);

  const auto data = doc.FindMember("data");
  if (data != doc.MemberEnd() && !data->value.IsNull()) {
    if (!data->value.IsObject()) throw_bad_answer(what, "data is not an object");
    for (const auto& member : data->value.GetObject()) {
      const std::string key(member.name.GetString(), member.name.GetStringLength());
      if (!member.value.IsString()) throw_bad_answer(what, "data key \"" + key + "\" is not a string");
      auto decoded = base64_decode({member.value.GetString(), member.value.GetStringLength()});
      if (!decoded) throw_bad_answer(what, "data key \"" + key + "\" is not valid base64");
      out.data.insert_or_assign(key, secret(std::move(*decoded)));
      wipe(*decoded);  // a moved-from short string keeps its bytes in place
    }
  }
  return out;
}

secret_object secret_from_json(std::string& body, const std::string& what) {
  rapidjson::Document doc;
  doc.ParseInsitu(body.data());
  if (doc.HasParseError() || !doc.IsObject()) throw_bad_answer(what, "not a JSON object");
  return secret_from_value(doc, what);
}

struct status_fields {
  std::string message;
  std::string reason;
  long code = 0;
};

status_fields parse_status(const std::string& body) {
  status_fields out;
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return out;
  const auto string_of = [&doc](const char* key) -> std::string {
    const auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsString()) return {};
    return {it->value.GetString(), it->value.GetStringLength()};
  };
  out.message = clean_message(string_of("message"));
  out.reason = clean_message(string_of("reason"));
  if (const auto it = doc.FindMember("code"); it != doc.MemberEnd() && it->value.IsInt64())
    out.code = static_cast<long>(it->value.GetInt64());
  return out;
}

/// Wipes a string that held a credential when the scope ends, however it ends.
class wipe_on_exit {
public:
  explicit wipe_on_exit(std::string& value) noexcept : value_(value) {}
  wipe_on_exit(const wipe_on_exit&) = delete;
  wipe_on_exit& operator=(const wipe_on_exit&) = delete;
  ~wipe_on_exit() { wipe(value_); }

private:
  std::string& value_;
};

/// Owns a curl_slist.
class header_list {
public:
  explicit header_list(curl_slist* list) noexcept : list_(list) {}
  header_list(const header_list&) = delete;
  header_list& operator=(const header_list&) = delete;
  ~header_list() { curl_slist_free_all(list_); }
  curl_slist* get() const noexcept { return list_; }
  explicit operator bool() const noexcept { return list_ != nullptr; }
  /// Appends a copy of `line`; on failure the whole list is freed and becomes empty.
  void append(const char* line) noexcept {
    curl_slist* longer = curl_slist_append(list_, line);
    if (longer == nullptr) {
      curl_slist_free_all(list_);
      list_ = nullptr;
    } else {
      list_ = longer;
    }
  }

private:
  curl_slist* list_;
};

}  // namespace

// ---------------------------------------------------------------------------------------

struct kube_client::impl {
  std::mutex mutex;
  CURL* handle = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::string base_url;

  ~impl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }

  template <typename T>
  void set(CURLoption option, T value, const char* name) {
    if (const CURLcode rc = curl_easy_setopt(handle, option, value); rc != CURLE_OK)
      throw error(error_kind::internal, std::string("libcurl refused option ") + name + ": " + curl_easy_strerror(rc) +
                                            " (this libcurl is too old or not built with OpenSSL)");
  }
};

kube_client::kube_client(kube_config config) : config_(std::move(config)), impl_(std::make_unique<impl>()) {
  if (config_.server.rfind("https://", 0) != 0)
    throw error(error_kind::kubernetes, "the API server URL must start with https:// (TLS is always verified)")
        .about("server");
  init_curl_once();
  impl_->base_url = config_.server;
  while (!impl_->base_url.empty() && impl_->base_url.back() == '/') impl_->base_url.pop_back();

  impl_->handle = curl_easy_init();
  if (impl_->handle == nullptr) throw error(error_kind::internal, "libcurl could not create a handle");

  auto& h = *impl_;
  h.set(CURLOPT_NOSIGNAL, 1L, "NOSIGNAL");
  h.set(CURLOPT_ERRORBUFFER, h.error_buffer, "ERRORBUFFER");
  h.set(CURLOPT_PROTOCOLS_STR, "https", "PROTOCOLS_STR");
  h.set(CURLOPT_REDIR_PROTOCOLS_STR, "https", "REDIR_PROTOCOLS_STR");
  h.set(CURLOPT_FOLLOWLOCATION, 0L, "FOLLOWLOCATION");  // never send the token elsewhere
  h.set(CURLOPT_SSL_VERIFYPEER, 1L, "SSL_VERIFYPEER");
  h.set(CURLOPT_SSL_VERIFYHOST, 2L, "SSL_VERIFYHOST");
  h.set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout.count()), "CONNECTTIMEOUT_MS");
  h.set(CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()), "TIMEOUT_MS");
  h.set(CURLOPT_TCP_KEEPALIVE, 1L, "TCP_KEEPALIVE");
  h.set(CURLOPT_USERAGENT, user_agent.data(), "USERAGENT");
  h.set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_response_bytes), "MAXFILESIZE_LARGE");
  h.set(CURLOPT_WRITEFUNCTION, &write_body, "WRITEFUNCTION");

  if (!config_.ca_pem.empty()) {
    curl_blob ca{config_.ca_pem.data(), config_.ca_pem.size(), CURL_BLOB_COPY};
    h.set(CURLOPT_CAINFO_BLOB, &ca, "CAINFO_BLOB");
    // Trust only this CA: without these, libcurl also loads the system bundle.
    h.set(CURLOPT_CAINFO, static_cast<const char*>(nullptr), "CAINFO");
    h.set(CURLOPT_CAPATH, static_cast<const char*>(nullptr), "CAPATH");
  }
  if (!config_.client_cert_pem.empty() || !config_.client_key_pem.empty()) {
    if (config_.client_cert_pem.empty() || config_.client_key_pem.empty())
      throw error(error_kind::kubernetes, "client-certificate authentication needs both a certificate and a key")
          .about("client-certificate");
    curl_blob cert{config_.client_cert_pem.data(), config_.client_cert_pem.size(), CURL_BLOB_COPY};
    // libcurl copies the key once, here, for the life of the handle.
    std::string key_copy = config_.client_key_pem.reveal();
    curl_blob key{key_copy.data(), key_copy.size(), CURL_BLOB_COPY};
    h.set(CURLOPT_SSLCERT_BLOB, &cert, "SSLCERT_BLOB");
    h.set(CURLOPT_SSLCERTTYPE, "PEM", "SSLCERTTYPE");
    h.set(CURLOPT_SSLKEY_BLOB, &key, "SSLKEY_BLOB");
    h.set(CURLOPT_SSLKEYTYPE, "PEM", "SSLKEYTYPE");
    wipe(key_copy);
  }
}

kube_client::~kube_client() = default;

namespace {

/// What went wrong in libcurl, in the user's words.
[[noreturn]] void throw_transport_error(CURLcode rc, const char* detail_buffer, const std::string& what,
                                        const std::string& server, bool too_large) {
  std::string detail = detail_buffer[0] != '\0' ? std::string(detail_buffer) : std::string(curl_easy_strerror(rc));
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      throw error(
          error_kind::kubernetes,
          what + ": the API server's certificate at " + server +
              " did not verify against the CA (in-cluster ca.crt / kubeconfig certificate-authority): " + detail)
          .about("certificate-authority");
    case CURLE_SSL_CACERT_BADFILE:
      throw error(error_kind::kubernetes, what +
                                              ": the CA bundle (in-cluster ca.crt / kubeconfig "
                                              "certificate-authority) could not be loaded: " +
                                              detail)
          .about("certificate-authority");
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
      throw error(
          error_kind::kubernetes,
          what +
              ": the client certificate or key (kubeconfig client-certificate/client-key) could not be used: " + detail)
          .about("client-certificate");
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
      if (too_large || rc == CURLE_FILESIZE_EXCEEDED)
        throw error(error_kind::kubernetes, what + ": the API server's answer is larger than " +
                                                std::to_string(max_response_bytes >> 20) + " MiB; refused");
      break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      throw error(error_kind::kubernetes,
                  what + ": the API server URL " + server + " is not a valid https:// URL: " + detail)
          .about("server");
    case CURLE_OPERATION_TIMEDOUT:
      throw error(error_kind::unavailable,
                  what + ": the API server at " + server + " did not answer in time: " + detail)
          .retryable();
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_AGAIN:
    case CURLE_PROXY:
      throw error(error_kind::unavailable, what + ": cannot reach the API server at " + server + ": " + detail)
          .retryable();
    default: break;
  }
  throw error(error_kind::kubernetes, what + ": the request to the API server at " + server + " failed: " + detail);
}

}  // namespace

kube_response kube_client::request(const std::string& method, const std::string& path, const std::string& body,
                                   const std::string& content_type) {
  return perform(method, path, body, content_type, method + " " + path);
}

struct kube_client::stream_sink {
  line_stream lines;
};

kube_response kube_client::perform(const std::string& method, const std::string& path, const std::string& body,
                                   const std::string& content_type, const std::string& what,
                                   std::chrono::milliseconds timeout, stream_sink* stream) {
  // Re-read for every request: projected service-account tokens rotate.
  std::string token;
  const wipe_on_exit token_guard{token};
  if (!config_.token_file.empty()) {
    if (const int rc = read_small_file(config_.token_file, max_token_bytes, token); rc != 0)
      throw error(error_kind::kubernetes, what + ": cannot read the service-account token file " +
                                              config_.token_file.string() + ": " + errno_text(rc))
          .about("token file");
    trim_trailing_whitespace(token);
    if (token.empty())
      throw error(error_kind::kubernetes,
                  what + ": the service-account token file " + config_.token_file.string() + " is empty")
          .about("token file");
  } else if (!config_.token.empty()) {
    token.reserve(config_.token.size());
    token.append(config_.token.reveal());
  }
  if (std::any_of(token.begin(), token.end(), [](char c) { return c < 0x21 || c > 0x7e; }))
    throw error(error_kind::kubernetes,
                what + ": the bearer token contains characters that cannot go into an HTTP header (from " +
                    (config_.token_file.empty() ? std::string("the kubeconfig") : config_.token_file.string()) + ")")
        .about("token");

  static constexpr std::string_view auth_prefix = "Authorization: Bearer ";
  std::string auth_header;
  const wipe_on_exit auth_guard{auth_header};
  if (!token.empty()) {
    auth_header.reserve(auth_prefix.size() + token.size() + 1);
    auth_header.append(auth_prefix).append(token);
  }

  const bool sends_body = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  const std::string content_type_header = "Content-Type: " + content_type;
  header_list headers(curl_slist_append(nullptr, "Accept: application/json"));
  if (headers && sends_body) headers.append(content_type_header.c_str());
  if (headers) headers.append("Expect:");  // no 100-continue round trip
  if (!headers) throw error(error_kind::internal, what + ": out of memory building request headers");
  // The Authorization node points at our buffer: curl_slist_append would copy the token
  // into memory we cannot wipe.
  curl_slist authorization{};
  curl_slist* first = headers.get();
  if (!auth_header.empty()) {
    authorization.data = auth_header.data();
    authorization.next = headers.get();
    first = &authorization;
  }

  const std::string url = impl_->base_url + path;
  kube_response response;
  write_target target{&response.body, false, stream != nullptr ? &stream->lines : nullptr};
  CURLcode rc = CURLE_OK;
  const auto started = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(impl_->mutex);
    CURL* handle = impl_->handle;
    impl_->error_buffer[0] = '\0';
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, first);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &target);
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, static_cast<const char*>(nullptr));
    curl_easy_setopt(handle, CURLOPT_NOBODY, 0L);
    const bool own_timeout = timeout.count() > 0;
    if (own_timeout) curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    if (stream != nullptr) {
      // A watch streams for as long as it lasts: no size cap on the whole (each line has
      // one), and the stop flag is polled from the progress callback.
      stream->lines.handle = handle;
      curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(0));
      curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, &watch_progress);
      curl_easy_setopt(handle, CURLOPT_XFERINFODATA, static_cast<void*>(&stream->lines));
      curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &watch_header);
      curl_easy_setopt(handle, CURLOPT_HEADERDATA, static_cast<void*>(&stream->lines));
    }
    if (sends_body) {
      curl_easy_setopt(handle, CURLOPT_POST, 1L);
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
      if (method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
      if (method == "HEAD")
        curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
      else if (method != "GET")
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    rc = curl_easy_perform(handle);
    if (rc == CURLE_OK) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
    if (own_timeout) curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()));
    // Nothing borrowed may outlive this call in the handle.
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, static_cast<void*>(nullptr));
    if (stream != nullptr) {
      curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 1L);
      curl_easy_setopt(handle, CURLOPT_XFERINFODATA, static_cast<void*>(nullptr));
      curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, static_cast<curl_write_callback>(nullptr));
      curl_easy_setopt(handle, CURLOPT_HEADERDATA, static_cast<void*>(nullptr));
      curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_response_bytes));
      wipe(stream->lines.line);
      if (stream->lines.failure) std::rethrow_exception(stream->lines.failure);
      if (stream->lines.line_too_long)
        throw error(error_kind::kubernetes,
                    what + ": a watch event is larger than " + std::to_string(max_line_bytes >> 20) + " MiB; refused");
      if (stream->lines.stopped && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)) {
        rc = CURLE_OK;
        curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
      }
    }
    if (rc != CURLE_OK) {
      const std::string detail(impl_->error_buffer);
      wipe(response.body);
      log::debug("kubernetes API request failed",
                 {{"method", method}, {"path", path}, {"curl", curl_easy_strerror(rc)}});
      throw_transport_error(rc, detail.c_str(), what, impl_->base_url, target.too_large);
    }
  }
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  log::debug("kubernetes API request", {{"method", method},
                                        {"path", path},
                                        {"status", static_cast<std::int64_t>(response.status)},
                                        {"ms", static_cast<std::int64_t>(elapsed.count())}});
  return response;
}

namespace {

/// throw_api_error, then wipes the body (an error Status holds no Secret data, but be sure).
[[noreturn]] void throw_api_error_wiping(kube_response& response, const std::string& what) {
  try {
    throw_api_error(response, what);
  } catch (...) {
    wipe(response.body);
    throw;
  }
}

/// The Secret in a 2xx answer, or std::nullopt for any other status. Wipes the body
/// once parsed.
std::optional<secret_object> parse_secret_answer(kube_response& response, const std::string& what) {
  try {
    if (response.status < 200 || response.status >= 300) return std::nullopt;
    secret_object object = secret_from_json(response.body, what);
    wipe(response.body);
    return object;
  } catch (...) {
    wipe(response.body);
    throw;
  }
}

}  // namespace

std::optional<secret_object> kube_client::get_secret(const std::string& ns, const std::string& name) {
  const std::string what = "get " + secret_label(ns, name);
  kube_response response = perform("GET", secret_path(ns, name), {}, "application/json", what);
  if (response.status == 404) {
    wipe(response.body);
    return std::nullopt;
  }
  if (auto object = parse_secret_answer(response, what)) return object;
  throw_api_error_wiping(response, what);
}

secret_object kube_client::create_secret(const secret_object& object) {
  const std::string what = "create " + secret_label(object.namespace_name, object.name);
  std::string body = secret_to_json(object);
  const wipe_on_exit body_guard(body);
  kube_response response = perform("POST", secret_path(object.namespace_name, {}), body, "application/json", what);
  if (auto created = parse_secret_answer(response, what)) return std::move(*created);
  throw_api_error_wiping(response, what);
}

secret_object kube_client::update_secret(const secret_object& object) {
  const std::string what = "update " + secret_label(object.namespace_name, object.name);
  if (object.resource_version.empty())
    throw error(error_kind::internal, what + ": no resourceVersion to make the update conditional on");
  std::string body = secret_to_json(object);
  const wipe_on_exit body_guard(body);
  kube_response response =
      perform("PUT", secret_path(object.namespace_name, object.name), body, "application/json", what);
  if (auto updated = parse_secret_answer(response, what)) return std::move(*updated);
  throw_api_error_wiping(response, what);
}

namespace {

constexpr std::size_t max_event_message = 1024;

void write_string(rapidjson::Writer<rapidjson::StringBuffer>& writer, const char* key, const std::string& value) {
  writer.Key(key);
  writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

/// Cuts at a UTF-8 character boundary so the result stays valid UTF-8.
std::string cut_utf8(const std::string& text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) --end;
  return text.substr(0, end);
}

std::string event_to_json(const event_object& e) {
  const std::string now = format_rfc3339(std::chrono::system_clock::now());
  // eventTime is a MicroTime: exactly six fractional digits.
  std::string micro = now;
  if (micro.size() == 20 && micro.back() == 'Z') micro.insert(19, ".000000");
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  write_string(w, "apiVersion", "v1");
  write_string(w, "kind", "Event");
  w.Key("metadata");
  w.StartObject();
  write_string(w, "generateName", e.involved_name + ".");
  write_string(w, "namespace", e.namespace_name);
  w.EndObject();
  w.Key("involvedObject");
  w.StartObject();
  write_string(w, "apiVersion", "v1");
  write_string(w, "kind", e.involved_kind);
  write_string(w, "namespace", e.namespace_name);
  write_string(w, "name", e.involved_name);
  if (!e.involved_uid.empty()) write_string(w, "uid", e.involved_uid);
  w.EndObject();
  write_string(w, "type", e.type);
  write_string(w, "reason", e.reason);
  write_string(w, "message", cut_utf8(e.message, max_event_message));
  write_string(w, "action", e.action);
  write_string(w, "reportingComponent", e.component);
  write_string(w, "reportingInstance", e.instance);
  w.Key("source");
  w.StartObject();
  write_string(w, "component", e.component);
  if (!e.instance.empty()) write_string(w, "host", e.instance);
  w.EndObject();
  write_string(w, "eventTime", micro);
  write_string(w, "firstTimestamp", now);
  write_string(w, "lastTimestamp", now);
  w.Key("count");
  w.Int(1);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace

void kube_client::create_event(const event_object& event, std::chrono::milliseconds timeout) {
  const std::string what = "create event " + event.reason + " about " + event.involved_kind + " \"" +
                           event.namespace_name + "/" + event.involved_name + "\"";
  const std::string path = "/api/v1/namespaces/" + percent_encode(event.namespace_name) + "/events";
  kube_response response = perform("POST", path, event_to_json(event), "application/json", what, timeout);
  if (response.status >= 200 && response.status < 300) return;
  throw_api_error(response, what);
}

namespace {

/// One watch event line, parsed in place (the Secret's decoded data stays in `line`,
/// which the caller wipes).
secret_watch_event parse_watch_event(std::string& line, const std::string& what) {
  rapidjson::Document doc;
  doc.ParseInsitu(line.data());
  if (doc.HasParseError() || !doc.IsObject())
    throw error(error_kind::kubernetes, what + ": a watch event is not a JSON object");
  const std::string type = member_string(doc, "type", what);
  const auto object = doc.FindMember("object");
  if (object == doc.MemberEnd() || !object->value.IsObject())
    throw error(error_kind::kubernetes, what + ": a watch event (" + clean_message(type) + ") has no object");
  const rapidjson::Value& o = object->value;
  secret_watch_event event;
  if (type == "ERROR") {
    event.type = secret_watch_event::kind::error;
    event.message = clean_message(member_string(o, "message", what));
    event.reason = clean_message(member_string(o, "reason", what));
    if (const auto code = o.FindMember("code"); code != o.MemberEnd() && code->value.IsInt64())
      event.code = static_cast<long>(code->value.GetInt64());
    return event;
  }
  if (type == "BOOKMARK") {
    // Only metadata.resourceVersion is meaningful in a bookmark's object.
    event.type = secret_watch_event::kind::bookmark;
    const auto metadata = o.FindMember("metadata");
    if (metadata != o.MemberEnd() && metadata->value.IsObject())
      event.resource_version = member_string(metadata->value, "resourceVersion", what);
    if (event.resource_version.empty())
      throw error(error_kind::kubernetes, what + ": a BOOKMARK event has no resourceVersion");
    return event;
  }
  if (type == "ADDED")
    event.type = secret_watch_event::kind::added;
  else if (type == "MODIFIED")
    event.type = secret_watch_event::kind::modified;
  else if (type == "DELETED")
    event.type = secret_watch_event::kind::deleted;
  else
    throw error(error_kind::kubernetes, what + ": unknown watch event type \"" + clean_message(type) + "\"");
  event.object = secret_from_value(o, what);
  event.resource_version = event.object->resource_version;
  return event;
}

}  // namespace

void kube_client::watch_secret(const std::string& ns, const std::string& name, const std::string& resource_version,
                               std::chrono::seconds timeout, const std::function<void()>& on_open,
                               const std::function<bool(secret_watch_event&)>& on_event,
                               const std::atomic<bool>* stop) {
  const std::string what = "watch " + secret_label(ns, name);
  std::string path = secret_path(ns, {}) + "?watch=1&fieldSelector=" + percent_encode("metadata.name=" + name);
  if (!resource_version.empty()) path += "&resourceVersion=" + percent_encode(resource_version);
  path += "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout.count());
  stream_sink sink;
  sink.lines.on_open = on_open;
  sink.lines.stop = stop;
  sink.lines.on_line = [&](std::string& line) {
    secret_watch_event event = parse_watch_event(line, what);
    return on_event(event);
  };
  // The server ends the watch after timeoutSeconds; our own deadline is a minute later,
  // for a server that never does.
  const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(timeout + std::chrono::minutes(1));
  kube_response response = perform("GET", path, {}, "application/json", what, deadline, &sink);
  if (response.status >= 200 && response.status < 300) return;
  throw_api_error_wiping(response, what);
}

void throw_api_error(const kube_response& response, const std::string& what) {
  const status_fields status = parse_status(response.body);
  const long code = response.status;
  const int http = static_cast<int>(code);
  // The Status reason ("AlreadyExists", "Conflict") says more than the status line.
  const std::string label =
      status.reason.empty() ? status_label(code) : "HTTP " + std::to_string(code) + " " + status.reason;
  const std::string api_message = status.message.empty() ? label : status.message;

  if (code == 401)
    throw error(error_kind::kubernetes, what +
                                            ": the API server rejected our credentials (Unauthorized): the "
                                            "service-account token is missing, expired or not accepted")
        .http_status(http);
  if (code == 403) {
    const std::string message = status.message.empty() ? "forbidden (" + label + ")" : status.message;
    throw error(error_kind::kubernetes,
                what + ": " + message + " — grant it with the Role in manifests/ (see README, RBAC)")
        .http_status(http);
  }
  if (code == 404) throw error(error_kind::kubernetes, what + ": not found: " + api_message).http_status(http);
  if (code == 409)
    throw error(error_kind::kubernetes, what + ": " + api_message + " (" + label + ")").http_status(http);
  if (code == 400 || code == 422)
    throw error(error_kind::kubernetes, what + ": the API server rejected the object: " + api_message)
        .http_status(http);
  if (code == 408 || code == 429 || (code >= 500 && code <= 599)) {
    const std::string why = code == 429 ? "the API server is overloaded" : "the API server failed";
    std::string message = what + ": " + why + " (" + label + ")";
    if (!status.message.empty()) message += ": " + status.message;
    throw error(error_kind::unavailable, message).http_status(http).retryable();
  }
  throw error(error_kind::kubernetes, what + ": unexpected answer from the API server (" + label + ")" +
                                          (status.message.empty() ? std::string() : ": " + status.message))
      .http_status(http);
}

// ---------------------------------------------------------------------------------------

namespace {

[[noreturn]] void throw_not_in_cluster(const std::string& what, const std::string& key) {
  throw error(error_kind::kubernetes, "not running in a cluster: " + what + "; pass --kubeconfig").about(key);
}

std::string read_sa_file(const std::filesystem::path& path, std::size_t max_size, const std::string& key,
                         const std::string& purpose) {
  std::string content;
  if (const int rc = read_small_file(path, max_size, content); rc != 0) {
    if (rc == ENOENT)
      throw_not_in_cluster("the service-account " + purpose + " " + path.string() + " does not exist", key);
    throw error(error_kind::kubernetes,
                "cannot read the service-account " + purpose + " " + path.string() + ": " + errno_text(rc))
        .about(key);
  }
  return content;
}

}  // namespace

kube_config in_cluster_config(const std::filesystem::path& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (host == nullptr || *host == '\0')
    throw_not_in_cluster("KUBERNETES_SERVICE_HOST is not set", "KUBERNETES_SERVICE_HOST");
  const char* port_text = std::getenv("KUBERNETES_SERVICE_PORT");
  if (port_text == nullptr || *port_text == '\0')
    throw_not_in_cluster("KUBERNETES_SERVICE_PORT is not set", "KUBERNETES_SERVICE_PORT");
  const std::string_view port_view(port_text);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_view.data(), port_view.data() + port_view.size(), port);
  if (ec != std::errc() || end != port_view.data() + port_view.size() || port == 0 || port > 65535)
    throw error(error_kind::kubernetes, "KUBERNETES_SERVICE_PORT is not a port number (1-65535)")
        .about("KUBERNETES_SERVICE_PORT");

  kube_config config;
  const std::string_view host_view(host);
  const bool ipv6 = host_view.find(':') != std::string_view::npos && host_view.front() != '[';
  config.server =
      "https://" + (ipv6 ? "[" + std::string(host_view) + "]" : std::string(host_view)) + ":" + std::to_string(port);

  // The token itself is read before each request; here we only check that it is there.
  config.token_file = sa_dir / "token";
  std::string token = read_sa_file(config.token_file, max_token_bytes, "token", "token");
  trim_trailing_whitespace(token);
  const bool token_empty = token.empty();
  wipe(token);
  if (token_empty)
    throw error(error_kind::kubernetes, "the service-account token " + config.token_file.string() + " is empty")
        .about("token");

  config.ca_pem = read_sa_file(sa_dir / "ca.crt", max_ca_bytes, "ca.crt", "CA certificate");
  if (config.ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    throw error(error_kind::kubernetes,
                "the service-account CA certificate " + (sa_dir / "ca.crt").string() + " holds no PEM certificate")
        .about("ca.crt");

  config.namespace_name = read_sa_file(sa_dir / "namespace", 1024, "namespace", "namespace file");
  trim_trailing_whitespace(config.namespace_name);
  if (config.namespace_name.empty())
    throw error(error_kind::kubernetes,
                "the service-account namespace file " + (sa_dir / "namespace").string() + " is empty")
        .about("namespace");
  return config;
}

}  // namespace tenantdb
