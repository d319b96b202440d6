#include "service/curl_api.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace ringfence::internal {
namespace {

constexpr char kLibcurl[] = "libcurl.so.4";

absl::StatusOr<const CurlApi*> Load() {
  // Never closed: the functions are used until the process exits.
  void* lib = dlopen(kLibcurl, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load ", kLibcurl,
                     " (the HTTP transport needs "
                     "libcurl, Debian's libcurl4): ",
                     dlerror()));
  }
  static CurlApi api;
  std::string missing;
  auto find = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
        dlsym(lib, name));
    if (fn == nullptr)
      absl::StrAppend(&missing, missing.empty() ? "" : ", ", name);
  };
  find(api.global_init, "curl_global_init");
  find(api.easy_init, "curl_easy_init");
  find(api.easy_setopt, "curl_easy_setopt");
  find(api.easy_perform, "curl_easy_perform");
  find(api.easy_getinfo, "curl_easy_getinfo");
  find(api.easy_header, "curl_easy_header");
  find(api.easy_strerror, "curl_easy_strerror");
  find(api.easy_cleanup, "curl_easy_cleanup");
  find(api.share_init, "curl_share_init");
  find(api.share_setopt, "curl_share_setopt");
  find(api.share_cleanup, "curl_share_cleanup");
  find(api.slist_append, "curl_slist_append");
  find(api.slist_free_all, "curl_slist_free_all");
  find(api.url, "curl_url");
  find(api.url_set, "curl_url_set");
  find(api.url_get, "curl_url_get");
  find(api.url_cleanup, "curl_url_cleanup");
  find(api.free, "curl_free");
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(kLibcurl, " lacks ", missing,
                     " (libcurl 7.84 or later is "
                     "needed)"));
  }
  return &api;
}

}  // namespace

absl::StatusOr<const CurlApi*> LoadCurlApi() {
  static const absl::StatusOr<const CurlApi*> api = Load();
  return api;
}

}  // namespace ringfence::internal
