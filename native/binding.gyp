{
  # One thin addon: it owns raw AF_NETLINK sockets and nothing else. Every message codec lives in
  # TypeScript, so nothing here links libmnl or libnetfilter_queue (GPL) and CI needs no -dev packages.
  "targets": [
    {
      "target_name": "nfsessiond_native",
      "sources": ["netlink.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      # sd_notify(3) for the systemd service (Type=notify, watchdog), without libsystemd.
      "target_name": "nfsessiond_notify",
      "sources": ["notify.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
