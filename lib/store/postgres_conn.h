// The libpq layer under the PostgreSQL store (postgres_store.cc) and its
// lease (postgres_lease.h): typed parameters, binary results, and one
// connection whose errors come back as absl::Status with canonical codes
// (CodeForSqlState) and the password removed.
//
// Thread safety: a Conn is used by one thread at a time (the store's pool
// hands it out); Params, Result and Redactor are values.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringfence::internal {

// Removes the password from text that might echo it (libpq messages).
class Redactor {
 public:
  explicit Redactor(std::string password) : password_(std::move(password)) {}
  std::string operator()(absl::string_view text) const;

 private:
  std::string password_;
};

// Parameters in binary format with explicit types.
class Params {
 public:
  Params& Text(absl::string_view v);
  Params& Bytes(absl::string_view v);
  Params& Int(int64_t v);
  int size() const { return static_cast<int>(values_.size()); }
  const Oid* types() const { return types_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }
  // Valid until the next Add.
  std::vector<const char*> pointers() const;

 private:
  Params& Add(absl::string_view v, Oid type);
  std::vector<std::string> values_;
  std::vector<Oid> types_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A query result (binary format).
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : r_(r) {}
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col),
                       PQgetlength(r_.get(), row, col));
  }
  // An integer column (int2, int4 or int8).
  int64_t Int(int row, int col) const;
  // The command tag's row count (UPDATE/DELETE/INSERT).
  int64_t affected() const;
  std::string command() const { return PQcmdStatus(r_.get()); }

 private:
  struct Deleter {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Deleter> r_;
};

// CodeForSqlState
//
// The canonical code of a SQLSTATE: unique violation -> ALREADY_EXISTS, lost
// connection, serialization failure or deadlock -> UNAVAILABLE, statement
// timeout -> DEADLINE_EXCEEDED, disk full -> RESOURCE_EXHAUSTED, missing
// privilege or read-only server -> FAILED_PRECONDITION, bad data ->
// INVALID_ARGUMENT, corruption -> DATA_LOSS, else INTERNAL.
absl::StatusCode CodeForSqlState(absl::string_view state);

// One connection (owned: closed when destroyed). `broken` once the server is
// gone, or a statement failed without an answer from it (no SQLSTATE:
// UNAVAILABLE, "connection lost"); the pool then drops it.
class Conn {
 public:
  Conn(PGconn* c, const Redactor* redact) : c_(c), redact_(redact) {}
  ~Conn() { PQfinish(c_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool broken() const { return lost_ || PQstatus(c_) != CONNECTION_OK; }
  PGconn* raw() { return c_; }

  // Exec: runs one statement with parameters (binary in and out). `what`
  // names it in errors.
  absl::StatusOr<Result> Exec(absl::string_view what, const char* sql,
                              const Params& p = Params());

  // ExecScript: runs statements without parameters (migrations, BEGIN).
  absl::StatusOr<Result> ExecScript(absl::string_view what, const char* sql);

 private:
  absl::StatusOr<Result> Check(absl::string_view what, PGresult* r);

  PGconn* const c_;
  // A statement failed without an answer from the server (Check).
  bool lost_ = false;
  const Redactor* const redact_;
};

}  // namespace ringfence::internal
