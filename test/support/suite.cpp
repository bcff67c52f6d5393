#include "suite.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>

namespace tenantdb::test {

suite_tally::suite_tally() {
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info(); info != nullptr)
    name_ = std::string(info->test_suite_name()) + "." + info->name();
  else
    name_ = "outside-a-test";
  for (char& c : name_)
    if (c == '/') c = '_';  // parameterised names hold slashes
}

suite_tally::~suite_tally() {
  const char* dir = std::getenv("TENANTDB_SUITE_DIR");
  if (dir == nullptr || *dir == '\0') dir = TENANTDB_SUITE_DEFAULT_DIR;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto path = std::filesystem::path(dir) / (name_ + ".tally");
  std::ofstream out(path, std::ios::trunc);
  out << "inputs " << inputs << "\nfaults " << faults << "\nrecoveries " << recoveries << "\nscanned " << scanned
      << "\nleaks " << leaks << "\nroutes " << routes << "\nbreaches " << breaches << "\nattacks " << attacks
      << "\nheld " << held << "\n";
  if (!out) std::cerr << "suite_tally: could not write " << path << "\n";
}

}  // namespace tenantdb::test
