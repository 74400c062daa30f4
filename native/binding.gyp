{
  "targets": [
    {
      "target_name": "weft_udp",
      "sources": [
        "src/addon.c",
        "src/datapath.c",
        "src/engine.c",
        "src/netns.c",
        "src/offload.c",
        "src/peer_table.c",
        "src/rtnl.c",
        "src/rtnl_msg.c",
        "src/tun.c"
      ],
      "cflags": ["-std=gnu11", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
      "cflags!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
