# Sourced by the shell tests: start_quiverd QUIVERD DIR [quiverd args...] starts quiverd on free
# ports with its data root in DIR/data and sets QUIVERD_PID, HTTP_PORT and BIN_PORT (exits with
# the log if it does not come up). The caller's EXIT trap should kill $QUIVERD_PID.
start_quiverd() {
  local bin=$1 dir=$2
  shift 2
  "$bin" --data "$dir/data" --http-port 0 --binary-port 0 "$@" > "$dir/quiverd.log" 2>&1 &
  QUIVERD_PID=$!
  for _ in $(seq 100); do
    grep -q "serving" "$dir/quiverd.log" && break
    sleep 0.1
  done
  HTTP_PORT=$(sed -n 's/.*REST http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$dir/quiverd.log")
  BIN_PORT=$(sed -n 's/.*binary [0-9.]*:\([0-9]*\).*/\1/p' "$dir/quiverd.log")
  [ -n "$HTTP_PORT" ] && [ -n "$BIN_PORT" ] || { cat "$dir/quiverd.log"; exit 1; }
}
