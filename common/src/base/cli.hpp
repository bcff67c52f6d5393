#pragma once
// Private: the one way both binaries run CLI11 over their command line.

// GCC 12 reports a false "potential null pointer dereference" in CLI11's vector options.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop

#include <optional>

#include "tenantdb/app.hpp"

namespace tenantdb::detail {

/// Parses argv with `app` (whose options write into the caller's flags), then returns
/// `to_options()`; --help/--version end with exit code 0, a parse error with usage_error's
/// one line and code 2. `to_options` throws tenantdb::error (usage) for values it refuses.
template <typename ToOptions>
auto parse_command_line(CLI::App& app, int argc, const char* const* argv, ToOptions to_options)
    -> command_line<decltype(to_options())> {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return {std::nullopt, app.exit(e)};
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, usage_error(e.what())};
  }
  return {to_options(), 0};
}

}  // namespace tenantdb::detail
