#pragma once
/// \file
/// Counts kept by the reliability and security suite (label `suite`). Each test that takes
/// part holds one suite_tally; when the test ends (pass or fail) the tally is written to
/// $TENANTDB_SUITE_DIR (default <build>/suite)/<Suite.Test>.tally, one "<counter> <n>" per line.
/// test/tools/suite-summary.sh adds the files up into the suite's one summary line and
/// fails when a leak or breach was found or a fault did not end in a recovery.

#include <string>

namespace tenantdb::test {

struct suite_tally {
  int inputs = 0;      ///< malformed connectors, flags and tenant inputs tried
  int faults = 0;      ///< faults injected (kill -9, server restart, API errors, full disk...)
  int recoveries = 0;  ///< faults that ended with working credentials and nothing lost
  int scanned = 0;     ///< places searched for secrets (logs, /proc/PID/cmdline, environ, files)
  int leaks = 0;       ///< secrets found in one of those places
  int routes = 0;      ///< ways tenant A tried to reach tenant B's data
  int breaches = 0;    ///< of those, ways that succeeded
  int attacks = 0;     ///< attacks of the hardening review (issue 12) performed against the product
  int held = 0;        ///< of those, attacks the product withstood (refused, repaired or reported)

  suite_tally();
  ~suite_tally();
  suite_tally(const suite_tally&) = delete;
  suite_tally& operator=(const suite_tally&) = delete;

private:
  std::string name_;
};

}  // namespace tenantdb::test
