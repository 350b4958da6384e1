# The pelix-mqtt program driven as a user would (its stdin, stdout, stderr, signals, exit status,
# a pseudo-terminal), against the embedded default broker and the harness's brokers.
pelix_unit_test(program MODULES util DIR integration LABEL integration
                SOURCES integration/broker.c integration/client.c integration/program_helpers.c)
target_compile_definitions(test_program PRIVATE PELIX_PROGRAM="$<TARGET_FILE:pelix-mqtt>")
target_link_libraries(test_program PRIVATE util)
add_dependencies(test_program pelix-mqtt)
