# The fuzz targets of fuzz/ (one per parser), each run by the replay driver over its committed
# corpus and a fixed number of mutations of every file, under the build's sanitizers. `make fuzz`
# runs the same targets with libFuzzer for longer (fuzz/README.md).
set(PELIX_FUZZ_TARGETS filter topic config shell inbound)
set(PELIX_FUZZ_MUTATIONS 20000)
pelix_objects(PELIX_FUZZ_OBJECTS main shell mqtt mqtt_topic mqtt_dispatch configadmin registry
              filter props util)
foreach(name IN LISTS PELIX_FUZZ_TARGETS)
  add_executable(fuzz_${name} ${PROJECT_SOURCE_DIR}/fuzz/fuzz_${name}.c
                 ${PROJECT_SOURCE_DIR}/fuzz/replay.c ${PELIX_FUZZ_OBJECTS})
  target_include_directories(fuzz_${name} PRIVATE ${PROJECT_SOURCE_DIR}/include
                             ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/fuzz)
  target_compile_options(fuzz_${name} PRIVATE ${PELIX_WARNINGS})
  target_link_libraries(fuzz_${name} PRIVATE PkgConfig::JANSSON PkgConfig::MOSQUITTO
                        Threads::Threads m)
  pelix_variant_flags(fuzz_${name} main)
  add_test(NAME fuzz_${name}
           COMMAND fuzz_${name} -mutations=${PELIX_FUZZ_MUTATIONS}
                   -artifact_prefix=${CMAKE_CURRENT_BINARY_DIR}/fuzz_${name}-
                   ${PROJECT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz TIMEOUT 300)
endforeach()
