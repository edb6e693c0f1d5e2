#!/usr/bin/env bash
# `quiver call` against a live quiverd: REST-style requests (literal, @file, stdin) go over the
# binary protocol and print the REST front end's JSON; errors exit 1 with the error JSON.
# Usage: call_cli_test.sh QUIVER QUIVERD SOURCE_DIR
set -euo pipefail
QUIVER=$1 QUIVERD=$2 SRC=$3
TMP=$(mktemp -d)
trap 'kill $QUIVERD_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
. "$SRC/tests/testing/quiverd.sh"
expect() {  # expect PATTERN OUTPUT
  echo "$2" | grep -q -- "$1" || { echo "expected /$1/ in: $2"; exit 1; }
}
# A config file's unknown or misspelt key, and an unknown flag, stop start-up naming it.
printf 'read_write_key = "s3cret"\n' > "$TMP/typo.toml"
if out=$("$QUIVERD" --data "$TMP/typo" --config "$TMP/typo.toml" 2>&1); then echo "a misspelt config key started"; exit 1; fi
expect 'read_write_key' "$out"
printf 'http_port = 1\n' > "$TMP/typo.ini"
if out=$("$QUIVERD" --data "$TMP/typo" --config "$TMP/typo.ini" 2>&1); then echo "a misspelt config key started"; exit 1; fi
expect 'http_port' "$out"
if out=$("$QUIVERD" --data "$TMP/typo" --http_port 1 2>&1); then echo "an unknown flag started"; exit 1; fi
expect 'http_port' "$out"
# A well-spelt config file is read: the Unix socket used below comes from it.
printf 'binary-socket = "%s"\n' "$TMP/q.sock" > "$TMP/ok.toml"
start_quiverd "$QUIVERD" "$TMP" --config "$TMP/ok.toml"
call() { "$QUIVER" call --addr "127.0.0.1:$BIN_PORT" "$@"; }
expect '"name":"m"' "$(call POST /v1/collections '{"name":"m","dim":2,"index":{"type":"flat"}}')"
echo '{"items":[{"id":1,"vector":[1,0],"timestamp":100},{"id":2,"vector":[0,1],"timestamp":200}]}' > "$TMP/items.json"
expect '"changed":2' "$(call POST /v1/collections/m/items @"$TMP/items.json")"
expect '"hits":\[{"id":2' "$(echo '{"vector":[0,1],"k":1}' | call POST /v1/collections/m/search -)"
expect '"hits":\[{"id":2,"score":-2}\]}' "$(call POST /v1/collections/m/search '{"vector":[1,0],"k":2,"fresh":{"pool":50,"now":240}}')"
expect '"id":1' "$("$QUIVER" call --socket "$TMP/q.sock" GET /v1/collections/m/items/1)"
# Collection names made only of dots (unreachable through URLs) are refused.
for name in . .. ...; do
  if out=$(call POST /v1/collections "{\"name\":\"$name\",\"dim\":2}" 2>&1); then echo "collection '$name' created"; exit 1; fi
  expect "INVALID_ARGUMENT.*may not start with" "$out"
done
# Errors: the server's (exit 1, error JSON on stderr) and the tool's own.
if out=$(call POST /v1/collections/nope/search '{"vector":[0,1]}' 2>&1); then echo "unknown collection succeeded"; exit 1; fi
expect '"code":"NOT_FOUND"' "$out"
if out=$(call POST /v1/collections/m/search '{"vector":[0,1],"k":"x"}' 2>&1); then echo "bad body succeeded"; exit 1; fi
expect 'INVALID_ARGUMENT' "$out"
if out=$("$QUIVER" call --addr "127.0.0.1:1" GET /v1/collections 2>&1); then echo "no server succeeded"; exit 1; fi
expect '^{"error":{"code":"UNAVAILABLE"' "$out"
# The tool's own refusals are the same error JSON: /metrics (REST only), a bad --addr.
if out=$(call GET /metrics 2>&1); then echo "GET /metrics succeeded over the binary protocol"; exit 1; fi
expect '^{"error":{"code":"NOT_FOUND","message":"/metrics is served over REST only' "$out"
if out=$("$QUIVER" call --addr nohost GET /v1/collections 2>&1); then echo "a bad --addr succeeded"; exit 1; fi
expect '^{"error":{"code":"INVALID_ARGUMENT"' "$out"
kill -TERM $QUIVERD_PID
wait $QUIVERD_PID
echo "call cli test: OK"
