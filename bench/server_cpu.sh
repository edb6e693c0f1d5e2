#!/usr/bin/env bash
# What the server spends per request beyond the search (issue 21, part 5): quiverd serves a
# collection of 100 items of dim 8 (flat index: a search of them costs well under a microsecond,
# so what is measured is the protocol, the dispatch and the answer), driven for SECONDS per mode
# by a client on the same machine:
#   binary        bench/client_bench, one search per call (one connection)
#   binary-unix   the same over the Unix-domain socket (quiverd --binary-socket)
#   binary-batch  bench/client_bench, 100 searches pipelined per call
#   rest          wrk, one connection, keep-alive, the same search as JSON
# For each mode: quiverd's CPU time (utime + stime of /proc/PID/stat) over the run divided by
# the requests answered. With --access-log false (the default here) and once with it on.
# Usage: bench/server_cpu.sh BUILD_DIR [SECONDS=10] [REPORT.md]
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SECONDS_RUN=${2:-10}
REPORT=${3:-}
WORK=$(mktemp -d /tmp/quiver_cpu.XXXXXX)
PID=""
trap 'kill $PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
TCK=$(getconf CLK_TCK)

/usr/bin/python3 - "$WORK" "$(dirname "$0")/data" <<'PY'
import json, sys
import numpy as np
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from vecs import write_vecs  # bench/data/vecs.py
rng = np.random.default_rng(5)
items = rng.standard_normal((100, 8)).astype(np.float32)
json.dump({"items": [{"id": i + 1, "vector": v.tolist()} for i, v in enumerate(items)]},
          open(out + "/items.json", "w"))
q = rng.standard_normal((100, 8)).astype(np.float32)
write_vecs(out + "/queries.fvecs", q)
body = json.dumps({"vector": q[0].tolist(), "k": 10})
open(out + "/search.lua", "w").write(
    'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    f"wrk.body = '{body}'\n")
PY

cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

run_server() {  # run_server [quiverd flags...]
  rm -rf "$WORK/data"
  "$BUILD/tools/quiverd" --data "$WORK/data" --http-port 0 --binary-port 0 \
    --binary-socket "$WORK/quiverd.sock" --snapshot-interval-s 0 "$@" > "$WORK/quiverd.log" 2>&1 &
  PID=$!
  until grep -q "serving" "$WORK/quiverd.log"; do
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/quiverd.log"; exit 1; }
    sleep 0.05
  done
  HTTP=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$WORK/quiverd.log")
  BIN=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$WORK/quiverd.log")
  "$BUILD/tools/quiver" call --addr "127.0.0.1:$BIN" POST /v1/collections \
    '{"name":"c","dim":8,"index":{"type":"flat"}}' > /dev/null
  "$BUILD/tools/quiver" call --addr "127.0.0.1:$BIN" POST /v1/collections/c/items \
    @"$WORK/items.json" > /dev/null
}

measure() {  # measure MODE: prints "MODE requests cpu_us_per_request"
  local before after n
  before=$(cpu)
  case "$1" in
    binary|binary-batch|binary-unix)
      local mode=single
      local where=(--port "$BIN")
      [ "$1" = binary-batch ] && mode="batch"
      [ "$1" = binary-unix ] && where=(--unix "$WORK/quiverd.sock")
      n=$("$BUILD/bench/client_bench" "${where[@]}" --collection c --queries "$WORK/queries.fvecs" \
        --k 10 --batch 100 --seconds "$SECONDS_RUN" --mode "$mode" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["queries"])')
      ;;
    rest)
      n=$(wrk -t1 -c1 -d"${SECONDS_RUN}s" -s "$WORK/search.lua" \
        "http://127.0.0.1:$HTTP/v1/collections/c/search" |
        sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
      ;;
  esac
  after=$(cpu)
  echo "$1 $n $(( (after - before) * 1000000 / TCK / n ))"
}

LINES=()
for log_flag in false true; do
  run_server --access-log "$log_flag"
  for mode in binary binary-unix binary-batch rest; do
    read -r m n us <<< "$(measure "$mode")"
    LINES+=("| $m | $log_flag | $n | $us |")
    echo "access log $log_flag: $m: $n requests, $us us of server CPU per request" >&2
  done
  kill "$PID"
  wait "$PID" 2>/dev/null || true
done

{
  echo "# Server CPU per request, beyond the search"
  echo
  echo "Command: \`bench/server_cpu.sh $1 $SECONDS_RUN${REPORT:+ $REPORT}\`"
  echo
  echo "quiverd serving 100 items of dim 8 (flat: the search itself costs well under 1 us), one"
  echo "client at a time on the same 2-core machine, ${SECONDS_RUN} s per mode; quiverd's CPU"
  echo "time (user + system, /proc/PID/stat, in ticks of $((1000000 / TCK)) us) over the run divided"
  echo "by the requests answered. Targets (issue 21): binary at most 15 us, REST at most 40 us."
  echo
  echo "| mode | access log | requests | server CPU us per request |"
  echo "|---|---|---|---|"
  printf '%s\n' "${LINES[@]}"
} > "${REPORT:-/dev/stdout}"
