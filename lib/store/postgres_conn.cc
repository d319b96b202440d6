#include "store/postgres_conn.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace ringfence::internal {
namespace {

// PostgreSQL type OIDs of the parameters we send (pg_type.h).
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;

}  // namespace

std::string Redactor::operator()(absl::string_view text) const {
  std::string out(text);
  if (!password_.empty()) {
    absl::StrReplaceAll({{password_, "<redacted>"}}, &out);
  }
  return out;
}

Params& Params::Text(absl::string_view v) { return Add(v, kTextOid); }

Params& Params::Bytes(absl::string_view v) { return Add(v, kByteaOid); }

Params& Params::Int(int64_t v) {
  char buf[8];
  const uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(u >> (56 - 8 * i));
  return Add(absl::string_view(buf, 8), kInt8Oid);
}

std::vector<const char*> Params::pointers() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (const std::string& v : values_) out.push_back(v.data());
  return out;
}

Params& Params::Add(absl::string_view v, Oid type) {
  values_.emplace_back(v);
  types_.push_back(type);
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(1);
  return *this;
}

int64_t Result::Int(int row, int col) const {
  const auto* p =
      reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col));
  const int n = PQgetlength(r_.get(), row, col);
  uint64_t u = 0;
  for (int i = 0; i < n; ++i) u = (u << 8) | p[i];
  // Sign-extend narrower integers (int2, int4).
  if (n > 0 && n < 8 && (p[0] & 0x80)) u |= ~uint64_t{0} << (8 * n);
  return static_cast<int64_t>(u);
}

int64_t Result::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

absl::StatusCode CodeForSqlState(absl::string_view state) {
  // unique violation; duplicate table or schema (a concurrent migrator)
  if (state == "23505" || state == "42P07" || state == "42P06") {
    return absl::StatusCode::kAlreadyExists;
  }
  if (state == "57014") return absl::StatusCode::kDeadlineExceeded;
  if (state == "40001" || state == "40P01") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" ||
      state == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "53")) {
    return absl::StatusCode::kResourceExhausted;
  }
  if (state == "42501" || state == "25006" || absl::StartsWith(state, "28")) {
    return absl::StatusCode::kFailedPrecondition;
  }
  if (absl::StartsWith(state, "22")) return absl::StatusCode::kInvalidArgument;
  if (absl::StartsWith(state, "XX")) return absl::StatusCode::kDataLoss;
  return absl::StatusCode::kInternal;
}

absl::StatusOr<Result> Conn::Exec(absl::string_view what, const char* sql,
                                  const Params& p) {
  const std::vector<const char*> values = p.pointers();
  PGresult* r = PQexecParams(c_, sql, p.size(), p.types(), values.data(),
                             p.lengths(), p.formats(), /*resultFormat=*/1);
  return Check(what, r);
}

absl::StatusOr<Result> Conn::ExecScript(absl::string_view what,
                                        const char* sql) {
  return Check(what, PQexec(c_, sql));
}

absl::StatusOr<Result> Conn::Check(absl::string_view what, PGresult* r) {
  Result result(r);
  const ExecStatusType st =
      r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return result;
  const char* state =
      r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary =
      r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  std::string msg = primary != nullptr ? primary : PQerrorMessage(c_);
  absl::StripAsciiWhitespace(&msg);
  // No SQLSTATE: the server did not answer (the connection was lost, or
  // libpq failed on this side). Treat the connection as gone.
  if (state == nullptr) lost_ = true;
  absl::StatusCode code = state != nullptr ? CodeForSqlState(state)
                                           : absl::StatusCode::kUnavailable;
  if (broken()) code = absl::StatusCode::kUnavailable;
  return absl::Status(
      code, (*redact_)(absl::StrCat(
                what, ": ", msg,
                state != nullptr ? absl::StrCat(" (SQLSTATE ", state, ")")
                                 : std::string(" (connection lost)"))));
}

}  // namespace ringfence::internal
