#!/usr/bin/env bash
# make check-manifests: deploy/kubernetes/*.yaml checked offline, without a
# cluster.
#
#  1. kubeconform (a Go tool of the deploy/check module) validates every
#     object against the Kubernetes JSON schemas, strictly: unknown or
#     misspelt fields and wrong types are errors. It normally downloads the
#     schemas; here they come from the definitions the kubeconform module
#     ships among its test fixtures (the "master" schemas, about Kubernetes
#     1.33), laid out by deploy/check/k8sschema. A deliberately broken copy
#     must fail, so that a skipped or empty schema cannot pass unnoticed.
#  2. deploy/check/k8spolicy checks what no schema knows (see its doc
#     comment): symcache as a native sidecar on 127.0.0.1 only, exec probes
#     through `/sidecar healthcheck` on /healthz and /readyz, REDIS_URL from a
#     Secret the manifests define (holding only the placeholder), the state
#     folder on a sized emptyDir, measured resources, and a restricted
#     security context for every container. Its own tests run first.
set -euo pipefail
cd "$(dirname "$0")/../deploy/check"
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "check-manifests: FAIL: $*" >&2
	exit 1
}
manifests=(../kubernetes/*.yaml)

echo "== go vet and tests of deploy/check"
$GO vet ./...
$GO test -count=1 ./k8spolicy ./k8sschema

echo "== Kubernetes schemas from the kubeconform module"
$GO mod download github.com/yannh/kubeconform
kc_dir=$($GO list -m -f '{{.Dir}}' github.com/yannh/kubeconform)
$GO run ./k8sschema -kubeconform "$kc_dir" -out "$tmp/schemas"
location="$tmp/schemas/{{ .NormalizedKubernetesVersion }}{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
kubeconform() { $GO tool kubeconform -strict -schema-location "$location" "$@"; }

echo "== kubeconform -strict"
kubeconform -summary -verbose "${manifests[@]}"

sed 's/restartPolicy: Always/restartPolicyTypo: Always/' ../kubernetes/deployment.yaml >"$tmp/broken.yaml"
if kubeconform "$tmp/broken.yaml" >"$tmp/broken.out" 2>&1; then
	fail "kubeconform passed a Deployment with an unknown field: the schemas are not being used"
fi
grep -q "restartPolicyTypo" "$tmp/broken.out" || fail "kubeconform failed on the broken copy, but not for its unknown field: $(cat "$tmp/broken.out")"
echo "   a copy with an unknown field is rejected, as it should be"

echo "== k8spolicy"
$GO run ./k8spolicy "${manifests[@]}"

echo "check-manifests: ok"
