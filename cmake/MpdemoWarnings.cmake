# Warnings live on an INTERFACE target that every mpdemo target links, never in global flags.
add_library(mpdemo_warnings INTERFACE)
target_compile_options(mpdemo_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)

# CI builds with warnings as errors (the asan and tsan presets), so a new warning cannot land; a
# user's build with another compiler is not stopped by one.
option(MPDEMO_WARNINGS_AS_ERRORS "Treat compiler warnings as errors" OFF)
# GCC 12's -Wmaybe-uninitialized and -Wnull-dereference report false positives inside libstdc++
# (<regex>, <functional>, std::string's copy inlined into a std::tuple's) once sanitizers instrument
# the code: they stay warnings.
if(MPDEMO_WARNINGS_AS_ERRORS)
  target_compile_options(mpdemo_warnings INTERFACE -Werror -Wno-error=maybe-uninitialized
                                                   -Wno-error=null-dereference)
endif()
