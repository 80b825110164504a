{
  "targets": [
    {
      "target_name": "bayeslora",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('cpp',{recursive:true}).filter(f=>f.endsWith('.cc')).map(f=>'cpp/'+f).join(' ')\")"
      ],
      "include_dirs": ["cpp", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
