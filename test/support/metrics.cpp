#include "metrics.hpp"

namespace tenantdb::test {

std::optional<double> metric(const std::string& text, const std::string& sample) {
  const auto pos = text.find("\n" + sample + " ");
  if (pos == std::string::npos) return std::nullopt;
  return std::stod(text.substr(pos + sample.size() + 2));
}

}  // namespace tenantdb::test
