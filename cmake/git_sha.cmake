# Writes OUT = '#define CAPSCALE_GIT_SHA "<short sha>[-dirty]"' at build time, touching the file only
# when the text changes (so an unchanged tree rebuilds nothing). Run with cmake -DSRC= -DOUT= -P.
execute_process(COMMAND git describe --always --dirty --abbrev=10 WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE sha OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT sha)
  set(sha unknown)
endif()
set(content "#define CAPSCALE_GIT_SHA \"${sha}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL content)
  file(WRITE ${OUT} "${content}")
endif()
