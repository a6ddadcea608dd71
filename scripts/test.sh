#!/usr/bin/env bash
# The README's test command: set up, check the real services, lint, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-env.sh
python scripts/check_services.py
if ! command -v chromium >/dev/null; then
  echo "Installing Debian's chromium for the browser tests (no browser is downloaded by Playwright)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
ruff check .
python manage.py makemigrations --check --dry-run -v0 || { echo "Missing migrations" >&2; exit 1; }
python -m pytest "$@"
