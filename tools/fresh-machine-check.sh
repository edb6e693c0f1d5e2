#!/usr/bin/env bash
# The README's promise on a fresh machine: bootstraps a minimal Debian 12 root (debootstrap
# --variant=minbase bookworm, from Debian's archive), clones this repository's committed HEAD
# into it, and runs the README's two commands there as root:
#   1. ./quiver.sh run   under a timeout; passes when the demo reached "serving", answered every
#                        operator example (none FAILED), and answers a search from outside;
#   2. ./quiver.sh test  passes when it exits 0.
# Prints the timings and one verdict line: "fresh-machine-check: PASS ..." or "... FAIL ...".
# Nothing of this machine's installed packages reaches the root: whatever the commands need
# must come from quiver.sh's own install step.
#
# Usage (as root): tools/fresh-machine-check.sh [--dir DIR] [--keep] [--only run|test]
#   --dir DIR    where to bootstrap (default: a new directory under /var/tmp); must not exist
#   --keep       leave the root and its logs in place (default: logs kept, root removed)
#   --only STEP  run only one of the two commands
# Environment: MIRROR (default http://deb.debian.org/debian), RUN_TIMEOUT (seconds for the main
# job to reach its examples, default 5400), TEST_TIMEOUT (default 7200), JOBS and
# QUIVER_FUZZ_SECONDS (passed to quiver.sh). The main job serves on 127.0.0.1:7700 and :7701,
# which must be free. CI runs this when QUIVER_FRESH_CHECK=1 (.ci/run); it takes about an hour.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
RUN_TIMEOUT=${RUN_TIMEOUT:-5400}
TEST_TIMEOUT=${TEST_TIMEOUT:-7200}
DIR="" KEEP=0 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
case "$ONLY" in ""|run|test) ;; *) echo "fresh-machine-check: --only takes run or test"; exit 2 ;; esac

