#!/usr/bin/env bash
# Builds the Lambda packages as `sam deploy` ships them: `sam build` of infra/template.yaml
# (BuildMethod rust-cargolambda: cargo-lambda cross-compiles each function for arm64 with
# zig, release profile, no Docker), then prints each function's bootstrap and zip sizes.
# Installs what it needs (the project's tools venv with sam, cargo-lambda and ziglang).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
infra/localstack/install.sh >&2
# cargo-lambda finds zig as `python3 -m ziglang`: the tools venv's python first on PATH.
export PATH="$PWD/.localstack/tools/bin:$PATH"
build_dir=.aws-sam/build
sam build --template-file infra/template.yaml --build-dir "$build_dir" >&2
printf '%-32s %12s %12s\n' function bootstrap zip
for dir in "$build_dir"/*/; do
  boot="$dir/bootstrap"
  [ -f "$boot" ] || continue
  zip_size=$(python3 - "$boot" <<'PY'
import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write(sys.argv[1], "bootstrap")
print(len(buf.getvalue()))
PY
)
  printf '%-32s %12s %12s\n' "$(basename "$dir")" "$(stat -c %s "$boot")" "$zip_size"
done
