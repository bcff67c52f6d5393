# Fully static third-party libraries (-DTENANTDB_STATIC=ON).
#
# libpq, libcurl and MariaDB Connector/C come from tools/static-deps.sh, installed into
# TENANTDB_STATIC_PREFIX: Debian's own archives of these drag in Kerberos/LDAP/GnuTLS
# (shared only) or dlopen() auth plugins. OpenSSL, zlib and yaml-cpp are Debian's .a files.
#
# Defines the INTERFACE targets tenantdb_pq, tenantdb_mariadb, tenantdb_curl and
# tenantdb_yaml (Dependencies.cmake adds the tenantdb:: aliases), points the imported
# OpenSSL::SSL / OpenSSL::Crypto at libssl.a / libcrypto.a, and provides
#
#   tenantdb_static_executable(<target>)
#
# which links <target> with -static and --gc-sections and checks the result with
# tools/check-static.sh.
# When TENANTDB_STATIC is OFF the function is a no-op, so callers need no if().

function(tenantdb_static_executable target)
  if(NOT TENANTDB_STATIC)
    return()
  endif()
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "EXECUTABLE")
    message(FATAL_ERROR "tenantdb_static_executable(${target}): not an executable (${_type})")
  endif()
  # Only what main() can reach is linked (see the -ffunction-sections below): the
  # shipped binary is smaller, and so is the part of it each process maps.
  target_link_options(${target} PRIVATE -static -Wl,--gc-sections)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND bash "${TENANTDB_CHECK_STATIC}" "$<TARGET_FILE:${target}>"
    COMMENT "Checking that ${target} is a static executable"
    VERBATIM)
endfunction()

if(NOT TENANTDB_STATIC)
  return()
endif()

# Each function and object of our own code in its own section, so --gc-sections (in
# tenantdb_static_executable) can drop what the binary never uses.
target_compile_options(tenantdb_options INTERFACE -ffunction-sections -fdata-sections)

set(TENANTDB_CHECK_STATIC "${CMAKE_CURRENT_LIST_DIR}/../tools/check-static.sh")
cmake_path(NORMAL_PATH TENANTDB_CHECK_STATIC)

set(_sd_prefix "${TENANTDB_STATIC_PREFIX}")
set(_sd_files
  lib/libpq.a lib/libpgcommon_shlib.a lib/libpgport_shlib.a lib/libcurl.a lib/libmariadb.a
  include/postgresql/libpq-fe.h include/curl/curl.h include/mariadb/mysql.h)
set(_sd_missing "")
foreach(_f IN LISTS _sd_files)
  if(NOT EXISTS "${_sd_prefix}/${_f}")
    list(APPEND _sd_missing "${_f}")
  endif()
endforeach()
if(NOT EXISTS "${_sd_prefix}/.stamp")
  list(APPEND _sd_missing .stamp)
endif()
if(NOT IS_DIRECTORY "${_sd_prefix}")
  set(_sd_missing "the whole directory")
endif()
if(_sd_missing)
  message(FATAL_ERROR
    "TENANTDB_STATIC=ON, but the static libraries are missing from TENANTDB_STATIC_PREFIX="
    "${_sd_prefix} (missing: ${_sd_missing}).\n"
    "Run tools/static-deps.sh first (as root; it builds libpq, libcurl and Connector/C "
    "from Debian's sources, about 3 minutes on 2 cores). If you set TENANTDB_STATIC_PREFIX for "
    "the script, pass the same -DTENANTDB_STATIC_PREFIX=... to CMake.")
endif()
file(STRINGS "${_sd_prefix}/.stamp" _sd_stamp LIMIT_COUNT 1)
message(STATUS "tenantdb static deps: ${_sd_prefix} (${_sd_stamp})")
# The stamp starts with the hash of the script that built the prefix.
set(_sd_script "${CMAKE_CURRENT_LIST_DIR}/../tools/static-deps.sh")
if(EXISTS "${_sd_script}")
  file(SHA256 "${_sd_script}" _sd_hash)
  string(SUBSTRING "${_sd_hash}" 0 16 _sd_hash)
  if(NOT _sd_stamp MATCHES "^${_sd_hash} ")
    message(WARNING "${_sd_prefix} was built by another version of tools/static-deps.sh: "
      "re-run tools/static-deps.sh")
  endif()
endif()
# Re-configure when the prefix is rebuilt.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_sd_prefix}/.stamp")

# ---------------------------------------------------------------- Debian's .a files
# Search where the shared OpenSSL was found first, then the default paths.
set(_sd_hints "")
if(OPENSSL_CRYPTO_LIBRARY)
  get_filename_component(_sd_dir "${OPENSSL_CRYPTO_LIBRARY}" DIRECTORY)
  list(APPEND _sd_hints "${_sd_dir}")
endif()
foreach(_lib IN ITEMS ssl crypto z yaml-cpp)
  string(MAKE_C_IDENTIFIER "TENANTDB_STATIC_LIB_${_lib}" _var)
  string(TOUPPER "${_var}" _var)
  find_library(${_var} NAMES "lib${_lib}.a" HINTS ${_sd_hints}
    DOC "Static lib${_lib}.a for TENANTDB_STATIC")
  if(NOT ${_var})
    message(FATAL_ERROR "TENANTDB_STATIC=ON: lib${_lib}.a not found "
      "(Debian: apt-get install libssl-dev zlib1g-dev libyaml-cpp-dev, or run tools/static-deps.sh)")
  endif()
