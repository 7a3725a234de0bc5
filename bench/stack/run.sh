#!/usr/bin/env bash
# Server-stack benchmark for polyroute's hot path.  Usage:  bash bench/stack/run.sh
#
# Starts an nginx mock upstream, then each candidate relay in turn (pinned to
# RELAY_CPU), loads it with wrk (pinned with nginx to LOAD_CPU), and prints a
# markdown table. Everything lives in one temp dir that is removed on exit;
# every process started here is stopped by its own pid / process group.
#
# Knobs (env): DUR=4 (s per measurement)  ROUNDS=2  WARM=1 (s warm-up)  CONNS=32
#              RELAY_CPU=0  LOAD_CPU=1  PY=<repo>/.venv/bin/python
#              BUDGET=170 (s)  CANDIDATES="a a2 b b2 c d d2"  BENCH_DEPS=<dir with httpx/orjson/granian, skips pip>
#              BENCH_OUT=<file to also write the report to>
# Needs: wrk, nginx, taskset (apt-get install -y wrk nginx), network access to PyPI
# for the optional deps (httpx, orjson, granian) unless BENCH_DEPS is given; they are
# installed with `pip --target` into the temp dir, never into the project venv.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
DUR=${DUR:-4}
WARM=${WARM:-1}
ROUNDS=${ROUNDS:-2}
BUDGET=${BUDGET:-170}  # s; measurements that would end later are skipped (keeps the run < 3 min)
CONNS=${CONNS:-32}
RELAY_CPU=${RELAY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CANDIDATES=${CANDIDATES:-"a a2 b b2 c d d2"}
DEPS_PINS="httpx==0.28.1 httpcore==1.0.9 orjson==3.13.0 granian==2.8.7"

for tool in wrk nginx taskset setsid; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx)" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/polyroute-stack.XXXXXX")
PIDS=()
RESULTS=$TMP/results.txt
: >"$RESULTS"

stop_group() {  # stop one process group we started (pid == pgid thanks to setsid)
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 1 30); do  # live (non-zombie) members of the session left?
    ps --sid "$pid" -o stat= 2>/dev/null | grep -qv '^Z' || break; sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_group "$p"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

START=$(date +%s)
echo "# bench/stack  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cpus  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" >&2
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)  DUR=${DUR}s x ROUNDS=$ROUNDS WARM=${WARM}s CONNS=$CONNS relay@cpu$RELAY_CPU wrk+nginx@cpu$LOAD_CPU" >&2

# ---- fixtures + optional deps
"$PY" "$HERE/fixtures.py" "$TMP/nginx/body"
chmod -R a+rX "$TMP"  # as root, nginx workers run as nobody and must read the bodies
DEPS=${BENCH_DEPS:-$TMP/deps}
if [[ -z "${BENCH_DEPS:-}" ]]; then
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: --target "$DEPS" $DEPS_PINS \
    >"$TMP/pip.log" 2>&1 || echo "# pip install of optional deps failed; httpx/granian/orjson candidates skipped" >&2
fi
export PYTHONPATH="$HERE:$DEPS"
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the tree
have() { "$PY" -c "import $1" 2>/dev/null; }

# ---- (e) JSON micro-benchmark (pinned, before any load runs)
echo "# json micro-benchmark" >&2
(cd "$HERE" && timeout 60 taskset -c "$RELAY_CPU" "$PY" json_bench.py) >>"$RESULTS"

# ---- nginx mock upstream
NPORT=$(free_port)
mkdir -p "$TMP/nginx/tmp" "$TMP/nginx/logs"
sed "s/@PORT@/$NPORT/" "$HERE/nginx.conf" >"$TMP/nginx/nginx.conf"
setsid taskset -c "$LOAD_CPU" nginx -p "$TMP/nginx" -c nginx.conf >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
UP=http://127.0.0.1:$NPORT
"$PY" "$HERE/check.py" "$UP" "$TMP/nginx/body" nginx 10 >&2 || { tail -5 "$TMP/nginx.log" >&2; exit 1; }

