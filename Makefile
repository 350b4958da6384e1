# pelix-mqtt: the two commands are `make run` and `make test` (see README.md).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CONF ?= conf
ARGS ?=
QUICK ?=
FUZZ_SECONDS ?= 60
SOAK_MINUTES ?= 10
VALGRIND ?=
PREFIX ?= /usr/local
DESTDIR ?=

RELEASE_DIR := build/release
TEST_DIR := build/test

.PHONY: all deps build run install uninstall test valgrind bench fuzz soak format format-check clean

all: build

deps:
	@tools/deps.sh

build: deps
	@cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release -DPELIX_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

run: build
	./$(RELEASE_DIR)/pelix-mqtt --conf $(CONF) $(ARGS)

# The Release build installed under $(PREFIX) (staged under $(DESTDIR) when given): libpelix
# (shared and static) and its headers, pelix-mqtt and its manual page, pelix.pc for pkg-config, the
# CMake package Pelix. The loader cache is refreshed when root installs into the system.
install: deps
	@cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=Release -DPELIX_TESTS=OFF \
		-DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(RELEASE_DIR)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

# Removes the files of the last `make install` (listed in $(RELEASE_DIR)/install_manifest.txt,
# under the same DESTDIR) and the folders only pelix has (include/pelix, cmake/Pelix) once empty.
MANIFEST := $(RELEASE_DIR)/install_manifest.txt
uninstall:
	@test -f $(MANIFEST) || { echo "uninstall: no $(MANIFEST): nothing installed by make install" >&2; exit 1; }
	@sed 's|^|$(DESTDIR)|' $(MANIFEST) | xargs -r -d '\n' rm -fv
	@sed -n 's|^\(.*/include/pelix\)/[^/]*$$|$(DESTDIR)\1|p; s|^\(.*/cmake/Pelix\)/[^/]*$$|$(DESTDIR)\1|p' \
		$(MANIFEST) | sort -u | while read -r dir; do [ ! -d "$$dir" ] || rmdir --ignore-fail-on-non-empty "$$dir"; done
	@rm -f $(MANIFEST)

# The Release build first (what `make run` starts: -O2 finds warnings a Debug build does not),
# then ASan+UBSan on every suite, plus a TSan build of the threaded suites, all in one CTest run.
test: build
	@cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DPELIX_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS)
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS)

# Every suite under valgrind's memcheck (a build without sanitizers; the soak for 30 s).
valgrind: deps
	@cmake -S . -B build/valgrind -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build/valgrind -j $(JOBS)
	@set -e; for t in build/valgrind/tests/test_*; do \
		echo "== valgrind $$t"; \
		PELIX_SOAK_SECONDS=30 PELIX_SOAK_NO_RSS=1 PELIX_RACE_ROUNDS=10 valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect $$t >/dev/null; \
	done; echo "valgrind: no error, no leak"

# Benchmarks (Release, -O2; see bench/README.md): goals G1-G9 as ratios against baselines run
# alternately in the same run, on private brokers; QUICK=1 for a smoke run. Writes bench/results.
bench: deps
	@cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DPELIX_TESTS=OFF -DPELIX_BENCH=ON >/dev/null
	@cmake --build build/bench -j $(JOBS)
	@BENCH_QUICK=$(QUICK) bench/run.sh build/bench/bench

# Fuzzing with libFuzzer (clang; see fuzz/README.md): every target of fuzz/ for FUZZ_SECONDS
# each, from its committed corpus. `make test` runs the same targets briefly without libFuzzer.
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
fuzz: deps
	@tools/deps.sh fuzz
	@CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Release -DPELIX_TESTS=OFF -DPELIX_FUZZ=ON \
		-DCMAKE_C_FLAGS="$(FUZZ_FLAGS)" >/dev/null
	@cmake --build build/fuzz -j $(JOBS)
	@fuzz/run.sh build/fuzz $(FUZZ_SECONDS)

# Soak (tests/integration/test_mqtt_soak.c): SOAK_MINUTES of load over three brokers, one
# restarting, listeners coming and going; under ASan, then without sanitizers (tight RSS bound,
# heap in use counted exactly), then, with VALGRIND=1, under valgrind's memcheck. `make test`
# runs 2 minutes of it under ASan.
SOAK_SECONDS = $$(( $(SOAK_MINUTES) * 60 ))
soak: deps
	@cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DPELIX_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS) --target test_mqtt_soak
	@cmake -S . -B build/valgrind -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build/valgrind -j $(JOBS) --target test_mqtt_soak
	@echo "== soak under ASan: $(SOAK_MINUTES) min"
	@ASAN_OPTIONS=quarantine_size_mb=4 PELIX_SOAK_SECONDS=$(SOAK_SECONDS) $(TEST_DIR)/tests/test_mqtt_soak
	@echo "== soak without sanitizers: $(SOAK_MINUTES) min"
	@PELIX_SOAK_SECONDS=$(SOAK_SECONDS) build/valgrind/tests/test_mqtt_soak
	@if [ -n "$(VALGRIND)" ]; then echo "== soak under valgrind: $(SOAK_MINUTES) min"; \
		PELIX_SOAK_SECONDS=$(SOAK_SECONDS) PELIX_SOAK_NO_RSS=1 valgrind -q --error-exitcode=1 \
			--leak-check=full --errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect build/valgrind/tests/test_mqtt_soak; fi

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

clean:
	rm -rf build
