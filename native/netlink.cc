// nfsessiond_native: a thin owner of raw AF_NETLINK sockets.
//
// The addon deliberately knows nothing about nfnetlink, NFQUEUE or ctnetlink: it opens, binds,
// configures and polls a socket, and moves bytes. Every codec is TypeScript so that it can be unit
// tested without root. The one thing done natively for speed is the receive drain: on each wake-up
// we read up to a bounded number of datagrams into a reusable arena and hand them to JS as one
// Buffer, which amortises the JS<->C++ transition over a whole burst of queued packets.

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

namespace {

// Largest datagram we accept. NFQUEUE caps the copied payload at 0xffff bytes, ctnetlink and
// nf_tables dumps stay below 32 KiB per datagram; 128 KiB leaves room for headers and attributes.
constexpr size_t kMaxDatagram = 128 * 1024;
constexpr uint32_t kDefaultMaxBurst = 64;
constexpr size_t kDefaultMaxBytes = 4 * 1024 * 1024;
// Bounds for caller-supplied burst options, so a typo cannot make us allocate gigabytes.
constexpr uint32_t kMaxMaxBurst = 65536;
constexpr size_t kMaxMaxBytes = 64 * 1024 * 1024;

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  const char* code = uv_err_name(-err);
  std::string msg = std::string(syscall) + " " + code + " (" + strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

class NetlinkSocket : public Napi::ObjectWrap<NetlinkSocket> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NetlinkSocket",
                       {
                           InstanceAccessor<&NetlinkSocket::GetPortId>("portId"),
                           InstanceAccessor<&NetlinkSocket::GetFd>("fd"),
                           InstanceMethod<&NetlinkSocket::AddMembership>("addMembership"),
                           InstanceMethod<&NetlinkSocket::SetReceiveBuffer>("setReceiveBuffer"),
                           InstanceMethod<&NetlinkSocket::SetNoEnobufs>("setNoEnobufs"),
                           InstanceMethod<&NetlinkSocket::SetExtAck>("setExtAck"),
                           InstanceMethod<&NetlinkSocket::Send>("send"),
                           InstanceMethod<&NetlinkSocket::SendV>("sendv"),
                           InstanceMethod<&NetlinkSocket::ReceiveSync>("receiveSync"),
                           InstanceMethod<&NetlinkSocket::Start>("start"),
                           InstanceMethod<&NetlinkSocket::Stop>("stop"),
                           InstanceMethod<&NetlinkSocket::Close>("close"),
                       });
  }

  explicit NetlinkSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetlinkSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      throw Napi::TypeError::New(env, "NetlinkSocket(protocol): protocol must be a number");
    }
    int protocol = info[0].As<Napi::Number>().Int32Value();
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
    if (fd_ < 0) throw ErrnoError(env, errno, "socket");
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_pid = 0;  // let the kernel pick a unique port id, so several sockets per process work
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      int err = errno;
      CloseFd();
      throw ErrnoError(env, err, "bind");
    }
    socklen_t alen = sizeof addr;
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &alen) < 0) {
      int err = errno;
      CloseFd();
      throw ErrnoError(env, err, "getsockname");
    }
    port_id_ = addr.nl_pid;
  }

  ~NetlinkSocket() override {
    // Runs from the GC finalizer or environment teardown: no JS may be touched here.
    ReleasePoll();
    CloseFd();
  }

 private:
  Napi::Value GetPortId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), port_id_); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  void RequireOpen(Napi::Env env, const char* syscall) {
    if (fd_ < 0) throw ErrnoError(env, EBADF, syscall);
  }

  void SetOpt(Napi::Env env, int level, int name, int value, const char* what) {
    RequireOpen(env, what);
    if (setsockopt(fd_, level, name, &value, sizeof value) < 0) throw ErrnoError(env, errno, what);
  }

  Napi::Value AddMembership(const Napi::CallbackInfo& info) {
    SetOpt(info.Env(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, info[0].ToNumber().Int32Value(),
           "setsockopt(NETLINK_ADD_MEMBERSHIP)");
    return info.Env().Undefined();
  }

  Napi::Value SetReceiveBuffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "setsockopt(SO_RCVBUF)");
    int bytes = info[0].ToNumber().Int32Value();
    // SO_RCVBUFFORCE ignores rmem_max but needs CAP_NET_ADMIN; without it SO_RCVBUF still gives
    // up to 2 x rmem_max, which is better than failing start-up.
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0 &&
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0) {
      throw ErrnoError(env, errno, "setsockopt(SO_RCVBUF)");
    }
    int actual = 0;
    socklen_t len = sizeof actual;
    if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &actual, &len) < 0) {
      throw ErrnoError(env, errno, "getsockopt(SO_RCVBUF)");
    }
    return Napi::Number::New(env, actual);
  }

  Napi::Value SetNoEnobufs(const Napi::CallbackInfo& info) {
    SetOpt(info.Env(), SOL_NETLINK, NETLINK_NO_ENOBUFS, info[0].ToBoolean() ? 1 : 0,
           "setsockopt(NETLINK_NO_ENOBUFS)");
    return info.Env().Undefined();
  }

  Napi::Value SetExtAck(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "setsockopt(NETLINK_EXT_ACK)");
    int v = info[0].ToBoolean() ? 1 : 0;
    // Extended ACKs only improve error messages; old kernels without them are still usable.
    if (setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &v, sizeof v) < 0 && errno != ENOPROTOOPT) {
      throw ErrnoError(env, errno, "setsockopt(NETLINK_EXT_ACK)");
    }
    return env.Undefined();
  }

  void SendIov(Napi::Env env, iovec* iov, size_t n) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    msghdr msg{};
    msg.msg_name = &kernel;
    msg.msg_namelen = sizeof kernel;
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t r;
    do {
      r = sendmsg(fd_, &msg, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) throw ErrnoError(env, errno, "sendmsg");
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "sendmsg");
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "send(buf): buf must be a Buffer");
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    iovec iov{buf.Data(), buf.Length()};
    SendIov(env, &iov, 1);
    return env.Undefined();
  }

  Napi::Value SendV(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "sendmsg");
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "sendv(bufs): bufs must be an array");
    Napi::Array arr = info[0].As<Napi::Array>();
    uint32_t n = arr.Length();
    if (n == 0) return env.Undefined();
    std::vector<iovec> iov(n);
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "sendv(bufs): every element must be a Buffer");
      auto b = v.As<Napi::Buffer<uint8_t>>();
      iov[i] = iovec{b.Data(), b.Length()};
      total += b.Length();
    }
    if (n <= static_cast<uint32_t>(IOV_MAX)) {
      SendIov(env, iov.data(), n);
    } else {
      // Still one datagram: nf_tables batches must arrive whole, so gather rather than split.
      std::vector<uint8_t> flat(total);
      size_t off = 0;
      for (auto& v : iov) {
        memcpy(flat.data() + off, v.iov_base, v.iov_len);
        off += v.iov_len;
      }
      iovec one{flat.data(), flat.size()};
      SendIov(env, &one, 1);
    }
    return env.Undefined();
  }

  Napi::Value ReceiveSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "recv");
    int timeout = info.Length() > 0 ? info[0].ToNumber().Int32Value() : 0;
    if (timeout < 0) timeout = 0;
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = poll(&p, 1, timeout);
    } while (r < 0 && errno == EINTR);
    if (r < 0) throw ErrnoError(env, errno, "poll");
    if (r == 0) return env.Null();
    if (sync_buf_.size() < kMaxDatagram) sync_buf_.resize(kMaxDatagram);
    ssize_t n;
    do {
      n = recv(fd_, sync_buf_.data(), sync_buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
      throw ErrnoError(env, errno, "recv");
    }
    if (static_cast<size_t>(n) > sync_buf_.size()) throw ErrnoError(env, EMSGSIZE, "recv");
    return Napi::Buffer<uint8_t>::Copy(env, sync_buf_.data(), static_cast<size_t>(n));
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env, "uv_poll_start");
    if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "start(onBurst, onEvent, opts?): callbacks must be functions");
    }
    uint32_t max_burst = kDefaultMaxBurst;
    size_t max_bytes = kDefaultMaxBytes;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      if (o.Has("maxBurst") && o.Get("maxBurst").IsNumber()) {
        int64_t v = o.Get("maxBurst").As<Napi::Number>().Int64Value();
        if (v < 1 || v > kMaxMaxBurst) throw Napi::RangeError::New(env, "maxBurst out of range (1..65536)");
        max_burst = static_cast<uint32_t>(v);
      }
      if (o.Has("maxBytes") && o.Get("maxBytes").IsNumber()) {
        int64_t v = o.Get("maxBytes").As<Napi::Number>().Int64Value();
        if (v < 1 || static_cast<size_t>(v) > kMaxMaxBytes) {
          throw Napi::RangeError::New(env, "maxBytes out of range (1..64 MiB)");
        }
        max_bytes = static_cast<size_t>(v);
      }
    }
    on_burst_ = Napi::Persistent(info[0].As<Napi::Function>());
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    max_burst_ = max_burst;
    max_bytes_ = max_bytes;
    // The arena holds one burst; a full-size datagram always fits after max_bytes of smaller ones.
    arena_.resize(max_bytes_ + kMaxDatagram);
    ends_.resize(max_burst_);
    if (!async_context_) async_context_.reset(new Napi::AsyncContext(env, "NetlinkSocket"));

    if (poll_ == nullptr) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no uv loop");
      poll_ = new uv_poll_t;
      int rc = uv_poll_init_socket(loop, poll_, fd_);
      if (rc < 0) {
        delete poll_;
        poll_ = nullptr;
        throw ErrnoError(env, -rc, "uv_poll_init");
      }
      poll_->data = this;
    }
    int rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (rc < 0) throw ErrnoError(env, -rc, "uv_poll_start");
    if (!polling_) {
      // A polling socket must stay alive even if JS drops every reference to it, like net.Socket.
      Ref();
      polling_ = true;
    }
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    ReleasePoll();
    CloseFd();
    on_burst_.Reset();
    on_event_.Reset();
    // Keep the arena if we are inside a burst callback: Drain() checks polling_ and returns.
    if (!in_drain_) {
      std::vector<uint8_t>().swap(arena_);
      std::vector<uint32_t>().swap(ends_);
    }
    std::vector<uint8_t>().swap(sync_buf_);
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (poll_ != nullptr) uv_poll_stop(poll_);
    if (polling_) {
      polling_ = false;
      Unref();
    }
  }

  void ReleasePoll() {
    if (poll_ == nullptr) return;
    // The handle outlives this object until libuv's close callback, so it owns itself from here.
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  void CloseFd() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<NetlinkSocket*>(handle->data);
    if (self == nullptr || !self->polling_) return;
    self->Drain(status);
  }

  // Calls a JS callback from the event loop. MakeCallback runs the nextTick and microtask queues
  // afterwards, so promises resolved inside the callback settle before the next uv phase. A throw
  // becomes an 'uncaughtException' rather than unwinding into libuv.
  void CallJs(Napi::Env env, Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
    if (fn.IsEmpty()) return;
    try {
      fn.MakeCallback(Value(), args, *async_context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  // True when the JS side closed or stopped the socket from inside a callback.
  bool Gone() const { return !polling_ || fd_ < 0; }

  void EmitEvent(Napi::Env env, const char* kind, int err) {
    CallJs(env, on_event_, {Napi::String::New(env, kind), Napi::Number::New(env, err)});
  }

  // Hands the datagrams read so far to JS as one Buffer plus their end offsets.
  void FlushBurst(Napi::Env env, size_t bytes, uint32_t count) {
    if (count == 0) return;
    Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::Copy(env, arena_.data(), bytes);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, count * sizeof(uint32_t));
    memcpy(ab.Data(), ends_.data(), count * sizeof(uint32_t));
    Napi::Uint32Array ends = Napi::Uint32Array::New(env, count, ab, 0);
    CallJs(env, on_burst_, {data, ends});
  }

  void Drain(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    in_drain_ = true;
    struct Guard {
      NetlinkSocket* s;
      ~Guard() {
        s->in_drain_ = false;
        if (s->fd_ < 0) {
          std::vector<uint8_t>().swap(s->arena_);
          std::vector<uint32_t>().swap(s->ends_);
        }
      }
    } guard{this};

    if (status < 0) {
      // libuv reports POLLERR as an error status and stops the handle. For netlink that is how a
      // receive-buffer overrun (sk_err = ENOBUFS) shows up: read and clear SO_ERROR, report it,
      // and resume polling instead of dying.
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
      if (soerr == 0) soerr = -status;
      EmitEvent(env, soerr == ENOBUFS ? "overrun" : "error", soerr);
      if (Gone()) return;
      int rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (rc < 0) {
        EmitEvent(env, "error", -rc);
        return;
      }
    }

    size_t off = 0;
    uint32_t count = 0;
    while (count < max_burst_ && off < max_bytes_) {
      ssize_t n = recv(fd_, arena_.data() + off, kMaxDatagram, MSG_DONTWAIT | MSG_TRUNC);
      if (n >= 0) {
        if (static_cast<size_t>(n) > kMaxDatagram) {
          // Truncated: the datagram is unusable, but the rest of the stream is fine.
          FlushBurst(env, off, count);
          off = 0;
          count = 0;
          if (Gone()) return;
          EmitEvent(env, "error", EMSGSIZE);
          if (Gone()) return;
          continue;
        }
        off += static_cast<size_t>(n);
        ends_[count++] = static_cast<uint32_t>(off);
        continue;
      }
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      // Deliver what came before the error first, so JS sees events in stream order.
      FlushBurst(env, off, count);
      off = 0;
      count = 0;
      if (Gone()) return;
      if (err == ENOBUFS) {
        EmitEvent(env, "overrun", err);
        if (Gone()) return;
        continue;
      }
      EmitEvent(env, "error", err);
      // Unknown errors end the burst; level-triggered polling brings us back if data remains.
      return;
    }
    FlushBurst(env, off, count);
  }

  int fd_ = -1;
  uint32_t port_id_ = 0;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  bool in_drain_ = false;
  uint32_t max_burst_ = kDefaultMaxBurst;
  size_t max_bytes_ = kDefaultMaxBytes;
  std::vector<uint8_t> arena_;
  std::vector<uint32_t> ends_;
  std::vector<uint8_t> sync_buf_;
  Napi::FunctionReference on_burst_;
  Napi::FunctionReference on_event_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NetlinkSocket", NetlinkSocket::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(nfsessiond_native, Init)
