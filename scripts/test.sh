#!/usr/bin/env bash
# The one test command: formatting, lints, the SAM template checks, every unit, property,
# contract and API test on both backends, and a sign-in in a real browser. Installs what it
# needs (cargo-nextest, LocalStack and the template tools in project-owned virtualenvs,
# Debian's chromium, chromium-driver and clamav-daemon), starts LocalStack and stops it at the end. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} SAM_CLI_TELEMETRY=0

step() { printf '\n==> %s (%s s)\n' "$*" "$SECONDS"; }

step "toolchain"
cargo --version
if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

step "LocalStack and template tools (install if needed, start)"
infra/localstack/install.sh
infra/localstack/start.sh
trap 'infra/localstack/stop.sh' EXIT

step "ClamAV's clamd on loopback with the project's test signatures (installs clamav-daemon if needed)"
infra/clamav/start.sh
trap 'infra/localstack/stop.sh; infra/clamav/stop.sh' EXIT

step "Chromium and ChromeDriver (Debian packages, for the browser sign-in test)"
if ! command -v chromedriver >/dev/null 2>&1 || ! [ -x /usr/bin/chromium ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium chromium-driver \
    || { $sudo apt-get update -q && $sudo apt-get install -y -q chromium chromium-driver; }
fi
chromedriver --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "SAM template: sam validate --lint, cfn-lint"
.localstack/tools/bin/sam validate --lint --template-file infra/template.yaml
.localstack/tools/bin/cfn-lint infra/template.yaml

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests: unit, property, contract (SQLite, DynamoDB), API (both backends), template on LocalStack"
cargo build --workspace --locked --bins
cargo nextest run --workspace --locked --no-fail-fast

step "all tests passed"
