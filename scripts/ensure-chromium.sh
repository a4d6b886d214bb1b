#!/usr/bin/env bash
# pretest: the browser end-to-end tests need Chromium (see ensure-packages.sh).
exec bash "$(dirname "$0")/ensure-packages.sh" "chromium:command -v chromium || command -v chromium-browser"
