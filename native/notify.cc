// sd_notify(3) without libsystemd: one AF_UNIX datagram to $NOTIFY_SOCKET. Node has no AF_UNIX
// datagram sockets, so this is the only piece of the service protocol that needs C.
//
//   notify(socketPath, message) -> undefined; throws Error with `errno`/`code` on failure.
//
// socketPath is taken as systemd gives it: a filesystem path, or '@name' for an abstract socket
// (the '@' becomes the leading NUL byte). Abstract sockets belong to a network namespace.
// A second export, `listen(socketPath)`, binds a datagram socket and returns its fd; `receive(fd,
// timeoutMs)` reads one datagram (or null on timeout). The tests use them as the service manager's
// side; the daemon never listens.

#include <napi.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// Fills `addr` from a systemd-style socket name; returns the address length or 0 when invalid.
socklen_t FillAddress(const std::string& name, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (name.empty()) return 0;
  const bool abstract = name[0] == '@';
  // Room for the path; a filesystem path also needs its terminating NUL.
  const size_t max = sizeof(addr->sun_path) - (abstract ? 0 : 1);
  if (name.size() > max) return 0;
  std::memcpy(addr->sun_path, name.data(), name.size());
  if (abstract) addr->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
}

Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "notify(socketPath: string, message: string)");
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const std::string msg = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un addr;
  const socklen_t len = FillAddress(path, &addr);
  if (len == 0) throw ErrnoError(env, EINVAL, "notify: bad socket name '" + path + "'");
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, errno, "notify: socket");
  ssize_t n;
  do {
    n = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  close(fd);
  if (n < 0) throw ErrnoError(env, err, "notify: sendto " + path);
  return env.Undefined();
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "listen(socketPath: string)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr;
  const socklen_t len = FillAddress(path, &addr);
  if (len == 0) throw ErrnoError(env, EINVAL, "listen: bad socket name '" + path + "'");
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, errno, "listen: socket");
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    const int err = errno;
    close(fd);
    throw ErrnoError(env, err, "listen: bind " + path);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Receive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "receive(fd: number, timeoutMs: number)");
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int timeout = info[1].As<Napi::Number>().Int32Value();
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, timeout);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw ErrnoError(env, errno, "receive: poll");
  if (r == 0) return env.Null();
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    throw ErrnoError(env, errno, "receive: recv");
  }
  return Napi::String::New(env, buf, static_cast<size_t>(n));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  if (info.Length() >= 1 && info[0].IsNumber()) close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("notify", Napi::Function::New(env, Notify, "notify"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("receive", Napi::Function::New(env, Receive, "receive"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsessiond_notify, Init)
