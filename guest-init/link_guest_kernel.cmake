# cmake -P script behind the `guest-kernel` target: runs tools/guest-kernel/build.sh (which
# prints the cache directory holding bzImage and vmlinux on stdout, progress on stderr) and
# points ${GUEST_DIR}/bzImage and ${GUEST_DIR}/vmlinux at that directory.
#
# Inputs: BUILD_SCRIPT, CACHE_DIR (exported to build.sh as FORKVM_CACHE), GUEST_DIR.
foreach(var BUILD_SCRIPT CACHE_DIR GUEST_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "link_guest_kernel.cmake: -D${var}=... is required")
  endif()
endforeach()

set(ENV{FORKVM_CACHE} "${CACHE_DIR}")
# stderr is not captured, so build.sh's progress reaches the terminal (USES_TERMINAL).
execute_process(COMMAND bash "${BUILD_SCRIPT}"
  OUTPUT_VARIABLE out_dir
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "guest kernel build failed (${BUILD_SCRIPT} exited with ${rc})")
endif()
foreach(file bzImage vmlinux)
  if(NOT EXISTS "${out_dir}/${file}")
    message(FATAL_ERROR "guest kernel build printed '${out_dir}', which has no ${file}")
  endif()
endforeach()

file(MAKE_DIRECTORY "${GUEST_DIR}")
foreach(file bzImage vmlinux)
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
