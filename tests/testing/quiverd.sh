# Sourced by the shell tests: start_quiverd QUIVERD DIR [quiverd args...] starts quiverd on free
# ports with its data root in DIR/data and sets QUIVERD_PID, HTTP_PORT and BIN_PORT (exits with
# the log if it exits instead of coming up). The caller's EXIT trap should kill $QUIVERD_PID.
# It waits for the "serving" line however long start-up takes on a busy machine.
start_quiverd() {
  local bin=$1 dir=$2
  shift 2
  # A log left by an earlier start in this directory would say "serving" before this one does.
  : > "$dir/quiverd.log"
  "$bin" --data "$dir/data" --http-port 0 --binary-port 0 "$@" > "$dir/quiverd.log" 2>&1 &
  QUIVERD_PID=$!
  wait_for_serving "$QUIVERD_PID" "$dir/quiverd.log" || { cat "$dir/quiverd.log"; exit 1; }
  HTTP_PORT=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$dir/quiverd.log")
  BIN_PORT=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$dir/quiverd.log")
  [ -n "$HTTP_PORT" ] && [ -n "$BIN_PORT" ] || { cat "$dir/quiverd.log"; exit 1; }
}

# wait_for_serving PID LOG: returns 0 once LOG holds quiverd's "serving" line, 1 if the process
# exits first (a hung start-up is left to the test's timeout).
wait_for_serving() {
  until grep -q "serving" "$2" 2>/dev/null; do
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
}
