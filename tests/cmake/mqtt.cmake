# The MQTT service against real mosquitto brokers started by the tests on loopback.
set(PELIX_MQTT_MODULES mqtt mqtt_topic mqtt_dispatch configadmin registry filter props util)
set(PELIX_MQTT_TEST_SOURCES integration/broker.c integration/client.c integration/mqtt_fixture.c
    unit/ca_helpers.c)
pelix_unit_test(mqtt_service MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
pelix_unit_test(mqtt_faults MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
pelix_unit_test(mqtt_regressions MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
# The listener index of the service (no broker).
pelix_unit_test(mqtt_lindex MODULES ${PELIX_MQTT_MODULES})
# The network thread's wake-ups under concurrent posts (no broker).
pelix_unit_test(mqtt_wake MODULES ${PELIX_MQTT_MODULES} THREADED)
pelix_unit_test(mqtt_session MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES} integration/proxy.c)
pelix_unit_test(mqtt_tls MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
pelix_unit_test(mqtt_offline MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
# Coalescing of busy brokers: fast streams read in bursts, light and QoS 1 ones as they come.
pelix_unit_test(mqtt_coalesce MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
# Threads registering, changing and unregistering listeners and configurations while messages
# flow (with its ThreadSanitizer build).
pelix_unit_test(mqtt_churn MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
# Soak: load over three brokers, one restarting, listeners coming and going (2 minutes here;
# `make soak SOAK_MINUTES=N` for longer). A small ASan quarantine, so that RSS shows leaks;
# heap_count.c counts the heap in use exactly in the build without sanitizers.
pelix_unit_test(mqtt_soak MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                SOURCES ${PELIX_MQTT_TEST_SOURCES} integration/heap_count.c)
set_tests_properties(mqtt_soak PROPERTIES ENVIRONMENT
                     "ASAN_OPTIONS=quarantine_size_mb=4;PELIX_SOAK_SECONDS=120")
# Faults on the network path: a TCP proxy of the test that stalls, delays and cuts.
pelix_unit_test(mqtt_proxy MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES} integration/proxy.c)
