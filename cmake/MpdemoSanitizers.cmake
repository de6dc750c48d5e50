# MPDEMO_SANITIZE=address,undefined or thread: compile and link every mpdemo target with them.
add_library(mpdemo_sanitizers INTERFACE)
if(MPDEMO_SANITIZE)
  target_compile_options(mpdemo_sanitizers INTERFACE
    -fsanitize=${MPDEMO_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(mpdemo_sanitizers INTERFACE -fsanitize=${MPDEMO_SANITIZE})
endif()
