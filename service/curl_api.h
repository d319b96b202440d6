// The libcurl functions HttpAgentTransport calls, loaded with dlopen on
// first use rather than linked.
//
// Debian's libcurl links about 30 shared libraries (GnuTLS, Kerberos, LDAP,
// libssh2, ...) whose constructors run when the process starts and whose
// pages then stay resident: linked into ringfence-agent they cost every
// agent several MB, the ones talking gRPC included. Loaded here, only an
// agent whose server is http(s):// pays for them (bench/README.md, "Host
// agent footprint").
//
// Thread safety: LoadCurlApi may be called from any thread; the table it
// returns never changes.
#pragma once

#include <curl/curl.h>

#include "absl/status/statusor.h"

namespace ringfence::internal {

struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_header) easy_header;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_share_init) share_init;
  decltype(&::curl_share_setopt) share_setopt;
  decltype(&::curl_share_cleanup) share_cleanup;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  decltype(&::curl_url) url;
  decltype(&::curl_url_set) url_set;
  decltype(&::curl_url_get) url_get;
  decltype(&::curl_url_cleanup) url_cleanup;
  decltype(&::curl_free) free;
};

// LoadCurlApi
//
// libcurl.so.4 loaded (once per process) and its functions looked up.
// FAILED_PRECONDITION naming the library and dlopen's reason if it cannot
// be loaded or lacks a function (libcurl before 7.84).
absl::StatusOr<const CurlApi*> LoadCurlApi();

}  // namespace ringfence::internal
