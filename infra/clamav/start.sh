#!/usr/bin/env bash
# Starts ClamAV's clamd on 127.0.0.1:${MOTCUA_CLAMD_PORT:-3310} with the project's own test
# signatures (infra/clamav/signatures: the EICAR test file by hash, and the EICAR string
# anywhere in a file). There is no internet for freshclam here: these are the only
# signatures it loads. Installs Debian's clamav-daemon if clamd is missing. Idempotent:
# a clamd already answering PING on the port is kept. Stop it with infra/clamav/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${MOTCUA_CLAMD_PORT:-3310}
dir="$PWD/.clamd"

ping_clamd() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'zPING\0' >&3 && head -c 4 <&3" 2>/dev/null | grep -q PONG
}

if ping_clamd; then
  echo "clamd already answering on 127.0.0.1:$port"
  exit 0
fi

clamd_bin=$(command -v clamd || true)
[ -z "$clamd_bin" ] && [ -x /usr/sbin/clamd ] && clamd_bin=/usr/sbin/clamd
if [ -z "$clamd_bin" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends clamav-daemon \
    || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends clamav-daemon; }
  # The package starts a system clamd and freshclam that would look for the internet.
  $sudo systemctl disable --now clamav-daemon clamav-freshclam >/dev/null 2>&1 || true
  clamd_bin=/usr/sbin/clamd
fi

mkdir -p "$dir/db"
rm -f "$dir/db/"*
cp infra/clamav/signatures/* "$dir/db/"
cat > "$dir/clamd.conf" <<CONF
DatabaseDirectory $dir/db
TCPSocket $port
TCPAddr 127.0.0.1
Foreground yes
LogFile $dir/clamd.log
LogTime yes
StreamMaxLength 30M
MaxFileSize 30M
MaxScanSize 100M
# What production sets too (docs/functions/uploads.md): a file clamd cannot fully look
# into, or one carrying macros, is not "clean".
AlertExceedsMax yes
AlertEncrypted yes
AlertOLE2Macros yes
AlertBrokenExecutables yes
CONF
nohup "$clamd_bin" --config-file="$dir/clamd.conf" >"$dir/stdout.log" 2>&1 &
echo $! >"$dir/clamd.pid"
for _ in $(seq 1 120); do
  if ping_clamd; then
    echo "clamd ready on 127.0.0.1:$port (pid $(cat "$dir/clamd.pid"), log $dir/clamd.log)"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/clamd.pid")" 2>/dev/null; then
    echo "clamd exited:" >&2
    cat "$dir/stdout.log" "$dir/clamd.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
echo "clamd did not answer within 60 s" >&2
exit 1
