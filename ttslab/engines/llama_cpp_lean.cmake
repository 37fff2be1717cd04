# Build only what ttslab's CPU engine loads from llama-cpp-python: libllama and libggml.
#
#   CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/ttslab/engines/llama_cpp_lean.cmake" \
#       pip install -e ".[cpu]"
#
# llama-cpp-python 0.3.36 forces llama.cpp's `common` library on (its CMakeLists sets LLAMA_BUILD_COMMON
# with CACHE ... FORCE), which a -D cannot undo; its Python code never loads it (only llama, ggml and, for
# images, mtmd: LLAVA_BUILD=OFF drops that one). CMake includes this file at the end of llama.cpp's
# project() call, before its option() list: a normal variable shadows the forced cache entry in that
# directory (policy CMP0077), so neither common/ nor cpp-httplib is configured, built or installed.
# Measured on 2 cores: common is ~40% of the build (benchmarks/newcomer.py times the whole install).
set(LLAMA_BUILD_COMMON OFF)
