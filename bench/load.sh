#!/usr/bin/env bash
# bench/load.sh — the load harness: symcache against nginx and Varnish (see bench/README.md).
#
# Builds the sidecar and the fake Binance (cmd/replay), starts redis-server,
# replay, the sidecar, nginx (static files, gzip_static) and Varnish (cache in
# front of nginx) on free loopback ports, pins the servers to CPU 0 and wrk to
# CPU 1, and measures each case against each server, interleaved, REPEATS
# times. The forwarding cases (forward, forward-1) measure instead a small GET
# the sidecar forwards to a fake Binance (bench/load fakebinance, the sidecar's
# spot base URL) against nginx's proxy_pass to the same fake and against the
# fake asked directly. Prints a markdown report and writes it to bench/results/.
# Everything it starts is stopped on exit (trap); it never uses the system
# nginx/varnish services.
#
# Settings (environment):
#   DURATION=5s     wrk time per run          REPEATS=3      interleaved rounds
#   CONNS=16        wrk -c                    THREADS=1      wrk -t
#   WARMUP=1s       one warm-up run per case and server (0 = none)
#   CASES="spot-plain spot-gzip usdm-gzip symbol query-symbol spot-304 forward forward-1"
#   SERVERS="symcache nginx varnish"  add gobaseline for the floor of a plain
#                   Go net/http server serving the same bytes from memory,
#                   and gocontract for that floor sending the sidecar's
#                   headers with its server timeouts (both shown in the
#                   tables and judged against, never counted as peers)
#   FWD_SERVERS="symcache nginx direct"  the forwarding cases' servers; add
#                   goproxy for the floor of a Go forwarder (a bare
#                   httputil.ReverseProxy to the same fake; never a peer)
#   RATES="1000 10000"  steady-rate phase (bench/load rate: an open loop, p50/p99/p99.9),
#                   after the wrk runs; empty skips it
#   RATE_CASES="symbol query-symbol spot-gzip"  RATE_DURATION=5s  RATE_REPEATS=1
#   UNIX=1          the steady-rate phase also asks a second sidecar on a Unix socket
#                   (symcache-unix), nginx on one (nginx-unix) and, when it runs,
#                   gobaseline on one (gobaseline-unix); 0 skips them
#   BUILD_FROM=dir  build the sidecar and replay from another checkout
#                   (e.g. a `git archive HEAD` copy while the tree is mid-edit)
#   RESULTS_DIR=bench/results                 KEEP_TMP=1 keeps the temp dir
#   SERVER_CPU=0 CLIENT_CPU=1
#   QUIET_BUSY=25 QUIET_WAIT=20 QUIET_TOTAL=120  before each run, wait (at
#                   most QUIET_WAIT s per run, QUIET_TOTAL s in all) until the
#                   CPUs are less than QUIET_BUSY % busy: other work on the
#                   machine makes the numbers meaningless
set -euo pipefail

