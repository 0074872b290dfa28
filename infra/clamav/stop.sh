#!/usr/bin/env bash
# Stops the clamd that infra/clamav/start.sh started.
set -uo pipefail
cd "$(dirname "$0")/../.."
pid_file=.clamd/clamd.pid
if [ -f "$pid_file" ]; then
  kill "$(cat "$pid_file")" 2>/dev/null || true
  rm -f "$pid_file"
fi
