#include "sidecar/outcome.hpp"

namespace tenantdb::sidecar {

const char* to_string(error_source source) noexcept {
  switch (source) {
    case error_source::api: return "api";
    case error_source::database: return "database";
    case error_source::files: return "files";
  }
  return "api";
}

error_source parse_error_source(const std::string& text) noexcept {
  if (text == "files") return error_source::files;
  if (text == "database") return error_source::database;
  return error_source::api;
}

template <typename F>
auto sourced_store::marked(F&& f) {
  try {
    return f();
  } catch (const store_error&) {
    throw;
  } catch (const error& e) {
    throw store_error(e, source_);
  }
}

std::optional<stored_credentials> sourced_store::load() {
  return marked([&] { return inner_.load(); });
}

std::optional<std::string> sourced_store::create(const credential_data& data,
                                                 const std::map<std::string, std::string>& annotations) {
  return marked([&] { return inner_.create(data, annotations); });
}

std::optional<std::string> sourced_store::replace(const credential_data& data,
                                                  const std::map<std::string, std::string>& annotations,
                                                  const std::string& version) {
  return marked([&] { return inner_.replace(data, annotations, version); });
}

error_source source_of(const error& e) noexcept {
  if (const auto* from_store = dynamic_cast<const store_error*>(&e)) return from_store->source();
  return e.kind() == error_kind::output ? error_source::files : error_source::database;
}

}  // namespace tenantdb::sidecar
