#!/usr/bin/env bash
# Runs template_resources.py in the tools venv (installing it if needed).
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ ! -x "$home/tools/bin/python" ]; then
  "$here/install.sh" >&2
fi
exec "$home/tools/bin/python" "$here/template_resources.py" "$@"
