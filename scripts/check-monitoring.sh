#!/usr/bin/env bash
# make check-monitoring: the dashboard and the alerting rules of deploy/
# checked offline, without a Prometheus or a Grafana.
#
#  1. promtool (Debian package prometheus: /usr/bin/promtool) is there; on
#     Debian as root the package is installed, else the script says what is
#     missing and fails.
#  2. promtool check rules: deploy/prometheus/symcache-rules.yaml parses,
#     every expression is valid PromQL, every template renders.
#  3. promtool test rules: deploy/prometheus/symcache-rules_test.yaml fires
#     each alert on made-up series, with its exact labels and annotations,
#     and leaves it silent on others. A copy of the rules with the alerts
#     renamed must fail those tests, so that tests that expect nothing
#     cannot pass unnoticed.
#  4. deploy/grafana/symcache.json is well-formed JSON (jq), a dashboard
#     with a ${datasource} variable that every panel uses, whose queries
#     promtool parses.
#
# That every metric the two files name is one the sidecar exports is the
# Go test TestMonitoring_NamesExported (cmd/sidecar), which make unit runs.
set -euo pipefail
cd "$(dirname "$0")/.."
rules=deploy/prometheus/symcache-rules.yaml
tests=deploy/prometheus/symcache-rules_test.yaml
dashboard=deploy/grafana/symcache.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "check-monitoring: FAIL: $*" >&2
	exit 1
}

if ! command -v promtool >/dev/null 2>&1; then
	echo "promtool not found: installing the Debian package prometheus" >&2
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq </dev/null
		# Only promtool is used; where an init system runs, the package may
		# start a Prometheus server on :9090, which nothing here uses.
		apt-get install -y -qq --no-install-recommends prometheus </dev/null >/dev/null
	fi
	if ! command -v promtool >/dev/null 2>&1; then
		echo "promtool is missing and could not be installed here." >&2
		echo "Install it (Debian/Ubuntu: sudo apt-get install -y prometheus; or a Prometheus release's promtool on PATH) and run make check-monitoring again." >&2
		exit 1
	fi
fi
if ! command -v jq >/dev/null 2>&1; then
	echo "jq is missing: install it (Debian/Ubuntu: sudo apt-get install -y jq) and run make check-monitoring again." >&2
	exit 1
fi

echo "== promtool check rules ($(promtool --version 2>&1 | head -n1))"
promtool check rules "$rules"

echo "== promtool test rules"
promtool test rules "$tests"

cp "$rules" "$tests" "$tmp/"
sed -i 's/- alert: Symcache/- alert: Renamed/' "$tmp/$(basename "$rules")"
if promtool test rules "$tmp/$(basename "$tests")" >"$tmp/renamed.out" 2>&1; then
	fail "the rule tests passed with every alert renamed: they do not check the alerts"
fi
echo "   with the alerts renamed the tests fail, as they should"

echo "== $dashboard"
jq empty "$dashboard" || fail "$dashboard is not valid JSON"
jq -e '
	(.templating.list | any(.name == "datasource" and .type == "datasource" and .query == "prometheus"))
	and ([.panels[] | select(.type != "row")] | length > 0)
	and all(.panels[] | select(.type != "row"); .datasource.uid == "${datasource}" and all(.targets[]; .datasource.uid == "${datasource}" and (.expr | length > 0)))
' "$dashboard" >/dev/null || fail "$dashboard: every panel and query must use the \${datasource} variable and have an expression"
echo "   $(jq '[.panels[] | select(.type != "row")] | length' "$dashboard") panels, $(jq '[.panels[].targets[]?] | length' "$dashboard") queries"

# Its queries are PromQL that promtool parses: each, with Grafana's
# variables put in ($__rate_interval a duration, the others a regex), as a
# recording rule of a file promtool checks.
jq -r '
	"groups:", "  - name: dashboard", "    rules:",
	([.panels[].targets[]?.expr] | to_entries[] |
		"      - record: dashboard:query_\(.key)",
		"        expr: \(.value | gsub("\\$__(rate_interval|interval|range)"; "5m") | gsub("\\$\\{?[a-z_]+\\}?"; ".*") | tojson)")
' "$dashboard" >"$tmp/dashboard-queries.yaml"
promtool check rules "$tmp/dashboard-queries.yaml" >"$tmp/dashboard-queries.out" 2>&1 ||
	fail "a query of $dashboard is not valid PromQL: $(cat "$tmp/dashboard-queries.out")"
echo "   its queries are valid PromQL (promtool check rules)"

echo "check-monitoring: ok"
