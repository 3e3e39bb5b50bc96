// Command k8sschema lays out Kubernetes JSON schemas for kubeconform to use
// offline, from the definitions file that the kubeconform module ships among
// its test fixtures (the "master" schemas of kubernetes-json-schema, about
// Kubernetes 1.33; native sidecars are in it).
//
//	go run ./k8sschema -kubeconform "$(go list -m -f '{{.Dir}}' github.com/yannh/kubeconform)" -out DIR
//
// DIR gets the layout of kubernetes-json-schema for version "master":
// master/ and master-strict/ (every object closed to unknown fields, as
// kubeconform -strict expects), each with _definitions.json and one
// <kind>[-<group>]-<version>.json per kind, a reference into the definitions.
// kubeconform then takes
//
//	-strict -schema-location 'DIR/{{ .NormalizedKubernetesVersion }}{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	kc := flag.String("kubeconform", "", "folder of the kubeconform module (go list -m -f '{{.Dir}}' github.com/yannh/kubeconform)")
	out := flag.String("out", "", "folder to write the schemas to")
	flag.Parse()
	if *kc == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	n, src, err := run(*kc, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
	fmt.Printf("k8sschema: %d kinds from %s\n", n, src)
}

// run finds the definitions under the kubeconform module and writes the
// schemas; it returns how many kinds it wrote and the file it used.
func run(kubeconformDir, out string) (int, string, error) {
	src, defs, err := findDefinitions(filepath.Join(kubeconformDir, "fixtures"))
	if err != nil {
		return 0, "", err
	}
	var n int
	for _, strict := range []bool{false, true} {
		dir := filepath.Join(out, "master")
		d := defs
		if strict {
			dir += "-strict"
			d = closeObjects(cloneJSON(defs))
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, "", err
		}
		if err := writeJSON(filepath.Join(dir, "_definitions.json"), map[string]any{"definitions": d}); err != nil {
			return 0, "", err
		}
		n = 0
		for name, def := range d {
			gvks, _ := def.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
			for _, g := range gvks {
				gvk, _ := g.(map[string]any)
				group, _ := gvk["group"].(string)
				version, _ := gvk["version"].(string)
				kind, _ := gvk["kind"].(string)
				if kind == "" || version == "" {
					continue
				}
				file := filepath.Join(dir, fileName(kind, group, version))
				if _, err := os.Stat(file); err == nil {
					continue // a kind served in several groups: the first wins
				}
				ref := map[string]any{"$ref": "_definitions.json#/definitions/" + name}
				if err := writeJSON(file, ref); err != nil {
					return 0, "", err
				}
				n++
			}
		}
	}
	return n, src, nil
}

// fileName is kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json:
// deployment-apps-v1.json, secret-v1.json.
func fileName(kind, group, version string) string {
	suffix := ""
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0])
	}
	return strings.ToLower(kind) + suffix + "-" + strings.ToLower(version) + ".json"
}

// findDefinitions looks for the JSON file whose definitions include the core
// Pod: kubeconform's fixtures name their cached files by hash.
func findDefinitions(root string) (string, map[string]any, error) {
	var found string
	var defs map[string]any
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		if info, err := d.Info(); err != nil || info.Size() < 100<<10 {
			return err // the definitions are over a megabyte
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc struct {
			Definitions map[string]any `json:"definitions"`
		}
		if json.Unmarshal(b, &doc) != nil {
			return nil
		}
		if _, ok := doc.Definitions["io.k8s.api.core.v1.Pod"]; ok {
			found, defs = path, doc.Definitions
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	if found == "" {
		return "", nil, errors.New("no Kubernetes definitions under " + root + " (has the kubeconform module changed?)")
	}
	return found, defs, nil
}

// closeObjects sets additionalProperties: false on every schema that lists
// properties and says nothing of others, as kubernetes-json-schema's strict
// variant does. defs maps definition names to schemas.
func closeObjects(defs map[string]any) map[string]any {
	for _, d := range defs {
		closeSchema(d)
	}
	return defs
}

func closeSchema(v any) {
	s, ok := v.(map[string]any)
	if !ok {
		return
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if _, set := s["additionalProperties"]; !set {
			s["additionalProperties"] = false
		}
		for _, p := range props {
			closeSchema(p)
		}
	}
	closeSchema(s["items"])
	closeSchema(s["additionalProperties"])
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		list, _ := s[k].([]any)
		for _, c := range list {
			closeSchema(c)
		}
	}
}

func cloneJSON(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
