#!/usr/bin/env bash
# pretest: the browser end-to-end test needs Chromium. Installs Debian's package when it is missing and
# this machine can (root with apt-get); otherwise stops with one line saying how.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing chromium (apt-get) for the browser end-to-end test" >&2
  (apt-get install -y chromium >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1)) && exit 0
fi
echo "pretest: Chromium is missing: install it (Debian: sudo apt-get install -y chromium), then run npm test again" >&2
exit 1