DURATION=${DURATION:-5s}
REPEATS=${REPEATS:-3}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-1s}
CASES=${CASES:-"spot-plain spot-gzip usdm-gzip symbol query-symbol spot-304 forward forward-1"}
SERVERS=${SERVERS:-"symcache nginx varnish"}
FWD_SERVERS=${FWD_SERVERS:-"symcache nginx direct"}
RATES=${RATES-"1000 10000"}
RATE_CASES=${RATE_CASES:-"symbol query-symbol spot-gzip"}
RATE_DURATION=${RATE_DURATION:-5s}
RATE_REPEATS=${RATE_REPEATS:-1}
UNIX=${UNIX:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
GO=${GO:-go}
QUIET_BUSY=${QUIET_BUSY:-25}
QUIET_WAIT=${QUIET_WAIT:-20}
QUIET_TOTAL=${QUIET_TOTAL:-120}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
FIXTURES=$ROOT/testdata/binance

log() { printf '[load %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- tools -------------------------------------------------------------------
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || need_pkgs+=(varnish)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${need_pkgs[*]} (apt-get; the packages' services are not used)"
		# policy-rc.d keeps Debian from starting the system nginx/varnish on :80/:6081.
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
	else
		die "missing: ${need_pkgs[*]} — install them (Debian: apt-get install -y ${need_pkgs[*]})"
	fi
fi
export PATH=$PATH:/usr/sbin
for t in redis-server nginx varnishd wrk curl taskset; do command -v $t >/dev/null || die "$t not found"; done

ncpu=$(nproc)
PIN_SERVER=(taskset -c "$SERVER_CPU")
PIN_CLIENT=(taskset -c "$CLIENT_CPU")
if [ "$ncpu" -lt 2 ]; then
	log "WARNING: $ncpu CPU: servers and wrk share it; numbers are not comparable with 2-CPU runs"
	PIN_SERVER=() PIN_CLIENT=()
fi

TMP=$(mktemp -d /tmp/symcache-load.XXXXXX)
chmod 755 "$TMP" # nginx workers (www-data when run as root) read the static files
PIDS=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------
log "building sidecar, replay and the report helper into $TMP"
BUILD_FROM=${BUILD_FROM:-$ROOT}
(cd "$BUILD_FROM" && CGO_ENABLED=0 $GO build -trimpath -o "$TMP/sidecar" ./cmd/sidecar &&
	CGO_ENABLED=0 $GO build -trimpath -o "$TMP/replay" ./cmd/replay) || die "build failed in $BUILD_FROM"
(cd "$ROOT" && $GO build -o "$TMP/loadhelper" ./bench/load) || die "build of bench/load failed"

read -r P_REDIS P_REPLAY P_SYM P_NGINX P_VARNISH P_VADMIN P_GOBASE P_FAKE P_NGXFWD P_GOPROXY P_GOCONTRACT < <("$TMP/loadhelper" freeports 11 | paste -sd' ')

wait_http() { # url [seconds]
	local i
	for i in $(seq $((${2:-20} * 10))); do
		curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# --- redis, replay, sidecar ------------------------------------------------------
"${PIN_SERVER[@]}" redis-server --bind 127.0.0.1 --port "$P_REDIS" --save "" --appendonly no \
	--dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=($!)
"${PIN_SERVER[@]}" "$TMP/replay" -addr "127.0.0.1:$P_REPLAY" -dir "$FIXTURES" 2>"$TMP/replay.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$P_REPLAY/api/v3/exchangeInfo" || die "replay did not start (see $TMP/replay.log)"
# The fake Binance of the forwarding cases: the same recorded spot answer as
# replay (the sidecar loads spot from it) and small answers from memory.
"${PIN_SERVER[@]}" "$TMP/loadhelper" fakebinance -addr "127.0.0.1:$P_FAKE" -dir "$FIXTURES" 2>"$TMP/fakebinance.log" &
PIDS+=($!)
FAKE=http://127.0.0.1:$P_FAKE
wait_http "$FAKE/api/v3/time" || die "fakebinance did not start: $(tail -3 "$TMP/fakebinance.log")"

UP=http://127.0.0.1:$P_REPLAY
SYMCACHE_ADDR=127.0.0.1:$P_SYM REDIS_URL=redis://127.0.0.1:$P_REDIS/0 \
	BINANCE_SPOT_URL=$FAKE BINANCE_USDM_URL=$UP BINANCE_COINM_URL=$UP \
	SYMCACHE_MARKETS=spot,usdm,coinm SYMCACHE_TTL=2h SYMCACHE_REFRESH_INTERVAL=1h \
	"${PIN_SERVER[@]}" "$TMP/sidecar" 2>"$TMP/sidecar.log" &
SYM_PID=$!
PIDS+=($SYM_PID)
SYM=http://127.0.0.1:$P_SYM
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$SYM/readyz" || true)" = 200 ] && break
	kill -0 $SYM_PID 2>/dev/null || die "sidecar exited (see $TMP/sidecar.log): $(tail -3 "$TMP/sidecar.log")"
	sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$SYM/readyz")" = 200 ] || die "sidecar not ready after 30 s: $(curl -s "$SYM/readyz")"
log "sidecar ready on $SYM (pid $SYM_PID)"
SYM_SOCK=$TMP/symcache.sock
if [ -n "$RATES" ] && [ "$UNIX" = 1 ]; then
	# A second sidecar on a Unix socket, on the same Redis: it loads from L2.
	SYMCACHE_ADDR=unix:$SYM_SOCK REDIS_URL=redis://127.0.0.1:$P_REDIS/0 \
		BINANCE_SPOT_URL=$FAKE BINANCE_USDM_URL=$UP BINANCE_COINM_URL=$UP \
		SYMCACHE_MARKETS=spot,usdm,coinm SYMCACHE_TTL=2h SYMCACHE_REFRESH_INTERVAL=1h \
		"${PIN_SERVER[@]}" "$TMP/sidecar" 2>"$TMP/sidecar-unix.log" &
	PIDS+=($!)
	for _ in $(seq 300); do
		[ "$(curl -s --unix-socket "$SYM_SOCK" -o /dev/null -w '%{http_code}' --max-time 2 http://symcache/readyz || true)" = 200 ] && break
		sleep 0.1
	done
	[ "$(curl -s --unix-socket "$SYM_SOCK" -o /dev/null -w '%{http_code}' http://symcache/readyz)" = 200 ] || die "the sidecar on $SYM_SOCK is not ready: $(tail -3 "$TMP/sidecar-unix.log")"
	log "sidecar ready on unix:$SYM_SOCK"
fi

# --- the bytes the peers serve: fetched from the sidecar itself -------------------
WWW=$TMP/www
mkdir -p "$WWW/api/v3" "$WWW/fapi/v1" "$WWW/v1/symbols/spot" "$WWW/q"
fetch() { # url out [accept-encoding]
	local h=()
	[ -n "${3:-}" ] && h=(-H "Accept-Encoding: $3")
	[ "$(curl -sS "${h[@]}" -o "$2" -w '%{http_code}' "$1")" = 200 ] || die "GET $1 did not answer 200"
}
fetch "$SYM/api/v3/exchangeInfo" "$WWW/api/v3/exchangeInfo"
fetch "$SYM/api/v3/exchangeInfo" "$WWW/api/v3/exchangeInfo.gz" gzip
fetch "$SYM/fapi/v1/exchangeInfo" "$WWW/fapi/v1/exchangeInfo"
fetch "$SYM/fapi/v1/exchangeInfo" "$WWW/fapi/v1/exchangeInfo.gz" gzip
fetch "$SYM/v1/symbols/spot/BTCUSDT" "$WWW/v1/symbols/spot/BTCUSDT"
fetch "$SYM/api/v3/exchangeInfo?symbol=BTCUSDT" "$WWW/q/spot-symbol-BTCUSDT"
cmp -s "$WWW/api/v3/exchangeInfo" "$FIXTURES/spot_exchangeinfo.json" || die "sidecar's spot body differs from the fixture"
cmp -s "$WWW/fapi/v1/exchangeInfo" "$FIXTURES/usdm_exchangeinfo.json" || die "sidecar's USD-M body differs from the fixture"
gzip -dc "$WWW/api/v3/exchangeInfo.gz" | cmp -s - "$FIXTURES/spot_exchangeinfo.json" || die "sidecar's gzipped spot body does not gunzip to the fixture"
gzip -dc "$WWW/fapi/v1/exchangeInfo.gz" | cmp -s - "$FIXTURES/usdm_exchangeinfo.json" || die "sidecar's gzipped USD-M body does not gunzip to the fixture"
if command -v jq >/dev/null; then # the one-symbol bytes are the fixture's BTCUSDT object
	[ "$(jq -cS '.symbols[] | select(.symbol=="BTCUSDT")' "$FIXTURES/spot_exchangeinfo.json")" = \
		"$(jq -cS . "$WWW/v1/symbols/spot/BTCUSDT")" ] || die "/v1/symbols/spot/BTCUSDT is not the fixture's BTCUSDT object"
fi

# --- nginx and varnish ---------------------------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 1000000000;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 3600s;
    types { }
    default_type application/json;
    gzip_static on;
    gzip_vary on;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$P_NGINX;
        listen unix:$TMP/nginx.sock;
        root $WWW;
        location / { }
    }
    # The forwarding cases: proxy_pass to the fake Binance over kept-alive
    # HTTP/1.1 connections, as the sidecar's Transport keeps them.
    upstream binance_fake {
        server 127.0.0.1:$P_FAKE;
        keepalive 32;
        keepalive_requests 1000000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$P_NGXFWD;
        location / {
            proxy_pass http://binance_fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
"${PIN_SERVER[@]}" nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
NGX=http://127.0.0.1:$P_NGINX
wait_http "$NGX/v1/symbols/spot/BTCUSDT" || die "nginx did not start: $(tail -3 "$TMP/nginx/error.log")"
NGXFWD=http://127.0.0.1:$P_NGXFWD
wait_http "$NGXFWD/api/v3/time" || die "nginx's proxy_pass to the fake does not answer: $(tail -3 "$TMP/nginx/error.log")"

# http_gzip_support=off: Varnish passes Accept-Encoding to nginx and keeps one
# variant per value (nginx sends Vary), so both the plain and the gzip case are
# pure cache hits instead of gunzipping per request. default_ttl 1 day: no
# expiry during the run.
mkdir -p "$TMP/varnish"
"${PIN_SERVER[@]}" varnishd -F -j none -n "$TMP/varnish" -a "127.0.0.1:$P_VARNISH" \
	-T "127.0.0.1:$P_VADMIN" -b "127.0.0.1:$P_NGINX" -s malloc,256m \
	-p http_gzip_support=off -p default_ttl=86400 >"$TMP/varnish.log" 2>&1 &
PIDS+=($!)
VAR=http://127.0.0.1:$P_VARNISH
wait_http "$VAR/v1/symbols/spot/BTCUSDT" 30 || die "varnishd did not start: $(tail -5 "$TMP/varnish.log")"
log "nginx on $NGX, varnish on $VAR"
GOB=http://127.0.0.1:$P_GOBASE
if [[ " $SERVERS " == *" gobaseline "* ]]; then
	"${PIN_SERVER[@]}" "$TMP/loadhelper" gobaseline -addr "127.0.0.1:$P_GOBASE" -unix "$TMP/gobaseline.sock" -dir "$WWW" 2>"$TMP/gobaseline.log" &
	PIDS+=($!)
	wait_http "$GOB/v1/symbols/spot/BTCUSDT" || die "gobaseline did not start: $(tail -3 "$TMP/gobaseline.log")"
fi
GOC=http://127.0.0.1:$P_GOCONTRACT
if [[ " $SERVERS " == *" gocontract "* ]]; then
	"${PIN_SERVER[@]}" "$TMP/loadhelper" gobaseline -contract -addr "127.0.0.1:$P_GOCONTRACT" -dir "$WWW" 2>"$TMP/gocontract.log" &
	PIDS+=($!)
	wait_http "$GOC/v1/symbols/spot/BTCUSDT" || die "gocontract did not start: $(tail -3 "$TMP/gocontract.log")"
fi
GOPROXY=http://127.0.0.1:$P_GOPROXY
if [[ " $FWD_SERVERS " == *" goproxy "* ]]; then
	"${PIN_SERVER[@]}" "$TMP/loadhelper" goproxy -addr "127.0.0.1:$P_GOPROXY" -upstream "$FAKE" 2>"$TMP/goproxy.log" &
	PIDS+=($!)
	wait_http "$GOPROXY/api/v3/time" || die "goproxy did not start: $(tail -3 "$TMP/goproxy.log")"
fi

# --- cases ---------------------------------------------------------------------
# case_path CASE SERVER -> path; case_ae CASE -> Accept-Encoding or empty;
# case_servers CASE -> the servers it runs on; case_conns CASE -> wrk -c
is_forward() { case "$1" in forward | forward-1) return 0 ;; *) return 1 ;; esac; }
case_servers() { if is_forward "$1"; then echo "$FWD_SERVERS"; else echo "$SERVERS"; fi; }
case_conns() { if [ "$1" = forward-1 ]; then echo 1; else echo "$CONNS"; fi; }
case_path() {
	case "$1" in
	forward | forward-1) echo '/api/v3/ticker/price?symbol=BTCUSDT' ;;
	spot-plain | spot-gzip | spot-304) echo /api/v3/exchangeInfo ;;
	usdm-gzip) echo /fapi/v1/exchangeInfo ;;
	symbol) echo /v1/symbols/spot/BTCUSDT ;;
	query-symbol) if [ "$2" = symcache ]; then echo '/api/v3/exchangeInfo?symbol=BTCUSDT'; else echo /q/spot-symbol-BTCUSDT; fi ;;
	*) die "unknown case $1" ;;
	esac
}
case_ae() { case "$1" in *-gzip | spot-304) echo gzip ;; *) echo "" ;; esac; }
base_url() { # SERVER [CASE]
	if is_forward "${2:-}"; then
		case "$1" in symcache) echo "$SYM" ;; nginx) echo "$NGXFWD" ;; direct) echo "$FAKE" ;; goproxy) echo "$GOPROXY" ;; *) die "unknown server $1 for $2" ;; esac
		return
	fi
	case "$1" in symcache) echo "$SYM" ;; nginx) echo "$NGX" ;; varnish) echo "$VAR" ;; gobaseline) echo "$GOB" ;; gocontract) echo "$GOC" ;; *) die "unknown server $1" ;; esac
}

