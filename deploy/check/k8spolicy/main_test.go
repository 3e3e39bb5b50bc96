package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const manifests = "../../kubernetes"

// loadEdited loads the repository's manifests with one text replacement
// applied to one of them.
func loadEdited(t *testing.T, file, old, new string) []*object {
	t.Helper()
	if old == "" {
		return loadEdits(t)
	}
	return loadEdits(t, edit{file, old, new})
}

// edit replaces old, which must be in file once, with new.
type edit struct{ file, old, new string }

// loadEdits loads the repository's manifests with edits applied in order.
func loadEdits(t *testing.T, edits ...edit) []*object {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(manifests, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", manifests, err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, e := range edits {
			if filepath.Base(f) != e.file {
				continue
			}
			if strings.Count(s, e.old) != 1 {
				t.Fatalf("%s holds %q %d times, want once: fix the test's edit", e.file, e.old, strings.Count(s, e.old))
			}
			s = strings.Replace(s, e.old, e.new, 1)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, dst)
	}
	objs, err := load(out)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return objs
}

func TestCheck_Manifests(t *testing.T) {
	objs := loadEdited(t, "", "", "")
	if problems := check(objs); len(problems) != 0 {
		t.Errorf("check(the repository's manifests) = %q, want no problem", problems)
	}
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.Kind] = true
	}
	if !kinds["Secret"] || !kinds["Deployment"] {
		t.Errorf("manifests hold %v, want a Secret and a Deployment", kinds)
	}
}

