{
  "targets": [
    {
      "target_name": "xdpwall",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/object.cc",
        "src/program.cc",
        "src/map.cc",
        "src/netdev.cc",
        "src/link.cc",
        "src/ringbuf.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=gnu++20", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      # Debian's libbpf.a is not position-independent: link the shared library.
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
