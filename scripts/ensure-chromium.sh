#!/usr/bin/env bash
# Makes sure a Chromium is installed: the status page's test (uitest/)
# drives one, headless. On Debian as root it installs the package
# chromium; elsewhere it says what is missing and fails.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
	if command -v "$name" >/dev/null 2>&1; then
		exit 0
	fi
done
echo "chromium not found: installing the Debian package chromium" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq chromium </dev/null >/dev/null
	command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "chromium is missing and could not be installed here." >&2
echo "Install it (Debian: sudo apt-get install -y chromium; or set CHROMIUM to a Chrome binary) and run make test again." >&2
exit 1
