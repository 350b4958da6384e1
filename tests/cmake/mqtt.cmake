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
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
pelix_unit_test(mqtt_tls MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
pelix_unit_test(mqtt_offline MODULES ${PELIX_MQTT_MODULES} DIR integration LABEL integration
                THREADED SOURCES ${PELIX_MQTT_TEST_SOURCES})
