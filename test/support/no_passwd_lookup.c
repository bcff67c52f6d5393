/* LD_PRELOAD for tests: any passwd lookup ends the process with SIGABRT. The binaries must
 * never look the user up: where the UID has no passwd entry and nsswitch.conf names a
 * module a static binary cannot load (systemd), the lookup itself crashed the static
 * tenantdb-init (libpq's home directory lookup, issue 12). */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static void refuse(const char* what) {
  static const char prefix[] = "no_passwd_lookup: the process called ";
  (void)!write(2, prefix, sizeof prefix - 1);
  (void)!write(2, what, strlen(what));
  (void)!write(2, "\n", 1);
  abort();
}

int getpwuid_r(uid_t uid, struct passwd* pwd, char* buf, size_t len, struct passwd** result) {
  (void)uid, (void)pwd, (void)buf, (void)len, (void)result;
  refuse("getpwuid_r");
  return -1;
}
struct passwd* getpwuid(uid_t uid) {
  (void)uid;
  refuse("getpwuid");
  return NULL;
}
int getpwnam_r(const char* name, struct passwd* pwd, char* buf, size_t len, struct passwd** result) {
  (void)name, (void)pwd, (void)buf, (void)len, (void)result;
  refuse("getpwnam_r");
  return -1;
}
struct passwd* getpwnam(const char* name) {
  (void)name;
  refuse("getpwnam");
  return NULL;
}
