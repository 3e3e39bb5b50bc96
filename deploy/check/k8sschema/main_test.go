package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestFileName(t *testing.T) {
	tests := []struct{ kind, group, version, want string }{
		{"Deployment", "apps", "v1", "deployment-apps-v1.json"},
		{"Secret", "", "v1", "secret-v1.json"},
		{"NetworkPolicy", "networking.k8s.io", "v1", "networkpolicy-networking-v1.json"},
	}
	for _, tt := range tests {
		if got := fileName(tt.kind, tt.group, tt.version); got != tt.want {
			t.Errorf("fileName(%q, %q, %q) = %q, want %q", tt.kind, tt.group, tt.version, got, tt.want)
		}
	}
}

func TestRun(t *testing.T) {
	kc := t.TempDir()
	defs := map[string]any{"definitions": map[string]any{
		"io.k8s.api.core.v1.Pod": map[string]any{
			"type":                            "object",
			"properties":                      map[string]any{"spec": map[string]any{"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}},
			"x-kubernetes-group-version-kind": []any{map[string]any{"group": "", "version": "v1", "kind": "Pod"}},
		},
		"io.k8s.api.core.v1.PodSpec": map[string]any{
			"properties": map[string]any{
				"containers":   map[string]any{"type": "array", "items": map[string]any{"properties": map[string]any{"name": map[string]any{"type": "string"}}}},
				"nodeSelector": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			},
		},
	}}
	b, _ := json.Marshal(defs)
	b = append(b, make([]byte, 100<<10)...) // the finder skips small files
	for i := range 100 << 10 {
		b[len(b)-1-i] = ' '
	}
	if err := os.MkdirAll(filepath.Join(kc, "fixtures", "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kc, "fixtures", "cache", "0123abcd"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	n, _, err := run(kc, out)
	if err != nil || n != 1 {
		t.Fatalf("run = %d, %v; want 1 kind", n, err)
	}
	var ref map[string]string
	readJSON(t, filepath.Join(out, "master-strict", "pod-v1.json"), &ref)
	if ref["$ref"] != "_definitions.json#/definitions/io.k8s.api.core.v1.Pod" {
		t.Errorf("pod-v1.json = %v", ref)
	}
	var strict, loose struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	readJSON(t, filepath.Join(out, "master-strict", "_definitions.json"), &strict)
	readJSON(t, filepath.Join(out, "master", "_definitions.json"), &loose)
	if strict.Definitions["io.k8s.api.core.v1.PodSpec"]["additionalProperties"] != false {
		t.Errorf("strict PodSpec = %v, want additionalProperties false", strict.Definitions["io.k8s.api.core.v1.PodSpec"])
	}
	item := strict.Definitions["io.k8s.api.core.v1.PodSpec"]["properties"].(map[string]any)["containers"].(map[string]any)["items"].(map[string]any)
	if item["additionalProperties"] != false {
		t.Errorf("strict container item = %v, want additionalProperties false", item)
	}
	sel := strict.Definitions["io.k8s.api.core.v1.PodSpec"]["properties"].(map[string]any)["nodeSelector"].(map[string]any)
	if _, ok := sel["additionalProperties"].(map[string]any); !ok {
		t.Errorf("strict nodeSelector = %v, want its additionalProperties schema kept", sel)
	}
	if _, set := loose.Definitions["io.k8s.api.core.v1.PodSpec"]["additionalProperties"]; set {
		t.Errorf("master/ PodSpec = %v, want it as shipped", loose.Definitions["io.k8s.api.core.v1.PodSpec"])
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
