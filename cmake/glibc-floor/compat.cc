// Linked into every target of a portable build (RKLLM_PORTABLE_BINARIES). Defines, inside the
// binary and hidden from everyone else, the few glibc symbols newer than 2.28 that have no older
// version to pin to but are still referenced by the static libstdc++ or by inline library code.
// Each replacement uses only interfaces glibc 2.28 exports.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <sys/random.h>

#define RKLLM_HIDDEN __attribute__((visibility("hidden")))

// The version argument of the pre-2.33 stat family and the glibc version those symbols carry.
#if defined(__aarch64__)
#define RKLLM_STAT_VER 0
#define RKLLM_GLIBC_BASE "GLIBC_2.17"
#elif defined(__x86_64__)
#define RKLLM_STAT_VER 1
#define RKLLM_GLIBC_BASE "GLIBC_2.2.5"
#else
#error "glibc-floor compat: add this architecture's _STAT_VER and base symbol version"
#endif

struct stat;
struct stat64;

extern "C" {
int rkllm_glibc_xstat(int version, const char* path, struct stat* info);
int rkllm_glibc_fxstat64(int version, int fd, struct stat64* info);
int rkllm_glibc_fxstat(int version, int fd, struct stat* info);
}
// Bind the forwarders above to glibc's own pre-2.33 entry points.
__asm__(".symver rkllm_glibc_xstat,__xstat@" RKLLM_GLIBC_BASE);
__asm__(".symver rkllm_glibc_fxstat64,__fxstat64@" RKLLM_GLIBC_BASE);
__asm__(".symver rkllm_glibc_fxstat,__fxstat@" RKLLM_GLIBC_BASE);

extern "C" {

// glibc 2.32: tells libstdc++ whether reference counts may skip atomics. 0 ("threads may exist")
// is always correct, only never the fast path.
RKLLM_HIDDEN char __libc_single_threaded = 0;

// glibc 2.33 made stat, fstat and fstat64 real exports; before, headers turned them into __xstat calls.
RKLLM_HIDDEN int stat(const char* path, struct stat* info) {
  return rkllm_glibc_xstat(RKLLM_STAT_VER, path, info);
}
RKLLM_HIDDEN int fstat64(int fd, struct stat64* info) {
  return rkllm_glibc_fxstat64(RKLLM_STAT_VER, fd, info);
}
// The emulated runtime's prompt cache files are checked with fstat (prompt_cache_file.cc).
RKLLM_HIDDEN int fstat(int fd, struct stat* info) {
  return rkllm_glibc_fxstat(RKLLM_STAT_VER, fd, info);
}

// glibc 2.36: libstdc++'s random_device prefers it. getrandom (glibc 2.25) gives the same bytes.
RKLLM_HIDDEN uint32_t arc4random(void) {
  uint32_t value = 0;
  unsigned char* out = reinterpret_cast<unsigned char*>(&value);
  size_t filled = 0;
  while (filled < sizeof value) {
    ssize_t got = getrandom(out + filled, sizeof value - filled, 0);
    if (got > 0) filled += static_cast<size_t>(got);
    else if (got < 0 && errno != EINTR) break;  // only before the kernel's pool is ready (boot)
  }
  return value;
}

}  // extern "C"
