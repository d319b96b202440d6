// ringctl release create|validate|get|list.
#include <cstdio>
#include <memory>
#include <string>

#include "ringfence/content/v1/content.pb.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"
#include "service/ringctl/release_flags.h"

namespace ringfence::ringctl {
namespace {

int ReleaseCreate(const Invocation& inv, const ReleaseFlags& flags) {
  Client& c = inv.client();
  v1::CreateReleaseRequest req;
  if (!ReleaseFromFlags(flags, /*require_digest=*/true, inv,
                        req.mutable_release(), req.mutable_payload())) {
    return kExitError;
  }
  Release resp;
  grpc::Status s = c.releases().CreateRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("created release %s of %s\n", resp.id().c_str(),
                resp.content_type().c_str());
  }
  return kExitOk;
}

int ReleaseValidate(const Invocation& inv, const ReleaseFlags& flags) {
  Client& c = inv.client();
  v1::ValidateReleaseRequest req;
  if (!ReleaseFromFlags(flags, /*require_digest=*/false, inv,
                        req.mutable_release(), req.mutable_payload())) {
    return kExitError;
  }
  v1::ValidateReleaseResponse resp;
  grpc::Status s = c.releases().ValidateRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const content::v1::Finding& f : resp.findings()) {
      std::printf("%s %s: %s\n", f.severity().c_str(), f.code().c_str(),
                  f.message().c_str());
    }
    std::printf("release %s is %s\n", req.release().id().c_str(),
                resp.ok() ? "valid" : "rejected");
  }
  return resp.ok() ? kExitOk : kExitRejected;
}

int ReleaseGet(Client& c, const std::string& id) {
  v1::GetReleaseRequest req;
  req.set_release_id(id);
  Release resp;
  grpc::Status s = c.releases().GetRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    PrintReleaseDetail(resp);
  }
  return kExitOk;
}

int ReleaseList(Client& c, const std::string& content_type) {
  v1::ListReleasesRequest req;
  req.set_content_type(content_type);
  v1::ListReleasesResponse resp;
  grpc::Status s = c.releases().ListReleases(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const Release& r : resp.releases()) PrintRelease(r);
  }
  return kExitOk;
}

}  // namespace

void AddReleaseCommands(CommandLine& cli) {
  cli.DescribeNoun("release", "publish and read releases");

  auto create = std::make_shared<ReleaseFlags>();
  CLI::App* app = cli.AddCommand(
      {"release", "create"}, "publish a release", CommandLine::kOnline,
      [create](const Invocation& inv) { return ReleaseCreate(inv, *create); });
  cli.SetDetails(app,
                 "--payload sends the content for the server's content rules; "
                 "digest and size default to the file's. A rejected "
                 "release's findings are printed, one per line (exit 2).");
  AddReleaseFlags(cli, app, ReleaseUse::kCreate, create.get());

  auto validate = std::make_shared<ReleaseFlags>();
  app = cli.AddCommand({"release", "validate"},
                       "check a release as create would; store nothing",
                       CommandLine::kOnline, [validate](const Invocation& inv) {
                         return ReleaseValidate(inv, *validate);
                       });
  cli.SetDetails(app,
                 "Prints the content findings and whether the release is "
                 "valid; exit 2 if it would be rejected.");
  AddReleaseFlags(cli, app, ReleaseUse::kValidate, validate.get());

  auto id = std::make_shared<std::string>();
  app = cli.AddCommand(
      {"release", "get"}, "print a release", CommandLine::kOnline,
      [id](const Invocation& inv) { return ReleaseGet(inv.client(), *id); });
  cli.AddArgument(app, "ID", id.get(), "the release");

  auto content_type = std::make_shared<std::string>();
  app =
      cli.AddCommand({"release", "list"}, "list releases", CommandLine::kOnline,
                     [content_type](const Invocation& inv) {
                       return ReleaseList(inv.client(), *content_type);
                     });
  cli.AddFlag(app, "content-type", content_type.get(),
              "only releases of this content type")
      ->type_name("TYPE");
}

}  // namespace ringfence::ringctl
