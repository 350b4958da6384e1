#!/usr/bin/env bash
# The installation as its users get it. Installs a built tree into a temporary prefix, then:
# - checks the installed files (libraries, headers, program, manual page, pelix.pc, CMake package);
# - builds the examples against that prefix with pkg-config (examples/Makefile, shared library)
#   and with find_package(Pelix) (examples/CMakeLists.txt, shared and static library), warnings
#   as errors, and checks which libpelix they load;
# - runs them: --help, the listener started and stopped by SIGINT without a broker, and a message
#   published by the publisher and printed by the listener through a mosquitto of its own on
#   127.0.0.1;
# - checks that groff reads the manual page without a warning.
# mosquitto and groff come with tools/deps.sh; without them the check fails.
#
#     check_install.sh BUILD_DIR SOURCE_DIR [FLAGS]
#
# FLAGS are compiler and linker flags the examples need to use the built libraries (the sanitizer
# flags when the tree is built with them). Every process it starts is bounded by a timeout and
# stopped by its PID; the temporary folder is removed at the end.
set -euo pipefail

build=$1
src=$2
flags=${3:-}
cmake=${CMAKE:-cmake}
cc=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pelix-packaging.XXXXXX")
prefix=$tmp/prefix
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "packaging: FAIL: $*" >&2
    exit 1
}

step() {
    echo "== $*"
}

# Waits (up to 20 s) until file $1 contains the fixed string $2.
wait_for() {
    for _ in $(seq 200); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Starts a program in the background (stdout to $1, stderr to $2); its PID in $started.
start() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    started=$!
    pids+=("$started")
}

