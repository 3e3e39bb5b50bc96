#!/usr/bin/env bash
# Makes sure redis-server is installed: the tests start real redis-server
# processes on free loopback ports. On Debian as root it installs the
# package; elsewhere it says what is missing and fails.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi
echo "redis-server not found: installing the Debian package redis-server" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq redis-server </dev/null >/dev/null
	# The package may start a system service on :6379; the tests do not use it.
	command -v redis-server >/dev/null 2>&1 && exit 0
fi
echo "redis-server is missing and could not be installed here." >&2
echo "Install it (Debian/Ubuntu: sudo apt-get install -y redis-server) and run make test again." >&2
exit 1
