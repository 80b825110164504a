# CUDA emulation (tests only): turns one .cu file into C++ the host compiler
# accepts, for cuda/emu/include's runtime (see cuda_runtime.h there):
#   k<<<g, b, s, st>>>(args)   ->  k ->* ::bl_emu::Cfg(__FILE__, __LINE__, g, b, s, st)(args)
#   extern __shared__ T x[];   ->  T* x = reinterpret_cast<T*>(::bl_emu::dynamic_smem());
# and prepends a #line so compiler messages name the original file and line.
# Usage: cmake -DIN=file.cu -DOUT=file.cc -P rewrite.cmake
file(READ "${IN}" src)
string(REPLACE "<<<" " ->* ::bl_emu::Cfg(__FILE__, __LINE__, " src "${src}")
string(REPLACE ">>>" ")" src "${src}")
string(REGEX REPLACE "extern[ \t]+__shared__[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\1* \\2 = reinterpret_cast<\\1*>(::bl_emu::dynamic_smem());" src "${src}")
if(src MATCHES "extern[ \t]+__shared__")
  message(FATAL_ERROR "${IN}: an extern __shared__ declaration the emulator's rewrite does not understand")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