declare -A ETAG
for s in $SERVERS; do # the ETag each server gives the gzip variant of spot (for spot-304)
	ETAG[$s]=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$(base_url $s)/api/v3/exchangeInfo" |
		tr -d '\r' | awk 'tolower($1)=="etag:"{ $1=""; sub(/^ /,""); print }')
	[ -n "${ETAG[$s]}" ] || die "$s sends no ETag for spot"
done

headers_for() { # CASE SERVER -> curl/wrk -H arguments, one per line
	local ae
	ae=$(case_ae "$1")
	[ -n "$ae" ] && echo "Accept-Encoding: $ae"
	[ "$1" = spot-304 ] && echo "If-None-Match: ${ETAG[$2]}"
	return 0
}

# Preflight: each case once per server (twice: the second is a Varnish hit),
# checking the status and that the bytes equal symcache's.
: >"$TMP/preflight.tsv"
for c in $CASES; do
	ref=""
	for s in $(case_servers "$c"); do
		H=()
		while IFS= read -r h; do [ -n "$h" ] && H+=(-H "$h"); done < <(headers_for "$c" "$s")
		url=$(base_url "$s" "$c")$(case_path "$c" "$s")
		curl -s -o /dev/null "${H[@]}" "$url" || true
		rm -f "$TMP/pre.body"
		out=$(curl -s -o "$TMP/pre.body" -D "$TMP/pre.hdr" -w '%{http_code}' "${H[@]}" "$url") || die "GET $url failed"
		enc=$(tr -d '\r' <"$TMP/pre.hdr" | awk 'tolower($1)=="content-encoding:"{print $2}')
		touch "$TMP/pre.body" # curl writes no file for an empty body (304)
		sum=$(sha256sum <"$TMP/pre.body" | cut -c1-16)
		[ "$s" = symcache ] && ref=$sum
		same=no
		[ "$sum" = "$ref" ] && same=yes
		want=200
		[ "$c" = spot-304 ] && want=304
		[ "$out" = "$want" ] || die "preflight $c $s: status $out, want $want"
		[ "$same" = yes ] || die "preflight $c $s: body differs from symcache's"
		if [ "$s" = varnish ] && ! tr -d '\r' <"$TMP/pre.hdr" | grep -qiE '^x-varnish: [0-9]+ [0-9]+'; then
			die "preflight $c: the second Varnish request was not a cache hit"
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$s" "$out" "$(stat -c %s "$TMP/pre.body")" "${enc:--}" "$same" >>"$TMP/preflight.tsv"
	done
