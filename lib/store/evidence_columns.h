// How the SQL stores keep HostEvidence::loading_since: Unix nanoseconds,
// 0 when it is not known (InfinitePast()), as schema version 5 added the
// column with that default.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "ringfence/store.h"

namespace ringfence::internal {

inline int64_t LoadingSinceNanos(const HostEvidence& h) {
  if (!h.exposed || h.loading_since == absl::InfinitePast()) return 0;
  return absl::ToUnixNanos(h.loading_since);
}

inline absl::Time LoadingSinceFromNanos(int64_t ns) {
  return ns == 0 ? absl::InfinitePast() : absl::FromUnixNanos(ns);
}

}  // namespace ringfence::internal