verdict() {  # verdict PASS|FAIL DETAIL
  echo "fresh-machine-check: $1 ($2) commit $COMMIT; logs in $LOGS"
  [ "$1" = PASS ]
}
fail() { verdict FAIL "$1"; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: must run as root (debootstrap, chroot, mount)"; exit 2; }
COMMIT=$(git -C "$SRC" rev-parse --short HEAD)
[ -n "$DIR" ] || DIR=$(mktemp -d /var/tmp/quiver-fresh.XXXXXX)
[ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && { echo "fresh-machine-check: $DIR is not empty"; exit 2; }
ROOTFS=$DIR/root
LOGS=$DIR/logs
mkdir -p "$ROOTFS" "$LOGS"

NEED=()
for p in debootstrap git; do
  command -v "$p" >/dev/null || NEED+=("$p")
done
if [ ${#NEED[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${NEED[@]}" >/dev/null
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "$ONLY" != test ]; then
  for port in 7700 7701; do
    port_free "$port" || { echo "fresh-machine-check: 127.0.0.1:$port is in use; the main job serves there"; exit 2; }
  done
fi

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  MOUNTS=()
  if [ "$KEEP" = 0 ] && [ -d "$ROOTFS" ]; then
    # Never remove a tree that still has something mounted inside it (/dev is bound in).
    if [ -z "$(findmnt -rn -o TARGET | grep -F "$ROOTFS/" || true)" ]; then rm -rf "$ROOTFS"; fi
  fi
}
trap cleanup EXIT

now() { date +%s; }
T0=$(now)
echo "fresh-machine-check: debootstrap --variant=minbase bookworm $ROOTFS ($MIRROR)"
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" > "$LOGS/debootstrap.log" 2>&1 ||
  { tail -20 "$LOGS/debootstrap.log"; fail "debootstrap failed"; }
# What a Debian 12 installation's sources hold: the release, its updates and security.
cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
T_BOOT=$(( $(now) - T0 ))

bind() {  # bind SOURCE TARGET [mount options...]
  local target=$ROOTFS$2 source=$1
  shift 2
  mkdir -p "$target"
  mount "$@" "$source" "$target"
  MOUNTS+=("$target")
}
bind proc /proc -t proc
bind sysfs /sys -t sysfs
bind /dev /dev --bind
bind devpts /dev/pts -t devpts
bind tmpfs /dev/shm -t tmpfs

git clone -q "$SRC" "$ROOTFS/root/quiver"
git -C "$ROOTFS/root/quiver" checkout -q "$COMMIT"

# in_root LOG COMMAND...: runs COMMAND in the root from the clone, as root, with a clean
# environment, in its own process group; sets PID.
in_root() {
  local log=$1
  shift
  setsid chroot "$ROOTFS" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${JOBS:+JOBS=$JOBS} ${QUIVER_FUZZ_SECONDS:+QUIVER_FUZZ_SECONDS=$QUIVER_FUZZ_SECONDS} \
    /bin/bash -c 'cd /root/quiver && "$@"' bash "$@" > "$log" 2>&1 < /dev/null &
  PID=$!
}
stop_group() {  # stop_group PID: SIGINT (the demo stops quiverd cleanly), then SIGKILL
  local pid=$1 i
  kill -INT -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

RUN_DETAIL="not run" TEST_DETAIL="not run"
if [ "$ONLY" != test ]; then
  echo "fresh-machine-check: ./quiver.sh run (log: $LOGS/run.log)"
  T1=$(now)
  in_root "$LOGS/run.log" ./quiver.sh run
  pid=$PID
  # The demo prints this once every example has been sent; it then serves until stopped.
  until grep -q "quiverd keeps serving" "$LOGS/run.log"; do
    kill -0 "$pid" 2>/dev/null || { tail -30 "$LOGS/run.log"; fail "quiver.sh run exited before serving"; }
    [ $(( $(now) - T1 )) -lt "$RUN_TIMEOUT" ] || { stop_group "$pid"; tail -30 "$LOGS/run.log"; fail "quiver.sh run: no examples after $RUN_TIMEOUT s"; }
    sleep 1
  done
  T_RUN=$(( $(now) - T1 ))
  operators=$(grep -c '^--- ' "$LOGS/run.log" || true)
  failed=$(grep -c 'FAILED' "$LOGS/run.log" || true)
  # From outside the root: the served collection answers a search over REST.
  probe=$(curl -s --max-time 60 http://127.0.0.1:7700/v1/collections/movies/search \
    -d @"$ROOTFS/root/quiver/build/movielens/queries/u2i.json" || true)
  stop_group "$pid"
  grep -q "serving: REST http://127.0.0.1:7700" "$LOGS/run.log" || fail "quiver.sh run never reported serving on 7700"
  [ "$failed" = 0 ] || fail "quiver.sh run: $failed operator examples FAILED"
  [ "$operators" -ge 9 ] || fail "quiver.sh run: only $operators example sections printed"
  case "$probe" in *'"hits":[{'*) ;; *) fail "quiver.sh run: a search from outside got: ${probe:0:200}" ;; esac
  RUN_DETAIL="run: examples answered after ${T_RUN} s, $((operators - 1)) operators, none failed, search from outside answered"
  echo "fresh-machine-check: $RUN_DETAIL"
fi

if [ "$ONLY" != run ]; then
  echo "fresh-machine-check: ./quiver.sh test (log: $LOGS/test.log)"
  T2=$(now)
  in_root "$LOGS/test.log" timeout "$TEST_TIMEOUT" ./quiver.sh test
  pid=$PID
  rc=0
  wait "$pid" || rc=$?
  T_TEST=$(( $(now) - T2 ))
  summary=$(grep -E 'tests passed|tests failed' "$LOGS/test.log" | tail -1 || true)
  [ "$rc" = 0 ] || { tail -40 "$LOGS/test.log"; fail "quiver.sh test exited $rc after ${T_TEST} s: ${summary:-no summary}"; }
  TEST_DETAIL="test: passed in ${T_TEST} s ($summary)"
  echo "fresh-machine-check: $TEST_DETAIL"
fi

verdict PASS "debootstrap ${T_BOOT} s; $RUN_DETAIL; $TEST_DETAIL"
