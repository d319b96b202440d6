#include "service/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/error_text.h"
#include "ringfence/model.h"

namespace ringfence {
namespace {

constexpr Role kAllRoles[] = {Role::kHost, Role::kRelay, Role::kPublisher,
                              Role::kOperator, Role::kAdmin};

constexpr absl::string_view kCertificateScheme = "ringfence://";

std::array<uint8_t, 32> Digest(absl::string_view token) {
  std::array<uint8_t, 32> out;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         out.data());
  return out;
}

bool ParseRole(absl::string_view name, Role* role) {
  for (Role r : kAllRoles) {
    if (name == RoleName(r)) {
      *role = r;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kHost:
      return "host";
    case Role::kPublisher:
      return "publisher";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
    case Role::kRelay:
      return "relay";
  }
  return "unknown";
}

std::string Roles::ToString() const {
  std::vector<absl::string_view> names;
  for (Role r : kAllRoles) {
    if (Contains(r)) names.push_back(RoleName(r));
  }
  if (names.size() <= 1) return absl::StrJoin(names, "");
  const absl::string_view last = names.back();
  names.pop_back();
  return absl::StrCat(absl::StrJoin(names, ", "), " or ", last);
}

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::Load(
    const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open the tokens file"));
  }
  return Parse(*contents, path);
}

absl::StatusOr<TokenAuthenticator> TokenAuthenticator::Parse(
    absl::string_view contents, absl::string_view source) {
  TokenAuthenticator auth;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": ", what));
    };
    if (fields.size() != 3) {
      return error(absl::StrCat("expected \"token role actor\" (got ",
                                fields.size(), " fields)"));
    }
    Entry e;
    if (!ParseRole(fields[1], &e.principal.role)) {
      return error(
          absl::StrCat("unknown role ", QuoteForError(fields[1]),
                       " (host, relay, publisher, operator or admin)"));
    }
    if (absl::Status s = ValidateId(fields[2], "actor"); !s.ok()) {
      return error(s.message());
    }
    e.principal.actor = std::string(fields[2]);
    if (e.principal.role == Role::kHost)
      e.principal.host_id = e.principal.actor;
    e.digest = Digest(fields[0]);
    for (const Entry& other : auth.entries_) {
      if (other.digest == e.digest) {
        return error("duplicate token (each token names one principal)");
      }
    }
    auth.entries_.push_back(std::move(e));
  }
  return auth;
}

absl::StatusOr<Principal> TokenAuthenticator::Authenticate(
    absl::string_view authorization) const {
  constexpr absl::string_view kScheme = "Bearer ";
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing \"authorization: Bearer <token>\" metadata");
  }
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()),
                              kScheme)) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer <token>\"");
  }
  const std::array<uint8_t, 32> digest =
      Digest(absl::StripAsciiWhitespace(authorization.substr(kScheme.size())));
  // Every entry is compared, so the time taken does not depend on which (if
  // any) entry matches.
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    const bool equal =
        CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) match = &e;
  }
  if (match == nullptr) return absl::UnauthenticatedError("unknown token");
  return match->principal;
}

absl::Status Authorize(const Principal& principal, const Roles& allowed,
                       absl::string_view method) {
  if (allowed.Contains(principal.role)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      method, " needs role ", allowed.ToString(), "; ",
      QuoteForError(principal.actor), " has role ", RoleName(principal.role)));
}

absl::StatusOr<std::optional<Principal>> PrincipalFromCertificateUris(
    const std::vector<std::string>& uris) {
  std::optional<Principal> found;
  for (const std::string& uri : uris) {
    if (!absl::StartsWithIgnoreCase(uri, kCertificateScheme)) continue;
    auto error = [&](absl::string_view what) {
      return absl::UnauthenticatedError(absl::StrCat(
          "client certificate URI ", QuoteForError(uri), ": ", what));
    };
    if (found.has_value()) {
      return error("a second ringfence:// identity (a certificate names one)");
    }
    const absl::string_view rest =
        absl::string_view(uri).substr(kCertificateScheme.size());
    const size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) {
      return error("expected ringfence://<role>/<actor>");
    }
    Principal p;
    if (!ParseRole(rest.substr(0, slash), &p.role)) {
      return error("unknown role (host, relay, publisher, operator or admin)");
    }
    const absl::string_view actor = rest.substr(slash + 1);
    if (absl::Status s = ValidateId(actor, "actor"); !s.ok()) {
      return error(s.message());
    }
    p.actor = std::string(actor);
    if (p.role == Role::kHost) p.host_id = p.actor;
    found = std::move(p);
  }
  return found;
}

absl::Status AuthorizeHost(const Principal& principal,
                           absl::string_view host_id, absl::string_view field) {
  if (principal.host_id.empty() || principal.host_id == host_id) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": ", QuoteForError(principal.actor), " speaks only for host ",
      QuoteForError(principal.host_id), ", not ", QuoteForError(host_id),
      " (a gateway that reports for many hosts needs role relay)"));
}

}  // namespace ringfence
