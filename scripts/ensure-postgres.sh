#!/usr/bin/env bash
# pretest: the cluster tests start a throwaway PostgreSQL server. Installs Debian's postgresql when its
# server binaries (initdb, pg_ctl) are missing and this machine can (root with apt-get); otherwise stops
# with one line saying how.
set -euo pipefail
found() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if found; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing postgresql (apt-get) for the cluster tests" >&2
  (apt-get install -y postgresql >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y postgresql >/dev/null 2>&1)) && found && exit 0
fi
echo "pretest: PostgreSQL server binaries (initdb, pg_ctl) are missing: install them (Debian: sudo apt-get install -y postgresql), then run npm test again" >&2
exit 1
