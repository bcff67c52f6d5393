#include "base/small_file.hpp"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

namespace tenantdb {
namespace {

namespace fs = std::filesystem;

fs::path write_temp(const std::string& content) {
  const fs::path path = fs::temp_directory_path() /
                        ("tenantdb-small-file-" + std::to_string(::getpid()) + "-" + std::to_string(content.size()));
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(SmallFile, ReadsAFileWholeAcrossBufferGrowth) {
  std::string content;
  for (int i = 0; i < 100000; ++i) content.push_back(static_cast<char>('a' + i % 26));
  const fs::path path = write_temp(content);
  std::string out = "previous";
  EXPECT_EQ(read_small_file(path, content.size(), out), 0);
  EXPECT_EQ(out, content);
  fs::remove(path);
}

TEST(SmallFile, RefusesOneByteMoreThanTheLimitAndKeepsNothing) {
  const fs::path path = write_temp(std::string(17, 'x'));
  std::string out = "previous";
  EXPECT_EQ(read_small_file(path, 16, out), EFBIG);
  EXPECT_EQ(out, "previous");
  EXPECT_EQ(read_small_file(path, 17, out), 0);
  EXPECT_EQ(out, std::string(17, 'x'));
  fs::remove(path);
}

TEST(SmallFile, ReadsAnEmptyFileAndReportsAMissingOne) {
  const fs::path path = write_temp("");
  std::string out = "previous";
  EXPECT_EQ(read_small_file(path, 16, out), 0);
  EXPECT_EQ(out, "");
  fs::remove(path);
  EXPECT_EQ(read_small_file(path, 16, out), ENOENT);
}

}  // namespace
}  // namespace tenantdb