endforeach()

# OpenSSL: Dependencies.cmake has already run find_package(OpenSSL), which found the
# shared libraries; retarget the imported targets so that tenantdb_asio and everything
# else linking OpenSSL::SSL gets the archives.
if(NOT TARGET OpenSSL::SSL OR NOT TARGET OpenSSL::Crypto)
  set(OPENSSL_USE_STATIC_LIBS TRUE)
  find_package(OpenSSL 3 REQUIRED)
endif()
find_package(Threads REQUIRED)
foreach(_t IN ITEMS SSL Crypto)
  string(TOUPPER "${_t}" _T)
  set(_a "${TENANTDB_STATIC_LIB_${_T}}")
  get_target_property(_configs OpenSSL::${_t} IMPORTED_CONFIGURATIONS)
  set_target_properties(OpenSSL::${_t} PROPERTIES IMPORTED_LOCATION "${_a}")
  if(_configs)
    foreach(_c IN LISTS _configs)
      set_target_properties(OpenSSL::${_t} PROPERTIES IMPORTED_LOCATION_${_c} "${_a}")
    endforeach()
  endif()
endforeach()
# libcrypto.a needs dlopen() (DSO support) and pthreads.
set_property(TARGET OpenSSL::Crypto APPEND PROPERTY
  INTERFACE_LINK_LIBRARIES Threads::Threads ${CMAKE_DL_LIBS})

# ------------------------------------------------------------------ our targets
# Each archive is an IMPORTED STATIC target whose link interface names what it needs, so
# CMake puts e.g. libcrypto.a after every archive that uses it (plain paths in an
# INTERFACE library carry no such ordering and the link fails).
function(_tenantdb_static_archive name file)
  add_library(${name} STATIC IMPORTED)
  set_target_properties(${name} PROPERTIES IMPORTED_LOCATION "${file}")
  if(ARGN)
    set_target_properties(${name} PROPERTIES INTERFACE_LINK_LIBRARIES "${ARGN}")
  endif()
endfunction()

# libpq.a is built from the same objects as libpq.so, which links the _shlib variants.
_tenantdb_static_archive(tenantdb_static_pgport "${_sd_prefix}/lib/libpgport_shlib.a"
  Threads::Threads m)
_tenantdb_static_archive(tenantdb_static_pgcommon "${_sd_prefix}/lib/libpgcommon_shlib.a"
  tenantdb_static_pgport OpenSSL::Crypto)
_tenantdb_static_archive(tenantdb_static_libpq "${_sd_prefix}/lib/libpq.a"
  tenantdb_static_pgcommon tenantdb_static_pgport OpenSSL::SSL OpenSSL::Crypto Threads::Threads m)
_tenantdb_static_archive(tenantdb_static_zlib "${TENANTDB_STATIC_LIB_Z}")
_tenantdb_static_archive(tenantdb_static_mariadb "${_sd_prefix}/lib/libmariadb.a"
  OpenSSL::SSL OpenSSL::Crypto tenantdb_static_zlib Threads::Threads ${CMAKE_DL_LIBS} m)
_tenantdb_static_archive(tenantdb_static_curl "${_sd_prefix}/lib/libcurl.a"
  OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
_tenantdb_static_archive(tenantdb_static_yaml "${TENANTDB_STATIC_LIB_YAML_CPP}")

add_library(tenantdb_pq INTERFACE)
target_include_directories(tenantdb_pq SYSTEM INTERFACE "${_sd_prefix}/include/postgresql")
target_link_libraries(tenantdb_pq INTERFACE tenantdb_static_libpq)

add_library(tenantdb_mariadb INTERFACE)
target_include_directories(tenantdb_mariadb SYSTEM INTERFACE "${_sd_prefix}/include/mariadb")
target_link_libraries(tenantdb_mariadb INTERFACE tenantdb_static_mariadb)

add_library(tenantdb_curl INTERFACE)
target_include_directories(tenantdb_curl SYSTEM INTERFACE "${_sd_prefix}/include")
target_compile_definitions(tenantdb_curl INTERFACE CURL_STATICLIB)
target_link_libraries(tenantdb_curl INTERFACE tenantdb_static_curl)

# yaml-cpp: headers as Debian's package config says, the archive instead of the .so.
add_library(tenantdb_yaml INTERFACE)
if(TARGET yaml-cpp)
  get_target_property(_sd_yaml_inc yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
  if(_sd_yaml_inc)
    target_include_directories(tenantdb_yaml SYSTEM INTERFACE ${_sd_yaml_inc})
  endif()
endif()
target_link_libraries(tenantdb_yaml INTERFACE tenantdb_static_yaml)

unset(_sd_prefix)
unset(_sd_script)
unset(_sd_hash)
unset(_sd_stamp)
unset(_sd_files)
unset(_sd_missing)
unset(_sd_hints)
