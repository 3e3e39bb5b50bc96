#!/usr/bin/env bash
# make check-dockerfile: the Dockerfile checked without a Docker engine (none
# runs where symcache is developed and tested).
#
#  1. symcache's own rules (deploy/check/dockerfile): base images pinned; a
#     static, trimmed `go build` stamping version.Version/Commit/Date from
#     ARGs the stage declares; a distroless runtime stage that copies that
#     binary, runs as non-root, EXPOSEs the port of its SYMCACHE_ADDR, and has
#     exec-form ENTRYPOINT and HEALTHCHECK ["/sidecar", "healthcheck"].
#  2. Two Dockerfile linters from npm, installed once into a cache folder:
#     dockerlinter (hadolint-like rules, and shellcheck on RUN lines) and
#     dockerfile-utils (the Dockerfile language service's validator: flags,
#     arguments, stages).
#  3. The build: a copy of the context that .dockerignore leaves
#     (deploy/check/dockercontext, Docker's own pattern matcher), and in it the
#     build stage's `go build` line taken from the Dockerfile, run by
#     /bin/sh -c with test values for the ARGs, as RUN runs it. Only the -o
#     path changes, so the Dockerfile and this check cannot drift apart.
#  4. The binary: static, trimmed, stamped (`go version -m`, `sidecar
#     version`); `sidecar healthcheck` with the image's SYMCACHE_ADDR form
#     (0.0.0.0:PORT) fails with nothing listening and against a sidecar that
#     cannot reach Binance, and passes against one serving recorded answers
#     (cmd/replay). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in ${pids[@]+"${pids[@]}"}; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '== %s\n' "$*"; }
fail() {
	echo "check-dockerfile: FAIL: $*" >&2
	exit 1
}

# --- 1. symcache's rules ---------------------------------------------------
step "symcache's rules (deploy/check/dockerfile, tests first)"
(cd deploy/check && $GO test -count=1 ./dockerfile ./dockercontext && $GO run ./dockerfile "$root/Dockerfile")

# --- 2. linters ------------------------------------------------------------
lint_dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/symcache/dockerfile-lint
dockerlinter_version=2.0.0
utils_version=0.16.3
installed() { # package version
	local pj="$lint_dir/node_modules/$1/package.json"
	[ -f "$pj" ] && [ "$(node -p "require(process.argv[1]).version" "$pj")" = "$2" ]
}
if ! installed dockerlinter "$dockerlinter_version" || ! installed dockerfile-utils "$utils_version"; then
	step "installing dockerlinter@$dockerlinter_version and dockerfile-utils@$utils_version into $lint_dir"
	mkdir -p "$lint_dir"
	# --ignore-scripts: dockerlinter's postinstall would download a shellcheck
	# binary; Debian's shellcheck is used instead. Its package.json asks for
	# Node.js 22; it runs on the machine's 20 (checked below on a bad file).
	npm install --prefix "$lint_dir" --no-save --no-package-lock --no-audit --no-fund \
		--ignore-scripts --loglevel=error \
		"dockerlinter@$dockerlinter_version" "dockerfile-utils@$utils_version" </dev/null >/dev/null
fi
dockerlinter=("node" "$lint_dir/node_modules/dockerlinter/bin/dockerfilelinter.js")
dockerfile_utils=("node" "$lint_dir/node_modules/dockerfile-utils/bin/dockerfile-utils")

if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	step "installing shellcheck (Debian package) for the RUN lines"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq shellcheck </dev/null >/dev/null 2>&1 ||
		{ apt-get update -qq </dev/null && apt-get install -y -qq shellcheck </dev/null >/dev/null; } ||
		true
fi
shell="sh"
if ! command -v shellcheck >/dev/null 2>&1; then
	echo "   shellcheck is not installed: RUN lines are not shell-checked" >&2
	shell=none
fi

# A linter that runs but checks nothing would pass anything: each must
# reject a bad Dockerfile first.
printf 'FROM golang\nMAINTAINER x\nRUN cd /src && go build\nHEALTHCHECK --interval=soon CMD /x\nCMD /x\n' >"$tmp/Bad.Dockerfile"
if "${dockerlinter[@]}" -s none -e info -f "$tmp/Bad.Dockerfile" >/dev/null 2>&1; then
	fail "dockerlinter passed a bad Dockerfile: it does not work here"
fi
[ "$("${dockerfile_utils[@]}" lint -j "$tmp/Bad.Dockerfile")" != "[]" ] ||
	fail "dockerfile-utils passed a bad Dockerfile: it does not work here"

step "dockerlinter $dockerlinter_version (shellcheck: $shell)"
"${dockerlinter[@]}" -s "$shell" -e info -f Dockerfile || fail "dockerlinter found problems (above)"
step "dockerfile-utils $utils_version"
if [ "$("${dockerfile_utils[@]}" lint -j Dockerfile)" != "[]" ]; then
	"${dockerfile_utils[@]}" lint Dockerfile
	fail "dockerfile-utils found problems (above)"
