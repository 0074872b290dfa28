# Shared settings of the LocalStack scripts (sourced).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
home=${MOTCUA_LOCALSTACK_HOME:-$root/.localstack}
port=${MOTCUA_LOCALSTACK_PORT:-4566}
pidfile=$home/localstack.pid
logfile=$home/localstack.log
endpoint=http://127.0.0.1:$port
