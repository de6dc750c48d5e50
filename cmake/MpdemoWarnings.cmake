# Warnings live on an INTERFACE target that every mpdemo target links, never in global flags.
add_library(mpdemo_warnings INTERFACE)
target_compile_options(mpdemo_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