// Each edit breaks one rule, and check must say so.
func TestCheck_Edits(t *testing.T) {
	const dep, sec = "deployment.yaml", "secret.yaml"
	tests := []struct {
		name, file, old, new string
		want                 string // in one of the problems
	}{
		{"not a native sidecar", dep, "restartPolicy: Always # a native sidecar", "# restartPolicy: Always", "restartPolicy"},
		{"listening on every interface", dep, `"127.0.0.1:8080" # localhost only`, `"0.0.0.0:8080" # localhost only`, "listen on 127.0.0.1"},
		{"address unset", dep, "- name: SYMCACHE_ADDR\n", "- name: SYMCACHE_ADDR_UNUSED\n", "SYMCACHE_ADDR is not set"},
		{"secret name typo", dep, "name: symcache-redis\n", "name: symcache-redis-typo\n", `Secret "symcache-redis-typo"`},
		{"secret key typo", dep, "key: REDIS_URL", "key: REDIS_URI", `key "REDIS_URI"`},
		{"redis url inline", dep, "valueFrom:\n                secretKeyRef:\n                  name: symcache-redis\n                  key: REDIS_URL",
			`value: "redis://:pw@redis:6379/0"`, "REDIS_URL is written inline"},
		{"sentinel password inline", dep, "- name: SYMCACHE_ADDR\n", "- name: REDIS_SENTINEL_PASSWORD\n              value: \"s3cret\"\n            - name: SYMCACHE_ADDR\n", "REDIS_SENTINEL_PASSWORD is written inline"},
		{"admin token inline", dep, "- name: SYMCACHE_ADDR\n", "- name: SYMCACHE_ADMIN_TOKEN\n              value: \"t0ken\"\n            - name: SYMCACHE_ADDR\n", "SYMCACHE_ADMIN_TOKEN is written inline"},
		{"real secret committed", sec, "redis://:REPLACE_ME@redis.example.invalid:6379/0", "redis://:s3cret@redis.prod:6379/0", "placeholder"},
		{"httpGet readiness on loopback", dep,
			`exec:
              command: ["/sidecar", "healthcheck", "-url", "/readyz", "-timeout", "2s"]
            periodSeconds: 10`,
			`httpGet:
              path: /readyz
              port: 8080
            periodSeconds: 10`, "pod's IP"},
		{"liveness on readyz", dep, `"-url", "/healthz"`, `"-url", "/readyz"`, "livenessProbe: probes /readyz, want /healthz"},
		{"probe on another port", dep, `"-url", "/healthz"`, `"-url", "http://127.0.0.1:9090/healthz"`, "not symcache's own address"},
		{"probe of another binary", dep, `["/sidecar", "healthcheck", "-url", "/healthz"`, `["/bin/sh", "-c", "curl /healthz"`, "livenessProbe: exec"},
		{"probe timeout too short", dep, "timeoutSeconds: 3\n            failureThreshold: 90", "timeoutSeconds: 2\n            failureThreshold: 90", "timeoutSeconds 2s is not longer"},
		{"no startup probe", dep, "startupProbe:", "startupProbeGone:", "startupProbe is missing"},
		{"memory limit too small", dep, "memory: 128Mi", "memory: 48Mi", "want at least 72 MiB"},
		{"no memory limit", dep, "              cpu: \"2\"\n              memory: 128Mi", "              cpu: \"2\"", "resources.limits.memory is missing"},
		{"request above limit", dep, "memory: 64Mi", "memory: 200Mi", "above the limit"},
		{"GOMEMLIMIT over the limit", dep, `value: "96MiB"`, `value: "160MiB"`, "GOMEMLIMIT 160MiB is not below"},
		{"GOMEMLIMIT no room for a probe", dep, `value: "96MiB"`, `value: "120MiB"`, "leaves less than 12 MiB"},
		{"GOMEMLIMIT not a size", dep, `value: "96MiB"`, `value: "96Mi"`, `GOMEMLIMIT "96Mi" is not a size`},
		{"GOMEMLIMIT unset", dep, "- name: GOMEMLIMIT\n", "- name: GOMEMLIMIT_UNUSED\n", "GOMEMLIMIT is not set"},
		{"GOMEMLIMIT the limit itself", dep, `value: "96MiB"`, "valueFrom:\n                resourceFieldRef: {resource: limits.memory, divisor: \"1\"}", "GOMEMLIMIT from limits.memory (128Mi) is not below"},
		{"GOMEMLIMIT in MiB without a unit", dep, `value: "96MiB"`, "valueFrom:\n                resourceFieldRef: {resource: limits.memory, divisor: 1Mi}", "which Go reads as bytes"},
		{"drain longer than the grace", dep, "- name: SYMCACHE_ADDR\n", "- name: SYMCACHE_DRAIN_TIMEOUT\n              value: \"60s\"\n            - name: SYMCACHE_ADDR\n", "no time for its 1m0s drain"},
		{"drain not a duration", dep, "- name: SYMCACHE_ADDR\n", "- name: SYMCACHE_DRAIN_TIMEOUT\n              value: \"15\"\n            - name: SYMCACHE_ADDR\n", "SYMCACHE_DRAIN_TIMEOUT \"15\""},
		{"cpu limit that throttles", dep, `cpu: "2"`, `cpu: 500m`, "below 2"},
		{"writable root", dep, "            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n            privileged: false\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts",
			"            readOnlyRootFilesystem: false\n            allowPrivilegeEscalation: false\n            privileged: false\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts", "symcache: readOnlyRootFilesystem"},
		{"capabilities kept", dep, "              drop: [\"ALL\"]\n          volumeMounts", "              drop: [\"NET_RAW\"]\n          volumeMounts", "drop does not hold ALL"},
		{"root", dep, "runAsUser: 65532 # distroless", "runAsUser: 0 #", "runAsUser is 0"},
		{"no seccomp", dep, "        seccompProfile:\n          type: RuntimeDefault\n", "", "seccompProfile"},
		{"state on a hostPath", dep, "emptyDir:\n            sizeLimit: 32Mi", "hostPath:\n            path: /var/lib/symcache", "want an emptyDir"},
		{"state unmounted", dep, "mountPath: /var/lib/symcache", "mountPath: /data", "nothing is mounted at SYMCACHE_STATE_DIR"},
		{"unsized emptyDir", dep, "emptyDir:\n            sizeLimit: 32Mi", "emptyDir: {}", "no sizeLimit"},
		{"latest image", dep, "symcache:0.2.0", "symcache:latest", "no version tag"},
		{"selector mismatch", dep, "    matchLabels:\n      app.kubernetes.io/name: trading-app", "    matchLabels:\n      app.kubernetes.io/name: other-app", "not a label of the pod template"},
		{"short grace", dep, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 10", "drain"},
		{"symcache as a plain container", dep, "      containers:\n        - name: app", "      containers:\n        - name: symcache-copy\n          image: registry.example.com/symcache:0.2.0\n        - name: app", "native sidecar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := check(loadEdited(t, tt.file, tt.old, tt.new))
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("check(edited %s) = %q, want a problem saying %q", tt.file, problems, tt.want)
		})
	}
}

