# cmake -P script behind the `guest-kernel` and `guest-rootfs` targets: runs a build script
# that keeps its output in the cache (tools/guest-kernel/build.sh, tools/rootfs/build.sh: the
# cache directory on stdout, progress on stderr) and points ${GUEST_DIR}/<file> at each of
# FILES in that directory.
#
# Inputs: BUILD_SCRIPT, CACHE_DIR (exported as FORKVM_CACHE), GUEST_DIR, FILES (comma-separated).
foreach(var BUILD_SCRIPT CACHE_DIR GUEST_DIR FILES)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "link_cached_output.cmake: -D${var}=... is required")
  endif()
endforeach()

string(REPLACE "," ";" FILES "${FILES}")
set(ENV{FORKVM_CACHE} "${CACHE_DIR}")
# stderr is not captured, so build.sh's progress reaches the terminal (USES_TERMINAL).
execute_process(COMMAND bash "${BUILD_SCRIPT}"
  OUTPUT_VARIABLE out_dir
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BUILD_SCRIPT} failed (exit status ${rc})")
endif()
foreach(file ${FILES})
  if(NOT EXISTS "${out_dir}/${file}")
    message(FATAL_ERROR "${BUILD_SCRIPT} printed '${out_dir}', which has no ${file}")
  endif()
endforeach()

file(MAKE_DIRECTORY "${GUEST_DIR}")
foreach(file ${FILES})
  set(link "${GUEST_DIR}/${file}")
  # Only touch the link when it changes, so that dependents see a stable timestamp.
  if(IS_SYMLINK "${link}")
    file(READ_SYMLINK "${link}" current)
    if(current STREQUAL "${out_dir}/${file}")
      continue()
    endif()
  endif()
  file(REMOVE "${link}")
  file(CREATE_LINK "${out_dir}/${file}" "${link}" SYMBOLIC)
  message(STATUS "guest/${file} -> ${out_dir}/${file}")
endforeach()
