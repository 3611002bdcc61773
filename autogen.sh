#!/bin/sh
# autogen.sh: regenerate configure and Makefile.in from configure.ac and
# Makefile.am (needs autoconf, automake and pkg-config's pkg.m4).
set -e
cd "$(dirname "$0")"
autoreconf -fi
echo "now run ./configure (or mkdir build && cd build && ../configure) and make"
