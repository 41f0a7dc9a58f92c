# cmake -DBUILD_DIR=<build tree> -DPREFIX=<dir> [-DCONFIG=<cfg>] -P SamsInstallForTest.cmake
# Installs the build tree into a fresh PREFIX, so a removed header cannot linger there.
foreach(var BUILD_DIR PREFIX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "SamsInstallForTest.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${PREFIX})
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} ${config_args}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc})")
endif()
