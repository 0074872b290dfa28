#!/usr/bin/env bash
# Stops the LocalStack started by start.sh (by its PID file).
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ ! -f "$pidfile" ]; then
  echo "LocalStack not running (no $pidfile)"
  exit 0
fi
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
echo "LocalStack stopped"
