#!/usr/bin/env bash
# Installs LocalStack (host process, no Docker) and the template tools (sam, cfn-lint) into
# project-owned virtualenvs under .localstack/. Idempotent: does nothing when the locks and
# the plugin are unchanged since the last install. `--relock` re-resolves the locks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
home=${MOTCUA_LOCALSTACK_HOME:-$root/.localstack}
python=${MOTCUA_LOCALSTACK_PYTHON:-python3}
mkdir -p "$home"

pip_quiet() { "$@" --disable-pip-version-check -q; }

install_venv() { # name, lock file
  local venv=$home/$1 lock=$2
  local want
  want=$(sha256sum < "$lock" | cut -d' ' -f1)
  if [ -f "$venv/.motcua-stamp" ] && [ "$(cat "$venv/.motcua-stamp")" = "$want" ]; then
    echo "$1: up to date"
    return
  fi
  echo "$1: installing from $(basename "$lock")"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  pip_quiet "$venv/bin/pip" install -r "$lock"
  echo "$want" > "$venv/.motcua-stamp"
}

install_plugin() { # into the LocalStack venv, again whenever its sources change
  local venv=$home/venv want
  want=$(cat "$here/motcua_localstack_plugin/pyproject.toml" "$here"/motcua_localstack_plugin/motcua_localstack/*.py | sha256sum | cut -d' ' -f1)
  if [ -f "$venv/.motcua-plugin-stamp" ] && [ "$(cat "$venv/.motcua-plugin-stamp")" = "$want" ]; then
    echo "plugin: up to date"
    return
  fi
  echo "plugin: installing"
  # Built from a copy: setuptools leaves build/ and *.egg-info in the source folder.
  rm -rf "$home/plugin-src"
  mkdir -p "$home/plugin-src"
  cp -r "$here/motcua_localstack_plugin/pyproject.toml" "$here/motcua_localstack_plugin/motcua_localstack" "$home/plugin-src/"
  pip_quiet "$venv/bin/pip" install --no-deps --force-reinstall "$home/plugin-src"
  echo "$want" > "$venv/.motcua-plugin-stamp"
}

relock() { # name, requirements.in, lock
  local tmp=$home/relock-$1
  rm -rf "$tmp"
  "$python" -m venv "$tmp"
  pip_quiet "$tmp/bin/pip" install -r "$2"
  { echo "# Full lock of the $1 venv ($("$python" --version)), from $(basename "$2")."
    echo "# Regenerate with infra/localstack/install.sh --relock."
    "$tmp/bin/pip" freeze --disable-pip-version-check; } > "$3"
  rm -rf "$tmp"
}

if [ "${1:-}" = "--relock" ]; then
  relock venv "$here/requirements.in" "$here/requirements.lock"
  relock tools "$here/tools-requirements.in" "$here/tools-requirements.lock"
fi

start=$(date +%s)
install_venv venv "$here/requirements.lock"
install_plugin
install_venv tools "$here/tools-requirements.lock"
echo "installed in $(( $(date +%s) - start )) s under $home"
