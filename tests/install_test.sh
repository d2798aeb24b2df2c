#!/usr/bin/env bash
# Installs a build into a temporary prefix and builds examples/quickstart.c against the installed copy,
# as an application would: with pkg-config and cc (shared, and static with Libs.private), and with a
# CMake project using find_package(patternkv CONFIG) (patternkv::patternkv and patternkv_static).
# Each program is run. Usage: install_test.sh BUILD_DIR SOURCE_DIR [CC]
set -euo pipefail
build=$1 src=$2 cc=${3:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
pc=$(find "$prefix" -name patternkv.pc)
[ -n "$pc" ] || { echo "no patternkv.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir patternkv)
echo "installed: $(cd "$prefix" && find . -type f | sort | tr '\n' ' ')"
[ "$(pkg-config --modversion patternkv)" = "$("$prefix/bin/pkv" version | sed -n 's/^pkv \([0-9.]*\).*/\1/p')" ] ||
  { echo "pkg-config version and pkv version differ"; exit 1; }
pkg-config --static --libs patternkv | grep -q -- "-lm -lpthread -ldl" || { echo "Libs.private lacks -lm -lpthread -ldl"; exit 1; }

cd "$tmp"
# pkg-config + cc, shared
"$cc" -std=c11 -Wall -Wextra -Werror "$src/examples/quickstart.c" $(pkg-config --cflags --libs patternkv) -lm \
  -Wl,-rpath,"$libdir" -o quickstart_shared
./quickstart_shared "$tmp/a.pkv"
# pkg-config + cc, static: the archive and the private libraries
"$cc" -std=c11 -Wall -Wextra -Werror "$src/examples/quickstart.c" $(pkg-config --cflags patternkv) \
  "$libdir/libpatternkv.a" $(pkg-config --static --libs-only-l patternkv | sed 's/-lpatternkv//') -o quickstart_static
./quickstart_static "$tmp/b.pkv"
! ldd ./quickstart_static | grep -q libpatternkv || { echo "the static build links libpatternkv.so"; exit 1; }
# CMake find_package, shared and static
for target in patternkv::patternkv patternkv::patternkv_static; do
  dir=$tmp/cmake_${target##*::}
  cmake -S "$src/examples" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" -DPATTERNKV_TARGET="$target" \
    -DCMAKE_C_COMPILER="$cc" >"$dir.log"
  cmake --build "$dir" >>"$dir.log"
  "$dir/quickstart" "$dir.pkv"
done
echo "install test: pkg-config (shared, static) and find_package (shared, static) builds all ran"
