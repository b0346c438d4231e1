#include "wisp/sandbox/control_protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace wisp::sandbox {
namespace {

SpawnSpec ValidSpec() {
  SpawnSpec s;
  s.instance_id = "fn-1_a";
  s.argv = {"/bin/sh", "-c", "true"};
  s.env = {"A=b"};
  s.code_dir = "/srv/code";
  s.runtime_dir = "/srv/runtime";
  return s;
}

TEST(ControlProtocolTest, SpecRoundTripsThroughJson) {
  SpawnSpec in = ValidSpec();
  in.memory_limit_bytes = 123;
  in.vcpu = 0.5;
  in.runtime_api_port = 9100;
  in.network_outbound = true;
  in.outbound_private_networks = true;
  in.writable_binds = {{"/srv/build/out", "/out"}, {"/srv/build/go", "/go"}};
  auto out = SpawnSpecFromJson(SpawnSpecToJson(in));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->instance_id, in.instance_id);
  EXPECT_EQ(out->argv, in.argv);
  EXPECT_EQ(out->env, in.env);
  EXPECT_EQ(out->memory_limit_bytes, 123u);
  EXPECT_EQ(out->vcpu, 0.5);
  EXPECT_EQ(out->runtime_api_port, 9100);
  EXPECT_TRUE(out->network_outbound);
  EXPECT_TRUE(out->outbound_private_networks);
  ASSERT_EQ(out->writable_binds.size(), 2u);
  EXPECT_EQ(out->writable_binds[1].host_path, "/srv/build/go");
  EXPECT_EQ(out->writable_binds[1].sandbox_path, "/go");
}

// A writable bind must neither hide nor be hidden by what the sandbox mounts itself (a
// writable /usr, /etc or /var/task would let the sandbox change what it runs).
TEST(ControlProtocolTest, RejectsWritableBindsOverTheSandboxsOwnMounts) {
  for (const char* path : {"/", "/usr", "/usr/lib", "/etc", "/var", "/var/task", "/var/task/x",
                           "/tmp", "/proc", "/dev/shm", "/opt", "/opt/wisp/runtime", "relative",
                           "/a/../usr", "/a//b", "/a/", "/a/./b"}) {
    SpawnSpec s = ValidSpec();
    s.writable_binds = {{"/srv/out", path}};
    EXPECT_FALSE(ValidateSpawnSpec(s)) << path;
  }
  for (const char* path : {"relative", "/srv/../etc", ""}) {
    SpawnSpec s = ValidSpec();
    s.writable_binds = {{path, "/out"}};
    EXPECT_FALSE(ValidateSpawnSpec(s)) << path;
  }
  SpawnSpec s = ValidSpec();
  s.writable_binds = {{"/srv/a", "/out"}, {"/srv/b", "/out/inner"}};
  EXPECT_FALSE(ValidateSpawnSpec(s));
  s.writable_binds = {{"/srv/a", "/out"}, {"/srv/b", "/outer"}, {"/srv/c", "/variable"}};
  EXPECT_TRUE(ValidateSpawnSpec(s)) << ValidateSpawnSpec(s).error().message;
}

TEST(ControlProtocolTest, RejectsIdsThatCouldEscapeTheCgroupDirectory) {
  for (const char* id : {"", "../x", "a/b", "a.b"}) {
    SpawnSpec s = ValidSpec();
    s.instance_id = id;
    EXPECT_FALSE(ValidateSpawnSpec(s)) << id;
  }
  SpawnSpec s = ValidSpec();
  s.argv = {"sh"};
  EXPECT_FALSE(ValidateSpawnSpec(s));
  EXPECT_FALSE(SpawnSpecFromJson(nlohmann::json{{"instance_id", "x"}}));
}

TEST(ControlProtocolTest, DatagramCarriesFds) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  UniqueFd r(p[0]), w(p[1]);
  int fds[] = {w.get()};
  ASSERT_TRUE(SendDatagram(a.get(), "hello", fds));
  auto got = ReceiveDatagram(b.get());
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->data, "hello");
  ASSERT_EQ((*got)->fds.size(), 1u);
  ASSERT_EQ(::write((*got)->fds[0].get(), "x", 1), 1);
  char c;
  ASSERT_EQ(::read(r.get(), &c, 1), 1);

  auto empty = ReceiveDatagram(b.get(), /*nonblocking=*/true);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, ErrorCode::kUnavailable);
  a.Reset();
  auto eof = ReceiveDatagram(b.get());
  ASSERT_TRUE(eof);
  EXPECT_FALSE(*eof);
}

}  // namespace
}  // namespace wisp::sandbox
