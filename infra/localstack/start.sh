#!/usr/bin/env bash
# Starts LocalStack as a host process (no Docker) on 127.0.0.1:${MOTCUA_LOCALSTACK_PORT:-4566},
# with DynamoDB and DynamoDB Streams served by moto. Waits until it answers. Idempotent.
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$home"
# Several test processes may ask at once: one starts it, the others wait and find it up.
exec 9>"$home/start.lock"
flock 9

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "LocalStack already running (pid $(cat "$pidfile")) at $endpoint"
  exit 0
fi
if [ ! -x "$home/venv/bin/python" ]; then
  "$here/install.sh"
fi
# Amazon's DynamoDB Local is not open source: refuse to run if it ever shows up.
if find "$home" -iname 'DynamoDBLocal*.jar' -print -quit 2>/dev/null | grep -q .; then
  echo "refusing to start: a DynamoDBLocal jar is present under $home (vendor licence)" >&2
  exit 1
fi
mkdir -p "$home/fs"
export OVERRIDE_IN_DOCKER=0 \
  FILESYSTEM_ROOT="$home/fs" \
  GATEWAY_LISTEN="127.0.0.1:$port" \
  PERSISTENCE=0 \
  DISABLE_EVENTS=1 \
  LOCALSTACK_TELEMETRY=0 \
  SKIP_SSL_CERT_DOWNLOAD=1 \
  DNS_ADDRESS=0 \
  PROVIDER_OVERRIDE_DYNAMODB=moto \
  PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto \
  S3_SKIP_SIGNATURE_VALIDATION=0
start=$(date +%s%N)
# The server must not inherit the lock (fd 9), or later starts would wait forever.
nohup "$home/venv/bin/python" -m localstack.runtime.main > "$logfile" 2>&1 9>&- &
echo $! > "$pidfile"
for _ in $(seq 1 600); do
  if curl -fsS "$endpoint/_localstack/health" >/dev/null 2>&1; then
    echo "LocalStack ready at $endpoint in $(( ($(date +%s%N) - start) / 1000000 )) ms (pid $(cat "$pidfile"), log $logfile)"
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "LocalStack exited during start; last log lines:" >&2
    tail -n 40 "$logfile" >&2
    exit 1
  fi
  sleep 0.1
done
echo "LocalStack did not become ready in 60 s; last log lines:" >&2
tail -n 40 "$logfile" >&2
exit 1
