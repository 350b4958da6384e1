# The installation as users get it (tests/packaging/check_install.sh): this build installed into a
# temporary prefix, the examples built against it with pkg-config and with find_package(Pelix)
# and run, the manual page read by groff. The examples take the sanitizer flags of the libraries.
find_program(PELIX_BASH bash)
if(PELIX_BASH)
  set(PELIX_PACKAGING_FLAGS "")
  if(PELIX_SANITIZE)
    string(JOIN " " PELIX_PACKAGING_FLAGS ${PELIX_ASAN_FLAGS})
  endif()
  add_test(NAME packaging
           COMMAND ${PELIX_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/packaging/check_install.sh
                   ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR} "${PELIX_PACKAGING_FLAGS}")
  set_tests_properties(packaging PROPERTIES LABELS packaging TIMEOUT 300
                       ENVIRONMENT "CMAKE=${CMAKE_COMMAND};CC=${CMAKE_C_COMPILER}")
endif()