# True while the background process $1 runs (not yet exited: neither gone nor a zombie).
alive() {
    [ -e "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Sends signal $2 to the background process $1 and waits (up to 30 s) for its end; its exit
# status in $status (137 when it had to be killed).
stop() {
    local pid=$1 left=()
    kill "-$2" "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    status=0
    wait "$pid" || status=$?
    for p in "${pids[@]}"; do
        [ "$p" = "$pid" ] || left+=("$p")
    done
    pids=("${left[@]}")
}

# Fails unless text $1 contains the fixed string $2; $3 describes the check.
contains() {
    [[ "$1" == *"$2"* ]] || fail "$3"
}

step "install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log"
    fail "cmake --install"
}
pc=$(find "$prefix" -name pelix.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "pelix.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/bin/pelix-mqtt" "$prefix/include/pelix/mqtt.h" "$prefix/include/pelix/registry.h" \
    "$libdir/libpelix.a" "$libdir/libpelix.so" "$libdir/libpelix.so.0" \
    "$libdir/cmake/Pelix/PelixConfig.cmake" "$libdir/cmake/Pelix/PelixConfigVersion.cmake" \
    "$libdir/cmake/Pelix/PelixTargets.cmake" "$prefix/share/man/man1/pelix-mqtt.1"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done

step "the installed program"
version=$("$prefix/bin/pelix-mqtt" --version) || fail "pelix-mqtt --version"
echo "$version"

step "pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc_version=$(pkg-config --modversion pelix) || fail "pkg-config does not read pelix.pc"
[ "$version" = "pelix-mqtt $pc_version" ] || fail "pelix.pc has version $pc_version, not that of '$version'"
cflags=$(pkg-config --cflags pelix)
contains "$cflags" "-I$prefix/include" "Cflags: $cflags"
libs=$(pkg-config --libs pelix)
contains "$libs" "-L$libdir" "Libs: $libs"
static_libs=$(pkg-config --static --libs pelix)
for lib in -lpelix -lmosquitto -ljansson; do
    contains "$static_libs" "$lib" "--static --libs lacks $lib: $static_libs"
done

step "examples with pkg-config (examples/Makefile)"
cp -r "$src/examples" "$tmp/make"
make -s -C "$tmp/make" CC="$cc" CFLAGS="-O1 -g -Wall -Wextra -Werror $flags" LDFLAGS="$flags" \
    listener publisher || fail "examples/Makefile"

step "examples with find_package(Pelix) (examples/CMakeLists.txt), shared and static"
for kind in shared static; do
    static=OFF
    [ "$kind" = static ] && static=ON
    "$cmake" -S "$src/examples" -B "$tmp/cmake-$kind" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_PREFIX_PATH="$prefix" -DPELIX_EXAMPLES_STATIC=$static \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
        >"$tmp/cmake-$kind.log" || {
        cat "$tmp/cmake-$kind.log"
        fail "configuring examples/CMakeLists.txt ($kind)"
    }
    grep -qF "Pelix_DIR:PATH=$libdir/cmake/Pelix" "$tmp/cmake-$kind/CMakeCache.txt" ||
        fail "find_package(Pelix) did not take the package of $prefix"
    "$cmake" --build "$tmp/cmake-$kind" >"$tmp/build-$kind.log" || {
        cat "$tmp/build-$kind.log"
        fail "building examples/CMakeLists.txt ($kind)"
    }
done

step "the libraries the examples load"
loaded=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/make/listener")
contains "$loaded" "$libdir/libpelix.so.0" "the pkg-config build does not load $libdir/libpelix.so.0"
loaded=$(ldd "$tmp/cmake-shared/listener")
contains "$loaded" "$libdir/libpelix.so.0" "the CMake build does not load $libdir/libpelix.so.0"
loaded=$(ldd "$tmp/cmake-static/listener")
[[ "$loaded" != *libpelix* ]] || fail "the static CMake build loads libpelix: $loaded"

step "the examples run"
export LD_LIBRARY_PATH=$libdir
for exe in "$tmp"/make/listener "$tmp"/make/publisher "$tmp"/cmake-*/listener "$tmp"/cmake-*/publisher; do
    usage=$(timeout 30 "$exe" --help) || fail "$exe --help"
    [[ "$usage" == Usage:* ]] || fail "$exe --help printed: $usage"
done
# Started without any broker configured, then stopped by SIGINT: a clean exit, status 0.
start "$tmp/no-broker.out" "$tmp/no-broker.err" "$tmp/make/listener" "$tmp/no-broker"
wait_for "$tmp/no-broker.err" "listening on" || {
    cat "$tmp/no-broker.err"
    fail "the listener did not start"
}
stop "$started" INT
[ "$status" -eq 0 ] || {
    cat "$tmp/no-broker.err"
    fail "the listener stopped on SIGINT with status $status"
}
[ -d "$tmp/no-broker" ] || fail "the listener did not create its configuration folder"

step "the manual page"
man_page=$prefix/share/man/man1/pelix-mqtt.1
if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$man_page" 2>&1)
    [ -z "$warnings" ] || fail "groff warns about pelix-mqtt.1: $warnings"
else
    fail "groff is not installed (tools/deps.sh installs groff-base)"
fi

# A message from the publisher to the listener through a broker of this test, each program on a
# folder of its own (one client id per configuration).
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || fail "mosquitto is not installed (tools/deps.sh installs it)"
step "publisher to listener through mosquitto"
broker_pid=
# Ports below the ephemeral range, so that no client socket of a concurrent test takes them.
for _ in $(seq 10); do
    port=$((20000 + RANDOM % 12000))
    {
        echo "listener $port 127.0.0.1"
        echo "allow_anonymous true"
        [ "$(id -u)" -eq 0 ] && echo "user root"
    } >"$tmp/mosquitto.conf"
    start "$tmp/mosquitto.log" "$tmp/mosquitto.err" "$mosquitto" -c "$tmp/mosquitto.conf"
    broker_pid=$started
    for _ in $(seq 50); do
        grep -q " running" "$tmp/mosquitto.err" && break
        alive "$broker_pid" || break
        sleep 0.1
    done
    grep -q " running" "$tmp/mosquitto.err" && break
    stop "$broker_pid" KILL
    broker_pid=
done
[ -n "$broker_pid" ] || {
    cat "$tmp/mosquitto.err"
    fail "mosquitto did not start"
}
for side in listener publisher; do
    mkdir -p "$tmp/$side"
    cat >"$tmp/$side/mqtt.connector-$side.config.js" <<EOF
{
    "host": "127.0.0.1",
    "port": $port,
    "service.factoryPid": "mqtt.connector",
    "service.pid": "mqtt.connector-$side"
}
EOF
done
# The statically linked listener, and the publisher of the pkg-config build (shared library).
start "$tmp/listener.out" "$tmp/listener.err" "$tmp/cmake-static/listener" "$tmp/listener" \
    'pelix/packaging/#'
listener_pid=$started
wait_for "$tmp/listener.err" "listening on" || {
    cat "$tmp/listener.err"
    fail "the listener did not start"
}
# The listener connects and subscribes on its own threads: publish until it prints a message.
received=no
for i in $(seq 20); do
    timeout 30 "$tmp/make/publisher" "$tmp/publisher" pelix/packaging/test "hello $i" \
        >"$tmp/publisher.out" 2>"$tmp/publisher.err" || {
        cat "$tmp/publisher.out" "$tmp/publisher.err"
        fail "the publisher failed"
    }
    grep -qF "mqtt.connector-publisher: published" "$tmp/publisher.out" ||
        fail "the publisher printed: $(cat "$tmp/publisher.out")"
    if grep -q "^pelix/packaging/test hello [0-9]*$" "$tmp/listener.out"; then
        received=yes
        break
    fi
    sleep 0.5
done
[ "$received" = yes ] || wait_for "$tmp/listener.out" "pelix/packaging/test hello" || {
    cat "$tmp/listener.err"
    fail "the listener printed no message"
}
stop "$listener_pid" INT
[ "$status" -eq 0 ] || {
    cat "$tmp/listener.err"
    fail "the listener stopped on SIGINT with status $status"
}
echo "received: $(head -n 1 "$tmp/listener.out")"
stop "$broker_pid" TERM
echo "packaging: OK"