done
log "preflight ok: every server answers every case with symcache's bytes"

# --- memory (before load) --------------------------------------------------------
rss() { awk -v k="$1:" '$1==k{print $2*1024}' "/proc/$SYM_PID/status"; }
RAW=$(($(stat -c %s "$FIXTURES/spot_exchangeinfo.json") + $(stat -c %s "$FIXTURES/usdm_exchangeinfo.json") + $(stat -c %s "$FIXTURES/coinm_exchangeinfo.json")))
for m in usdm coinm; do # every market has been asked for once
	curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$SYM/$( [ $m = usdm ] && echo fapi || echo dapi)/v1/exchangeInfo"
done
RSS_IDLE=$(rss VmRSS)

# --- runs ----------------------------------------------------------------------
busy_pct() { # % of all CPUs busy over 0.5 s (everything on the machine: the servers are idle now)
	local a b
	a=$(awk '$1=="cpu"{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 0.5
	b=$(awk '$1=="cpu"{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); u=y[1]-x[1]; i=y[2]-x[2]; if (u+i > 0) printf "%d", 100*u/(u+i); else printf "0"}'
}
BUSY_MAX=0 BUSY_RUNS=0 WAITED_TOTAL=0
wait_quiet() { # -> sets BUSY (the last sample)
	local waited=0
	BUSY=$(busy_pct)
	while [ "$BUSY" -ge "$QUIET_BUSY" ] && [ "$waited" -lt "$QUIET_WAIT" ] && [ "$WAITED_TOTAL" -lt "$QUIET_TOTAL" ]; do
		[ "$waited" = 0 ] && log "machine ${BUSY}% busy before a run (other work?): waiting up to ${QUIET_WAIT}s"
		sleep 2
		waited=$((waited + 2)) WAITED_TOTAL=$((WAITED_TOTAL + 2))
		BUSY=$(busy_pct)
	done
	if [ "$BUSY" -ge "$QUIET_BUSY" ]; then
		BUSY_RUNS=$((BUSY_RUNS + 1))
		log "still ${BUSY}% busy: running anyway; this run is disturbed"
	fi
	[ "$BUSY" -gt "$BUSY_MAX" ] && BUSY_MAX=$BUSY
	return 0
}
wrk_run() { # CASE SERVER DURATION -> RESULT line on stdout
	local H=() h
	while IFS= read -r h; do [ -n "$h" ] && H+=(-H "$h"); done < <(headers_for "$1" "$2")
	local url conns
	url=$(base_url "$2" "$1")$(case_path "$1" "$2")
	conns=$(case_conns "$1")
	local secs=${3%s}
	timeout $((secs + 30)) "${PIN_CLIENT[@]}" wrk -t "$((THREADS < conns ? THREADS : conns))" -c "$conns" -d "$3" --timeout 10s \
		-s "$ROOT/bench/load/report.lua" "${H[@]}" "$url" >"$TMP/wrk.out" 2>&1 || die "wrk failed: $(tail -3 "$TMP/wrk.out")"
	grep '^RESULT ' "$TMP/wrk.out" || die "no RESULT line from wrk: $(tail -3 "$TMP/wrk.out")"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -ra CV <<<"$CASES"
nruns=0
for c in "${CV[@]}"; do read -ra SV <<<"$(case_servers "$c")"; nruns=$((nruns + ${#SV[@]} * REPEATS)); done
log "measuring: ${#CV[@]} cases × their servers × $REPEATS repeats × $DURATION (-c $CONNS -t $THREADS; forward-1: -c 1) = $nruns runs"
if [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
	for c in "${CV[@]}"; do for s in $(case_servers "$c"); do wrk_run "$c" "$s" "$WARMUP" >/dev/null; done; done
fi
: >"$TMP/runs.tsv"
i=0
for ((r = 1; r <= REPEATS; r++)); do
	for c in "${CV[@]}"; do
		read -ra SV <<<"$(case_servers "$c")"
		# A/B/A/B: every round runs each case on every server, the order rotated per round.
		for ((k = 0; k < ${#SV[@]}; k++)); do
			s=${SV[$(((k + r - 1) % ${#SV[@]}))]}
			i=$((i + 1))
			wait_quiet
			line=$(wrk_run "$c" "$s" "$DURATION")
			printf '%s\t%s\t%d\t%s\n' "$c" "$s" "$r" "$line" >>"$TMP/runs.tsv"
			log "[$i/$nruns] round $r $c $s (machine ${BUSY}% busy before): $(sed -E 's/.*"rps":([0-9.]+).*"p50_us":([0-9]+).*"p99_us":([0-9]+).*/\1 req\/s p50 \2µs p99 \3µs/' <<<"$line")"
		done
	done
done

# --- steady rate ---------------------------------------------------------------
rate_run() { # CASE SERVER RATE -> rate's JSON line
	local args=() h
	case "$2" in
	symcache-unix) args=(-unix "$SYM_SOCK" -url "http://symcache$(case_path "$1" symcache)") ;;
	nginx-unix) args=(-unix "$TMP/nginx.sock" -url "http://nginx$(case_path "$1" nginx)") ;;
	gobaseline-unix) args=(-unix "$TMP/gobaseline.sock" -url "http://gobaseline$(case_path "$1" gobaseline)") ;;
	*) args=(-url "$(base_url "$2" "$1")$(case_path "$1" "$2")") ;;
	esac
	while IFS= read -r h; do [ -n "$h" ] && args+=(-H "$h"); done < <(headers_for "$1" "${2%-unix}")
	local secs=${RATE_DURATION%s}
	timeout $((secs + 60)) "${PIN_CLIENT[@]}" "$TMP/loadhelper" rate "${args[@]}" -rate "$3" -duration "$RATE_DURATION" -warmup 1s ||
		die "load rate $1 $2 $3 failed"
}
: >"$TMP/rates.tsv"
if [ -n "$RATES" ]; then
	RATE_SERVERS=$SERVERS
	[ "$UNIX" = 1 ] && RATE_SERVERS="$RATE_SERVERS symcache-unix nginx-unix"
	[ "$UNIX" = 1 ] && [[ " $SERVERS " == *" gobaseline "* ]] && RATE_SERVERS="$RATE_SERVERS gobaseline-unix"
	for ((r = 1; r <= RATE_REPEATS; r++)); do
		for rate in $RATES; do
			for c in $RATE_CASES; do
				for s in $RATE_SERVERS; do
					wait_quiet
					line=$(rate_run "$c" "$s" "$rate")
					printf '%s\t%s\t%s\t%d\t%s\n' "$c" "$s" "$rate" "$r" "$line" >>"$TMP/rates.tsv"
					log "steady $rate/s $c $s: $(sed -E 's/.*"sent_p50_us":([0-9.-]+),"sent_p99_us":([0-9.-]+),"sent_p99_9_us":([0-9.-]+).*/p50 \1µs p99 \2µs p99.9 \3µs (sent)/' <<<"$line")"
				done
			done
		done
	done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
RSS_AFTER=$(rss VmRSS)
HWM=$(rss VmHWM)
printf 'raw_bytes\t%s\nrss_after_warmup\t%s\nrss_after_load\t%s\nhwm_peak_rss\t%s\n' "$RAW" "$RSS_IDLE" "$RSS_AFTER" "$HWM" >"$TMP/memory.tsv"

# --- report --------------------------------------------------------------------
{
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
	echo "go: $($GO version | cut -d' ' -f3-); symcache: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
	echo "peers: $(nginx -v 2>&1 | sed 's/.*: //'), $(varnishd -V 2>&1 | head -1 | sed -E 's/.*\((varnish-[0-9.]+).*/\1/'), client: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "pinning: servers (sidecar GOMAXPROCS=1 by affinity, nginx 1 worker, varnishd, redis, replay, fakebinance) on CPU $SERVER_CPU; wrk on CPU $CLIENT_CPU"
	echo "load: wrk -t $THREADS -c $CONNS -d $DURATION, $REPEATS interleaved rounds (server order rotated each round), warm-up $WARMUP per case and server; medians over rounds"
	echo "peers serve the sidecar's own bytes (plain and gzip) as static files; nginx: sendfile, gzip_static, 1 worker; varnish: malloc storage, http_gzip_support=off (one cached variant per Accept-Encoding), every run a hit"
	echo "load average (1/5/15 min) before the runs: $LOAD_START; after: $LOAD_END (the harness itself keeps about 2 CPUs busy)"
	echo "quiet check: machine busy before a run at most ${BUSY_MAX}% (threshold ${QUIET_BUSY}%); runs started on a busy machine anyway: $BUSY_RUNS of $nruns (waited ${WAITED_TOTAL}s in all)"
	echo "cases: gzip = 'Accept-Encoding: gzip'; spot-304 = gzip variant with If-None-Match of each server's own ETag; query-symbol = /api/v3/exchangeInfo?symbol=BTCUSDT (peers: a static file of the same bytes)"
	echo "forwarding cases: GET /api/v3/ticker/price?symbol=BTCUSDT (45 B answer) from the fake Binance (bench/load fakebinance, on CPU $SERVER_CPU with the servers): through the sidecar (its BINANCE_SPOT_URL), through nginx proxy_pass (upstream keepalive, HTTP/1.1), and asked directly; forward: $CONNS connections, forward-1: one connection (latency)"
} >"$TMP/meta.txt"
mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/$(date -u +%Y-%m-%d-%H%M).md
"$TMP/loadhelper" report -runs "$TMP/runs.tsv" -meta "$TMP/meta.txt" -preflight "$TMP/preflight.tsv" \
	-memory "$TMP/memory.tsv" -servers "$(tr ' ' , <<<"$SERVERS"),direct,goproxy" -peers nginx,varnish -floors gobaseline,gocontract -out "$OUT"
if [ -s "$TMP/rates.tsv" ]; then
	"$TMP/loadhelper" ratereport -runs "$TMP/rates.tsv" -peers nginx,varnish -out "$OUT"
fi
log "wrote $OUT"
