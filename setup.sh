#!/usr/bin/env bash
# Set up TTService on a fresh Debian machine (Python 3.11), then run it or test it.
#
#   ./setup.sh            install, then run the service in the foreground (Ctrl-C stops it)
#   ./setup.sh --restart  install, stop the running service, start it again in the background
#   ./setup.sh --stop     stop the background service
#   ./setup.sh --test     install (with test tools and Debian packages), then run every test
#   ./setup.sh --bench    install (as for --test), then run the benchmarks (bench/run.py)
#   ./setup.sh --install  install only
#
# Environment: TTSERVICE_* settings (see `ttservice --help`), TTSERVICE_HOST / TTSERVICE_PORT.
set -euo pipefail
cd "$(dirname "$0")"

MODE=${1:-run}
VENV=.venv
HOST=${TTSERVICE_HOST:-127.0.0.1}
PORT=${TTSERVICE_PORT:-8501}
DATA=${TTSERVICE_DATA_DIR:-./data}
PIDFILE="$DATA/service.pid"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  say "Installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "$@"
}

python_bin() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  apt_install python3 python3-venv >&2
  echo python3
}

ensure_venv() {
  local py
  py=$(python_bin)
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating the virtual environment in $VENV"
    "$py" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; "$py" -m venv "$VENV"; }
  fi
  local extras=$1 stamp
  stamp="$VENV/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-$extras"
  if [ ! -f "$stamp" ]; then
    say "Installing Python packages ($extras)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    if [ "$extras" = test ]; then
      "$VENV/bin/python" -m pip install -q -e ".[test]"
    else
      "$VENV/bin/python" -m pip install -q -e .
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
  # An editable install is not byte-compiled, and where PYTHONDONTWRITEBYTECODE is set
  # Python would compile our modules at every start: ~50 ms for each CLI and worker.
  "$VENV/bin/python" -m compileall -q -j 0 ttservice >/dev/null
}

ensure_test_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

stop_service() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid=$(cat "$PIDFILE")
    say "Stopping TTService (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$PIDFILE"
}

case "$MODE" in
  --install)
    ensure_venv app ;;
  --test)
    ensure_test_packages
    ensure_venv test
    say "Lint"
    "$VENV/bin/ruff" check ttservice tests bench
    "$VENV/bin/ruff" format --check ttservice tests bench
    say "Tests"
    exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider ;;
  --bench)
    ensure_test_packages
    ensure_venv test
    say "Benchmarks (a few minutes; results in bench/results.json)"
    exec "$VENV/bin/python" bench/run.py "${@:2}" ;;
  --stop)
    stop_service ;;
  --restart)
    ensure_venv app
    stop_service
    mkdir -p "$DATA"
    nohup "$VENV/bin/ttservice" serve --host "$HOST" --port "$PORT" >>"$DATA/service.log" 2>&1 &
    echo $! >"$PIDFILE"
    say "TTService started in the background (pid $!): http://$HOST:$PORT  (log: $DATA/service.log)" ;;
  run|--run)
    ensure_venv app
    stop_service
    exec "$VENV/bin/ttservice" serve --host "$HOST" --port "$PORT" ;;
  *)
    echo "usage: ./setup.sh [--test|--bench|--restart|--stop|--install]" >&2; exit 2 ;;
esac
