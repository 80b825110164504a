# CUDA emulation (tests only): turns one .cu file into C++ the host compiler
# accepts, for cuda/emu/include's runtime (see cuda_runtime.h there):
#   k<<<g, b, s, st>>>(args)   ->  k ->* ::bl_emu::Cfg(__FILE__, __LINE__, g, b, s, st)(args)
#   extern __shared__ T x[];   ->  T* x = reinterpret_cast<T*>(::bl_emu::dynamic_smem());
#   __shared__ T x[a][b];      ->  static T x[a][b]; ::bl_emu::shared_var(&x, sizeof(x));
# and prepends a #line so compiler messages name the original file and line.
# Usage: cmake -DIN=file.cu -DOUT=file.cc -P rewrite.cmake
file(READ "${IN}" src)
string(REPLACE "<<<" " ->* ::bl_emu::Cfg(__FILE__, __LINE__, " src "${src}")
string(REPLACE ">>>" ")" src "${src}")
string(REGEX REPLACE "extern[ \t]+__shared__[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\1* \\2 = reinterpret_cast<\\1*>(::bl_emu::dynamic_smem());" src "${src}")
# Static shared arrays: a function static (shared by the block's threads,
# blocks run in turn) registered with the runtime, which fills it with 0xff
# when the block's first thread reaches it, as the dynamic memory is, so a read
# the block never wrote shows up even when the previous block left the right
# values there.
string(REGEX REPLACE "__shared__[ \t]+([A-Za-z_][A-Za-z0-9_:]*)[ \t]+([A-Za-z_][A-Za-z0-9_]*)((\\[[^];]*\\])+)[ \t]*;"
       "static \\1 \\2\\3; ::bl_emu::shared_var(&\\2, sizeof(\\2));" src "${src}")
if(src MATCHES "__shared__[ \t]+[A-Za-z_][A-Za-z0-9_:]*[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*[[;=]")
  message(FATAL_ERROR "${IN}: a __shared__ declaration the emulator's rewrite does not understand")
endif()
if(src MATCHES "extern[ \t]+__shared__")
  message(FATAL_ERROR "${IN}: an extern __shared__ declaration the emulator's rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