# wrk script: POST a fixed JSON body, print one JSON result line at the end.
cat >"$TMP/post.lua" <<'LUA'
-- wrk script: POST a fixed JSON body, print one JSON result line at the end.
-- env: BODY_FILE (request body), LABEL (name for the result line)
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@@RESULT {"label":"%s","requests":%d,"duration_us":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    os.getenv("LABEL") or "?", summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

wrk_run() {  # wrk_run LABEL URL BODYFILE SECONDS  -> @@RESULT line on stdout
  BODY_FILE=$3 LABEL=$1 timeout $(($4 + 10)) taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNS" -d"$4s" --timeout 5s -s "$TMP/post.lua" "$2" | grep '^@@RESULT' || true
}

# ---- start every candidate relay (all pinned to RELAY_CPU; idle ones cost nothing)
declare -A URL
URL[ceiling]="$UP/v1/chat/completions $UP/v1/sse/chat/completions"
LIVE=(ceiling)
for cand in $CANDIDATES; do
  framework=starlette client=aiohttp server=uvicorn
  case $cand in
    a) ;;
    a2) framework=starlette-lean ;;
    b) client=httpx ;;
    b2) client=httpx2 ;;
    c) framework=raw ;;
    d) server=granian ;;
    d2) server=granian framework=raw ;;
    *) echo "unknown candidate $cand" >&2; continue ;;
  esac
  if { [[ $client != aiohttp ]] && ! have "$client"; } || { [[ $server == granian ]] && ! have granian; }; then
    echo "@@CHECK $cand skipped (not installed)" >>"$RESULTS"; continue
  fi
  RPORT=$(free_port)
  if [[ $server == uvicorn ]]; then
    cmd=("$PY" -m uvicorn relay:app --host 127.0.0.1 --port "$RPORT" --loop uvloop --http httptools
         --no-access-log --log-level warning --workers 1)
  else
    cmd=("$PY" -m granian relay:app --interface asgi --host 127.0.0.1 --port "$RPORT" --http 1 --no-ws
         --loop uvloop --workers 1 --runtime-threads 1 --no-access-log --log-level warning)
  fi
  echo "# start $cand: $framework + $server + $client" >&2
  (cd "$HERE" && RELAY_FRAMEWORK=$framework RELAY_CLIENT=$client RELAY_JSON=msgspec UPSTREAM=$UP \
     exec setsid taskset -c "$RELAY_CPU" "${cmd[@]}") >"$TMP/$cand.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! msg=$("$PY" "$HERE/check.py" "http://127.0.0.1:$RPORT" "$TMP/nginx/body" relay 15); then
    echo "@@CHECK $cand FAILED: $msg" >>"$RESULTS"; tail -5 "$TMP/$cand.log" >&2; stop_group "$pid"; continue
  fi
  echo "@@CHECK $cand $msg" >>"$RESULTS"
  URL[$cand]="http://127.0.0.1:$RPORT/api/v1/chat/completions http://127.0.0.1:$RPORT/api/v1/chat/completions"
  LIVE+=("$cand")
done

# ---- load: warm-up once, then ROUNDS interleaved rounds (order reversed every other
# round) so drift from other work on the machine hits every candidate alike.
for cand in "${LIVE[@]:1}"; do
  read -r u_json u_sse <<<"${URL[$cand]}"
  wrk_run warm "$u_json" "$TMP/nginx/body/request.json" "$WARM" >/dev/null
  wrk_run warm "$u_sse" "$TMP/nginx/body/request_stream.json" "$WARM" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
  order=("${LIVE[@]}")
  if ((round % 2 == 0)); then
    order=(); for ((i = ${#LIVE[@]} - 1; i >= 0; i--)); do order+=("${LIVE[i]}"); done
  fi
  for cand in "${order[@]}"; do
    [[ $cand == ceiling && $round -gt 1 ]] && continue  # the ceiling is a reference, measure it once
    read -r u_json u_sse <<<"${URL[$cand]}"
    for mode in json sse; do
      if (($(date +%s) - START + DUR + 2 > BUDGET)); then
        echo "#   time budget ${BUDGET}s reached: skipping round $round $cand:$mode" >&2; continue
      fi
      if [[ $mode == json ]]; then u=$u_json b=$TMP/nginx/body/request.json; else u=$u_sse b=$TMP/nginx/body/request_stream.json; fi
      line=$(wrk_run "$cand:$mode:$round" "$u" "$b" "$DUR")
      echo "$line" >>"$RESULTS"
      echo "#   round $round $cand:$mode $(grep -o '"rps":[0-9.]*' <<<"$line" || echo FAILED)" >&2
    done
  done
done

echo "# done in $(( $(date +%s) - START ))s" >&2
echo
"$PY" "$HERE/report.py" "$RESULTS" | tee ${BENCH_OUT:+"$BENCH_OUT"}
