/* Force-included (-include) into every C++ source of a portable build (RKLLM_PORTABLE_BINARIES):
 * keeps the binaries loadable on glibc 2.28, whatever glibc the build machine has.
 * See docs/install.md, "The glibc floor". */
#ifndef RKLLM_GLIBC_FLOOR_COMPAT_H
#define RKLLM_GLIBC_FLOOR_COMPAT_H

#ifdef __cplusplus
/* libstdc++'s configuration is read once (include guard), so what is undefined here stays
 * undefined for every standard header that follows. These three select waits on a chosen clock
 * (pthread_cond_clockwait and friends, glibc 2.30+), which have no older version to pin to;
 * without them libstdc++ falls back to the timed waits every glibc has. */
#include <bits/c++config.h>
#undef _GLIBCXX_USE_PTHREAD_COND_CLOCKWAIT
#undef _GLIBCXX_USE_PTHREAD_MUTEX_CLOCKLOCK
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_CLOCKLOCK
#endif

#endif
