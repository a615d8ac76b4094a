#!/usr/bin/env bash
# Install everything the tests need (system packages when missing, the project with its dev extras)
# and run the checks and the test suite. This is README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: a real IMAP server for the IMAP poller's tests, and systemd-analyze
# to verify the unit under deploy/.
missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}: install them (sudo apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q -p no:cacheprovider
