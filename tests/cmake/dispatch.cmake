# The dispatch queues: order, bounds and OOM in one suite, closing in another; shared helpers.
pelix_unit_test(mqtt_dispatch MODULES mqtt_dispatch util THREADED SOURCES unit/dispatch_helpers.c)
pelix_unit_test(mqtt_dispatch_close MODULES mqtt_dispatch util THREADED
                SOURCES unit/dispatch_helpers.c)
