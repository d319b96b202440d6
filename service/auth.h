// Bearer-token authentication and role-based authorization of API calls.
//
// A tokens file lists one principal per line:
//
//   # token                             role       actor
//   3f9c0e0b6a5d4c2e9b8a7f6e5d4c3b2a    publisher  ci-pipeline
//   8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b    operator   alice
//
// Blank lines and lines starting with '#' are ignored. Roles are `host`,
// `relay`, `publisher`, `operator` and `admin`; the actor is the name the
// audit log records for the principal's calls. Calls carry `authorization:
// Bearer <token>` metadata.
//
// Host identity: a `host` principal speaks for one host only, the one its
// actor names (the host id). Its GetAssignment and every telemetry event it
// sends must be for that host, or the call is PERMISSION_DENIED whole
// (AuthorizeHost). A `relay` principal (a gateway, a proxy, the emulated
// fleet) may call the Fleet methods for any host; give that role only to
// what must speak for many hosts: one compromised relay can halt any
// rollout, or heartbeat for dead hosts and hide a boot loop.
//
// Certificates: under mutual TLS, a client certificate may name its
// principal in a URI subject alternative name
//
//   ringfence://<role>/<actor>      e.g. ringfence://host/web-0042,
//                                        ringfence://operator/alice
//
// (PrincipalFromCertificateUris); such a certificate is the caller's
// identity, whatever token the call carries.
//
// Tokens are kept only as SHA-256 digests and a presented token is compared
// with every entry in constant time (CRYPTO_memcmp over equal-length
// digests, no early exit), so neither timing nor length reveals a token.
//
// Thread safety: a TokenAuthenticator is immutable after Load(); all const
// methods may be called concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringfence {

enum class Role : uint8_t { kHost, kPublisher, kOperator, kAdmin, kRelay };

// RoleName: "host", "publisher", "operator", "admin", "relay".
absl::string_view RoleName(Role role);

// A set of roles, e.g. Roles{Role::kOperator, Role::kAdmin}.
class Roles {
 public:
  constexpr Roles(std::initializer_list<Role> roles) {
    for (Role r : roles) bits_ |= Bit(r);
  }
  constexpr bool Contains(Role r) const { return (bits_ & Bit(r)) != 0; }
  // "operator or admin".
  std::string ToString() const;

 private:
  static constexpr uint8_t Bit(Role r) {
    return static_cast<uint8_t>(1u << static_cast<int>(r));
  }
  uint8_t bits_ = 0;
};

// Who made a call.
struct Principal {
  Role role = Role::kAdmin;
  std::string actor;
  // The one host this principal may speak for (role host: its actor); empty
  // for every other role (any host, where the role may call at all).
  std::string host_id;
};

// PrincipalFromCertificateUris
//
// The principal a client certificate names in its URI subject alternative
// names `uris` (as the TLS handshake reports them): the one of the form
// "ringfence://<role>/<actor>", or nullopt if none has the "ringfence://"
// scheme. UNAUTHENTICATED, naming the URI (quoted, cut), if one has an
// unknown role or an invalid actor (ValidateId), or if several name
// principals.
absl::StatusOr<std::optional<Principal>> PrincipalFromCertificateUris(
    const std::vector<std::string>& uris);

class TokenAuthenticator {
 public:
  // Load
  //
  // Reads a tokens file. INVALID_ARGUMENT naming the line for a malformed
  // entry (wrong number of fields, unknown role, invalid actor, duplicate
  // token); NOT_FOUND if the file cannot be read.
  static absl::StatusOr<TokenAuthenticator> Load(const std::string& path);

  // Parse
  //
  // As Load, from the file's contents; `source` names it in errors.
  static absl::StatusOr<TokenAuthenticator> Parse(absl::string_view contents,
                                                  absl::string_view source);

  // Authenticate
  //
  // The principal of an `authorization` metadata value ("Bearer <token>").
  // UNAUTHENTICATED if it is missing, malformed or the token is unknown.
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::array<uint8_t, 32> digest;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// Authorize
//
// OK if `principal`'s role is in `allowed`; otherwise PERMISSION_DENIED
// naming the method, the role and the roles that may call it.
absl::Status Authorize(const Principal& principal, const Roles& allowed,
                       absl::string_view method);

// AuthorizeHost
//
// OK if `principal` may speak for host `host_id` (it is not bound to one
// host, or it is bound to this one); otherwise PERMISSION_DENIED naming
// `field` (e.g. "events[3].host_id"), the principal and both hosts (quoted
// and cut, QuoteForError).
absl::Status AuthorizeHost(const Principal& principal,
                           absl::string_view host_id, absl::string_view field);

}  // namespace ringfence
