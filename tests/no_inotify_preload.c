// An LD_PRELOAD shim for tests: inotify is unavailable, as in containers
// or kernels without it (inotify_init1 and inotify_init fail with ENOSYS).
#include <errno.h>

int inotify_init1(int flags) {
  (void)flags;
  errno = ENOSYS;
  return -1;
}

int inotify_init(void) {
  errno = ENOSYS;
  return -1;
}
