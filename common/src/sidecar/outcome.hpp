#pragma once
// What the sidecar's pieces report back to its loop (agent.cpp): a failed step says which
// source failed, decided where the failure happens, so the loop only counts it
// (tenantdb_errors_total{source}) and decides what to do next.

#include <optional>
#include <string>

#include "tenantdb/error.hpp"
#include "tenantdb/store.hpp"

namespace tenantdb::sidecar {

/// What failed: the credentials store through the Kubernetes API, the database, or the
/// files (the output directory, or a directory store).
enum class error_source { api, database, files };

/// "api", "database" or "files": the errors_total label.
const char* to_string(error_source source) noexcept;

/// "api" or "files" (agent_options::store_source); anything else counts as "api".
error_source parse_error_source(const std::string& text) noexcept;

/// A step that failed: logged as "<step> failed" and counted against `source`.
struct failure {
  error_source source;
  std::string step;
  error cause;
};

/// An error the credentials store threw, marked with the store's source as it passes the
/// store's boundary (see sourced_store).
class store_error : public error {
public:
  store_error(const error& cause, error_source source) : error(cause), source_(source) {}
  error_source source() const noexcept { return source_; }

private:
  error_source source_;
};

/// The store as the rotator sees it: every tenantdb::error the store throws leaves as a
/// store_error carrying the store's source, so a failed rotation step names the source
/// where it failed (the store, else the database or the files by the error's kind).
class sourced_store final : public credential_store {
public:
  sourced_store(credential_store& inner, error_source source) : inner_(inner), source_(source) {}

  std::optional<stored_credentials> load() override;
  std::optional<std::string> create(const credential_data& data,
                                    const std::map<std::string, std::string>& annotations) override;
  std::optional<std::string> replace(const credential_data& data, const std::map<std::string, std::string>& annotations,
                                     const std::string& version) override;
  std::string describe() const override { return inner_.describe(); }

private:
  template <typename F>
  auto marked(F&& f);

  credential_store& inner_;
  error_source source_;
};

/// The source a failed rotator call is counted against: the store's for a store_error,
/// "files" for an output error, else the database.
error_source source_of(const error& e) noexcept;

}  // namespace tenantdb::sidecar