// The admin token example of the manifests, uncommented: the token file is
// a key of a Secret the manifests define, mounted as a volume.
var adminToken = []edit{
	{"deployment.yaml", "            # - name: SYMCACHE_ADMIN_TOKEN_FILE\n            #   value: /var/run/secrets/symcache/token\n",
		"            - name: SYMCACHE_ADMIN_TOKEN_FILE\n              value: /var/run/secrets/symcache/token\n"},
	{"deployment.yaml", "            # - name: symcache-admin # the admin token, see SYMCACHE_ADMIN_TOKEN_FILE\n            #   mountPath: /var/run/secrets/symcache\n            #   readOnly: true\n",
		"            - name: symcache-admin\n              mountPath: /var/run/secrets/symcache\n              readOnly: true\n"},
	{"deployment.yaml", "        # - name: symcache-admin\n        #   secret:\n        #     secretName: symcache-admin\n        #     defaultMode: 0440\n",
		"        - name: symcache-admin\n          secret:\n            secretName: symcache-admin\n            defaultMode: 0440\n"},
	{"secret.yaml", "# ---\n# apiVersion: v1\n# kind: Secret\n# metadata:\n#   name: symcache-admin\n#   labels:\n#     app.kubernetes.io/name: symcache\n#     app.kubernetes.io/component: cache-sidecar\n# type: Opaque\n# stringData:\n#   token: \"REPLACE_ME\"\n",
		"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: symcache-admin\n  labels:\n    app.kubernetes.io/name: symcache\n    app.kubernetes.io/component: cache-sidecar\ntype: Opaque\nstringData:\n  token: \"REPLACE_ME\"\n"},
}

func TestCheck_AdminTokenFile(t *testing.T) {
	objs := loadEdits(t, adminToken...)
	if problems := check(objs); len(problems) != 0 {
		t.Fatalf("check(the manifests with the admin token example uncommented) = %q, want no problem", problems)
	}
	secrets := 0
	for _, o := range objs {
		if o.Kind == "Secret" {
			secrets++
		}
	}
	if secrets != 2 {
		t.Fatalf("Secrets = %d, want 2 (symcache-redis and symcache-admin)", secrets)
	}

	tests := []struct {
		name string
		edit edit
		want string
	}{
		{"not mounted", edit{"deployment.yaml", "mountPath: /var/run/secrets/symcache\n", "mountPath: /var/run/secrets/other\n"}, "nothing is mounted at SYMCACHE_ADMIN_TOKEN_FILE"},
		{"on an emptyDir", edit{"deployment.yaml", "          secret:\n            secretName: symcache-admin\n            defaultMode: 0440\n", "          emptyDir: {}\n"}, "want a Secret volume"},
		{"unknown Secret", edit{"deployment.yaml", "secretName: symcache-admin", "secretName: symcache-admin-typo"}, `Secret "symcache-admin-typo"`},
		{"wrong key", edit{"deployment.yaml", "value: /var/run/secrets/symcache/token", "value: /var/run/secrets/symcache/admin-token"}, `key "admin-token"`},
		{"both ways", edit{"deployment.yaml", "- name: SYMCACHE_ADDR\n", "- name: SYMCACHE_ADMIN_TOKEN\n              valueFrom:\n                secretKeyRef: {name: symcache-admin, key: token}\n            - name: SYMCACHE_ADDR\n"}, "both set"},
		{"real token committed", edit{"secret.yaml", `token: "REPLACE_ME"`, `token: "0123456789abcdef"`}, "placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := check(loadEdits(t, append(adminToken[:len(adminToken):len(adminToken)], tt.edit)...))
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("check(edited) = %q, want a problem saying %q", problems, tt.want)
		})
	}
}

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		bad  bool
	}{
		{"50m", 0.05, false}, {"2", 2, false}, {"0.5", 0.5, false}, {"64Mi", 64 << 20, false},
		{"1Gi", 1 << 30, false}, {"128M", 128e6, false}, {"1k", 1000, false},
		{"", 0, true}, {"lots", 0, true}, {"-1", 0, true}, {"12XB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseQuantity(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("parseQuantity(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseGoSize(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		bad  bool
	}{
		{"96MiB", 96 << 20, false}, {"1GiB", 1 << 30, false}, {"1000", 1000, false}, {"512B", 512, false},
		{"96Mi", 0, true}, {"96MB", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseGoSize(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("parseGoSize(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}
