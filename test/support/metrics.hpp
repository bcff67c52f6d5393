#pragma once
/// \file
/// Reading one sample out of the sidecar's /metrics (Prometheus text format).

#include <optional>
#include <string>

namespace tenantdb::test {

/// The value of the sample `sample` (name with its labels, exactly as printed, e.g.
/// `tenantdb_rotations_total{result="rotated"}`) in Prometheus text `text`; nullopt when
/// the sample is absent, so a test that expects a value fails when it disappears.
///
/// std::optional compares an absent value as unequal to, and less than, every value:
/// EXPECT_EQ, EXPECT_GE and EXPECT_GT against a number fail on an absent sample by
/// themselves; before EXPECT_LT, EXPECT_LE or EXPECT_NEAR assert that it is present.
std::optional<double> metric(const std::string& text, const std::string& sample);

}  // namespace tenantdb::test
