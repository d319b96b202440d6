// Local equivalents of the status macros that the installed Abseil LTS
// (2022-06-23) does not ship.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define RINGFENCE_CONCAT_INNER_(a, b) a##b
#define RINGFENCE_CONCAT_(a, b) RINGFENCE_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): returns the status of `expr` if it is not OK.
#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    const ::absl::Status ringfence_status_ = (expr);       \
    if (!ringfence_status_.ok()) return ringfence_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (a StatusOr); on error returns
// its status, otherwise assigns the value to `lhs` (which may declare a
// variable: ASSIGN_OR_RETURN(auto x, F());).
#define ASSIGN_OR_RETURN(lhs, expr)                                        \
  ASSIGN_OR_RETURN_IMPL_(RINGFENCE_CONCAT_(ringfence_statusor_, __LINE__), \
                         lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                           \
  if (!statusor.ok()) return statusor.status();     \
  lhs = std::move(statusor).value()

namespace ringfence {

// PrefixStatus: `status` with "prefix: " before its message (same code), to
// say where an error came from (a file, a field). REQUIRES: !status.ok().
inline absl::Status PrefixStatus(absl::string_view prefix,
                                 const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat(prefix, ": ", status.message()));
}

}  // namespace ringfence
