#!/usr/bin/env bash
# pretest: end-to-end tests talk to fiberd with clients no one here wrote. For each `package:check` given
# (check: a shell command that succeeds when the package is there), installs the Debian package when the
# check fails and this machine can (root with apt-get); otherwise stops with one line saying how.
set -euo pipefail
missing=()
for pair in "$@"; do
  package="${pair%%:*}"
  check="${pair#*:}"
  bash -c "$check" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing ${missing[*]} (apt-get) for the end-to-end tests" >&2
  (apt-get install -y "${missing[@]}" >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y "${missing[@]}" >/dev/null 2>&1)) && exit 0
fi
echo "pretest: missing ${missing[*]}: install (Debian: sudo apt-get install -y ${missing[*]}), then run npm test again" >&2
exit 1
