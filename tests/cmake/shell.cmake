# The shell's parser (src/shell), without a runtime.
pelix_unit_test(shell_parse MODULES shell mqtt mqtt_topic mqtt_dispatch configadmin registry
                filter props util)
