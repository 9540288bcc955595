#!/usr/bin/env bash
# Build the virtualenv holding a real OpenStack Keystone for tests/identity (idempotent).
#
# Keystone is installed from PyPI into its own venv (.venv-keystone next to .venv): its
# dependency pins must not move the ones Annals is tested with. The integration tests run
# `keystone-manage` and gunicorn from this venv. Re-running is a no-op once the stamp exists.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
VENV=${ANNALS_KEYSTONE_VENV:-.venv-keystone}
KEYSTONE_SPEC='keystone>=30,<31'
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEYSTONE_SPEC" ] \
        && "$VENV/bin/python" -c 'import keystone, gunicorn' 2>/dev/null; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "$KEYSTONE_SPEC" 'gunicorn>=22'
"$VENV/bin/keystone-manage" --version >/dev/null
echo "$KEYSTONE_SPEC" > "$STAMP"
