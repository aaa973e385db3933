#include "devices/virtio/vsock/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "devices/virtio/vsock/vsock_error.hpp"
#include "tests/support/temp_dir.hpp"

namespace forkvm::vsock {
namespace {

using test::TempDir;

// Binds a socket at `path` and returns it (listening when `listen_too`).
Fd bind_at(const std::string& path, bool listen_too, int backlog = 4) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  if (listen_too) {
    EXPECT_EQ(::listen(s.get(), backlog), 0);
  }
  return s;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(VsockUnixSocket, ListensAndUnlinksOnDestruction) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  {
    UnixListener l(path);
    EXPECT_TRUE(exists(path));
    Fd c = connect_unix(path);
    EXPECT_TRUE(c);
    EXPECT_TRUE(l.accept());
    EXPECT_FALSE(l.accept());  // nothing else pending, non-blocking
  }
  EXPECT_FALSE(exists(path));
}

TEST(VsockUnixSocket, ReplacesAStaleSocketFile) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  { Fd dead = bind_at(path, false); }  // closed without unlink: a stale file
  ASSERT_TRUE(exists(path));
  UnixListener l(path);
  Fd c = connect_unix(path);
  EXPECT_TRUE(c);
}

TEST(VsockUnixSocket, RefusesAPathWithALiveListener) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  Fd live = bind_at(path, true);
  try {
    UnixListener l(path);
    FAIL() << "expected VsockError";
  } catch (const VsockError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(exists(path));  // the live socket's file was left alone
}

TEST(VsockUnixSocket, RefusesARegularFileAndOverlongPaths) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  std::ofstream(path) << "not a socket";
  EXPECT_THROW(UnixListener{path}, VsockError);
  EXPECT_TRUE(exists(path));
  EXPECT_THROW(UnixListener{(dir / std::string(200, 'x'))}, VsockError);
  EXPECT_THROW(UnixListener{(dir / "missing-dir/v.sock")}, VsockError);
}

TEST(VsockUnixSocket, SocketFileIsOwnerOnly) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  const mode_t old = ::umask(0);  // the widest mode bind() can give
  UnixListener l(path);
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(VsockUnixSocket, RefusesADirectoryOthersCanWrite) {
  TempDir dir;
  for (mode_t mode : {mode_t{0770}, mode_t{0707}, mode_t{01777}}) {
    ASSERT_EQ(::chmod(dir.path().c_str(), mode), 0);
    const std::string path = (dir / "v.sock");
    try {
      UnixListener l(path);
      FAIL() << "expected VsockError for mode " << std::oct << mode;
    } catch (const VsockError& e) {
      EXPECT_NE(std::string(e.what()).find("writable by group or others"), std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(exists(path));
  }
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  EXPECT_NO_THROW(UnixListener{(dir / "v.sock")});
}

// A live listener whose backlog is full: a blocking probe connect() would wait until someone
// accepts, that is forever. The listener must refuse the path at once instead.
TEST(VsockUnixSocket, StaleProbeDoesNotBlockOnAFullBacklog) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  Fd live = bind_at(path, true, 0);
  std::vector<Fd> fillers;
  for (int i = 0; i < 8; ++i) {
    Fd c = connect_unix(path);  // non-blocking: fails once the backlog is full
    if (!c) break;
    fillers.push_back(std::move(c));
  }
  ASSERT_FALSE(fillers.empty());
  ASSERT_FALSE(connect_unix(path));  // full now
  std::promise<bool> threw;
  auto done = threw.get_future();
  std::thread t([&] {
    try {
      UnixListener l(path);
      threw.set_value(false);
    } catch (const VsockError&) {
      threw.set_value(true);
    }
  });
  const bool finished = done.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (!finished) live.reset();  // unblocks a blocked probe so the thread can be joined
  t.join();
  ASSERT_TRUE(finished) << "the stale-socket probe blocked on a full backlog";
  EXPECT_TRUE(done.get());  // a live listener: refused, its file kept
  EXPECT_TRUE(exists(path));
}

TEST(VsockUnixSocket, DoesNotUnlinkSomeoneElsesSocket) {
  TempDir dir;
  const std::string path = (dir / "v.sock");
  auto l = std::make_unique<UnixListener>(path);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  Fd other = bind_at(path, true);  // a new socket took the name
  l.reset();
  EXPECT_TRUE(exists(path));
}

TEST(VsockUnixSocket, ConnectFailsWithoutListener) {
  TempDir dir;
  EXPECT_FALSE(connect_unix((dir / "nobody")));
  EXPECT_FALSE(connect_unix(""));
}

TEST(VsockUnixSocket, ReadWriteReportEofAndErrors) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  uint8_t buf[8];
  EXPECT_TRUE(read_some(a.get(), buf).would_block);
  const uint8_t msg[3] = {1, 2, 3};
  EXPECT_EQ(write_some(b.get(), msg).bytes, 3u);
  EXPECT_EQ(read_some(a.get(), buf).bytes, 3u);
  EXPECT_FALSE(peer_hung_up(a.get()));
  b.reset();
  EXPECT_TRUE(read_some(a.get(), buf).eof);
  EXPECT_TRUE(peer_hung_up(a.get()));
  EXPECT_TRUE(write_some(a.get(), msg).error);  // EPIPE, and no SIGPIPE kills the test
}

}  // namespace
}  // namespace forkvm::vsock
