# Warnings and hardening flags as an INTERFACE target, so they apply to our own targets
# and never leak into dependencies or global flags.
add_library(tenantdb_options INTERFACE)
add_library(tenantdb::options ALIAS tenantdb_options)

target_compile_options(tenantdb_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wnull-dereference -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  -fstack-protector-strong -fstack-clash-protection -fcf-protection
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>
  -D_GLIBCXX_ASSERTIONS)
target_link_options(tenantdb_options INTERFACE
  -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack)
