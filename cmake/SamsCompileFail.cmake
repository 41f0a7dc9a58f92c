# cmake -DBUILD_DIR=<dir> -DTARGET=<target> -DSOURCE=<file.cpp> [-DCONFIG=<cfg>] -P SamsCompileFail.cmake
# Passes when building TARGET fails and the build output matches every "// expect: <regex>"
# line of SOURCE; fails when the target compiles, or fails for another reason.
foreach(var BUILD_DIR TARGET SOURCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "SamsCompileFail.cmake: -D${var}=... is required")
  endif()
endforeach()

file(STRINGS ${SOURCE} expect_lines REGEX "^// expect: ")
if(NOT expect_lines)
  message(FATAL_ERROR "${SOURCE}: missing '// expect: <regex>' line")
endif()

set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
# LC_ALL=C: plain ASCII quotes in GCC's diagnostics, so the regexes need not care.
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C
                        ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET} ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)

if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but ${SOURCE} must not compile with SAMS_COMPILE_FAIL defined")
endif()
foreach(line IN LISTS expect_lines)
  string(REGEX REPLACE "^// expect: " "" regex "${line}")
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "${TARGET} failed to compile, but its output does not match '${regex}':\n${out}")
  endif()
endforeach()
message(STATUS "${TARGET} was rejected as expected")