fi

# --- 3. the build ----------------------------------------------------------
step "build context (.dockerignore applied)"
(cd deploy/check && $GO run ./dockercontext -src "$root" -out "$tmp/src")
mkdir -p "$tmp/out"
bin=$tmp/out/sidecar
cmd=$(cd deploy/check && $GO run ./dockerfile -build-out "$bin" "$root/Dockerfile")
VERSION=9.8.7-check
COMMIT=0123456789abcdef0123456789abcdef01234567
DATE=2026-01-02T03:04:05Z
step "the Dockerfile's go build, in the context copy, with VERSION=$VERSION COMMIT=$COMMIT DATE=$DATE:"
echo "   $cmd"
(cd "$tmp/src" && env VERSION="$VERSION" COMMIT="$COMMIT" DATE="$DATE" /bin/sh -c "$cmd") ||
	fail "the Dockerfile's go build failed in the build context"

# --- 4. the binary ---------------------------------------------------------
step "the binary: static, trimmed, stamped"
meta=$($GO version -m "$bin")
for want in "CGO_ENABLED=0" "-trimpath=true"; do # -trimpath keeps -ldflags out of it
	grep -qF -- "$want" <<<"$meta" || fail "go version -m $bin lacks $want"
done
out=$("$bin" version)
while IFS= read -r line; do echo "   $line"; done <<<"$out"
for want in "version: $VERSION" "commit: $COMMIT" "date: $DATE"; do
	grep -qxF "$want" <<<"$out" || fail "sidecar version lacks the line '$want'"
done
grep -q '^go: go1\.' <<<"$out" || fail "sidecar version names no Go version"

# A JSON log's "addr" once it appears (cmd/replay and the sidecar log it).
addr_from_log() { # logfile pid
	for _ in $(seq 300); do
		a=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$1" | head -n 1)
		[ -n "$a" ] && echo "$a" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	cat "$1" >&2
	return 1
}
port_of() { echo "${1##*:}"; }

step "healthcheck: nothing listening"
if out=$(SYMCACHE_ADDR=0.0.0.0:1 "$bin" healthcheck 2>&1); then
	fail "healthcheck passed with nothing listening"
fi
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "healthcheck printed more than one line: $out"
echo "   exit 1: $out"

# Built like the sidecar (static, trimmed) so that it reuses its compiled packages.
CGO_ENABLED=0 $GO build -trimpath -o "$tmp/replay" ./cmd/replay
"$tmp/replay" -addr 127.0.0.1:0 -log json -dir testdata/binance >/dev/null 2>"$tmp/replay.log" &
pids+=($!)
binance=http://$(addr_from_log "$tmp/replay.log" "$!") || fail "cmd/replay did not start"

# start_sidecar NAME BINANCE_URL starts the built binary on a free loopback
# port and sets sidecar_addr.
start_sidecar() {
	env -i PATH="$PATH" SYMCACHE_ADDR=127.0.0.1:0 SYMCACHE_MARKETS=spot,usdm,coinm \
		BINANCE_SPOT_URL="$2" BINANCE_USDM_URL="$2" BINANCE_COINM_URL="$2" \
		"$bin" >/dev/null 2>"$tmp/$1.log" &
	pids+=($!)
	sidecar_addr=$(addr_from_log "$tmp/$1.log" "$!") || fail "the sidecar ($1) did not start"
}

step "healthcheck: a sidecar that cannot reach Binance"
start_sidecar down http://127.0.0.1:1
down=$sidecar_addr
if out=$(SYMCACHE_ADDR=0.0.0.0:$(port_of "$down") "$bin" healthcheck 2>&1); then
	fail "healthcheck passed against a sidecar with nothing to serve"
fi
grep -q '503' <<<"$out" || fail "healthcheck of an unready sidecar does not say 503: $out"
echo "   exit 1: $out"

step "healthcheck: a sidecar serving recorded answers ($binance)"
start_sidecar up "$binance"
up=$sidecar_addr
ok=
for _ in $(seq 300); do
	if SYMCACHE_ADDR=0.0.0.0:$(port_of "$up") "$bin" healthcheck 2>"$tmp/hc.err"; then
		ok=1
		break
	fi
	sleep 0.05
done
[ -n "$ok" ] || fail "healthcheck still failing after 15s: $(cat "$tmp/hc.err")"
SYMCACHE_ADDR=0.0.0.0:$(port_of "$up") "$bin" healthcheck -url /healthz || fail "healthcheck -url /healthz failed"
echo "   exit 0 (/readyz and /healthz on 127.0.0.1:$(port_of "$up"))"

step "SIGTERM: both sidecars stop with status 0"
for p in "${pids[@]:1}"; do
	kill -TERM "$p"
	status=0
	wait "$p" || status=$?
	[ "$status" -eq 0 ] || fail "a sidecar exited with status $status after SIGTERM"
done
pids=("${pids[0]}")

echo "check-dockerfile: ok"
