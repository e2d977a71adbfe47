#!/bin/sh
# Build the Node.js addon against a CMake build directory and run its tests.
#   bindings/node/test.sh [BUILD_DIR]
# BUILD_DIR holds libruvector.a (default: $RUVECTOR_BUILD, else the
# repository's build/); it is built with cmake when the library is missing.
# The exit code is the test result.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-${RUVECTOR_BUILD:-$here/../../build}}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
if ! command -v node >/dev/null 2>&1; then
	echo "bindings/node/test.sh: node is not installed" >&2
	exit 1
fi
RUVECTOR_BUILD=$build node "$here/scripts/build.js"
cd "$here"
# Explicit files rather than the directory: newer Node versions read the
# arguments of --test as glob patterns.
exec node --test test/*.test.js
