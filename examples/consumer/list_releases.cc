// A client of ringfenced on the installed ringfence::api target (the
// ringfence.v1 messages and gRPC stubs):
//   ringfence_list_releases [host:port [token]]   # default 127.0.0.1:7443
// Prints "N releases" and then each release's id and content type.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "ringfence/v1/ringfence.grpc.pb.h"

int main(int argc, char** argv) {
  const std::string server = argc > 1 ? argv[1] : "127.0.0.1:7443";
  const std::string token = argc > 2 ? argv[2] : "";
  auto stub = ringfence::v1::Releases::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  ringfence::v1::ListReleasesRequest request;
  ringfence::v1::ListReleasesResponse response;
  const grpc::Status status = stub->ListReleases(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "ListReleases on %s: %s\n", server.c_str(),
                 status.error_message().c_str());
    return 1;
  }
  std::printf("%d releases\n", response.releases_size());
  for (const auto& release : response.releases()) {
    std::printf("%s %s\n", release.id().c_str(),
                release.content_type().c_str());
  }
  return 0;
}
