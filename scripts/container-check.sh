#!/usr/bin/env bash
# Builds the unmodified Dockerfile with podman (--pull=never) and checks the image: non-root, production
# dependencies only, /healthz and the HEALTHCHECK, a browser and a console round trip, graceful SIGTERM,
# and a transcript that survives a new container on the same /data volume.
# Without a reachable registry, STANDIN=1 (or a missing base image) builds a local stand-in base first.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

image=localhost/runspec-room:check
name="runspec-room-check-$$"
volume="runspec-room-check-data-$$"
start=$(date +%s)
step() { printf '[%3ss] %s\n' "$(($(date +%s) - start))" "$*"; }
fail() { step "FAIL: $*"; podman logs "$name" 2>&1 | tail -20 || true; exit 1; }

cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

base="$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' Dockerfile | head -1)"
if [ "${STANDIN:-}" = 1 ] || ! podman image exists "$base"; then
  step "base image $base: building the local stand-in"
  scripts/node-base-standin.sh "$base"
fi

step "podman build --pull=never $image"
podman build --quiet --pull=never --format docker --network host -t "$image" . >/dev/null
step "built: $(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
web_port="$(free_port)"
console_port="$(free_port)"
url="http://127.0.0.1:$web_port"

# Host networking: the console door's 127.0.0.1 is the host's, where `ssh -W localhost:PORT` reaches it.
run() {
  podman run -d --name "$name" --network host -v "$volume:/data" \
    -e CONSOLE_ROOM_HOST=127.0.0.1 -e CONSOLE_ROOM_PORT="$web_port" -e CONSOLE_ROOM_NDJSON_PORT="$console_port" \
    "$image" >/dev/null
  for _ in $(seq 1 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "no /healthz answer on $url within 10 s"
}

step "run with volume $volume"
run
[ "$(podman exec "$name" id -u)" != 0 ] || fail "the server runs as root"
step "runs as $(podman exec "$name" id -un) (uid $(podman exec "$name" id -u))"
podman exec "$name" sh -c 'test ! -e node_modules/typescript && test ! -e node_modules/vitest && test -e node_modules/@libsql/client' ||
  fail "dev dependencies in the image, or production ones missing"
[ "$(podman exec "$name" sh -c 'cat /proc/1/cmdline | tr "\0" " "')" = "node dist/main.js " ] || fail "node is not PID 1"
# Output is captured before grep: with pipefail, `producer | grep -q` fails when grep stops reading
# early and the producer gets SIGPIPE.
health=$(curl -fsS "$url/healthz") || fail "/healthz did not answer"
grep -q '"status":"ok"' <<<"$health" || fail "/healthz is not ok"
podman healthcheck run "$name" || fail "HEALTHCHECK reports unhealthy"
step "/healthz ok, HEALTHCHECK healthy, node is PID 1, production dependencies only"
page=$(curl -fsS "$url/") || fail "the page did not answer"
grep -q '/static/app.js' <<<"$page" || fail "the page is not served"
node scripts/room-roundtrip.mjs "$url" "$console_port" ops "before restart" || fail "round trip"

step "podman stop (SIGTERM)"
podman stop -t 10 "$name" >/dev/null
[ "$(podman inspect -f '{{.State.ExitCode}}' "$name")" = 0 ] || fail "exit code $(podman inspect -f '{{.State.ExitCode}}' "$name") after SIGTERM"
logs=$(podman logs "$name" 2>&1)
grep -q 'shutting down signal=SIGTERM' <<<"$logs" || fail "SIGTERM did not reach node"
grep -q ' stopped' <<<"$logs" || fail "graceful shutdown did not finish"
step "SIGTERM reached node: graceful shutdown, exit 0"

podman rm "$name" >/dev/null
step "a new container on the same volume"
run
node scripts/room-roundtrip.mjs "$url" "$console_port" ops "before restart" --expect-stored || fail "transcript lost"
node scripts/room-roundtrip.mjs "$url" "$console_port" ops "after restart" || fail "round trip after restart"
podman stop -t 10 "$name" >/dev/null
step "PASS: container check in $(($(date +%s) - start)) s"
