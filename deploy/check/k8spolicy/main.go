// Command k8spolicy checks symcache's Kubernetes manifests for what a schema
// cannot see: symcache runs as a native sidecar listening on loopback only,
// probed through `/sidecar healthcheck`, with its Redis URL from a Secret
// that the manifests define (holding only the placeholder) and its admin
// token, if any, from a Secret mounted as a file, its state on a sized
// emptyDir, resources that fit what was measured (GOMEMLIMIT set, below the
// memory limit by an exec probe at least), a grace period longer than its
// drain, and a restricted security context for every container.
//
//	go run ./k8spolicy ../kubernetes/*.yaml
//
// It prints one line per problem and exits 1 if there is any. kubeconform
// checks the same files against the Kubernetes schemas
// (scripts/check-manifests.sh runs both).
package main

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// secretEnv are the sidecar's settings that hold secrets: never written
// inline in a manifest.
var secretEnv = []string{"REDIS_URL", "REDIS_SENTINEL_PASSWORD", "SYMCACHE_ADMIN_TOKEN"}

// tokenFileEnv names the file holding the admin token: a key of a Secret
// volume.
const tokenFileEnv = "SYMCACHE_ADMIN_TOKEN_FILE"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8spolicy FILE.yaml...")
		os.Exit(2)
	}
	objs, err := load(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8spolicy:", err)
		os.Exit(1)
	}
	problems := check(objs)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Printf("k8spolicy: %d problem(s)\n", len(problems))
		os.Exit(1)
	}
	fmt.Printf("k8spolicy: %d objects in %d files: ok\n", len(objs), len(os.Args)-1)
}

// What the image and the measurements fix.
const (
	binary          = "/sidecar"       // the Dockerfile's COPY target and ENTRYPOINT
	minMemoryLimit  = 72 << 20         // worst RSS seen (59 MiB) + one exec probe (12 MiB)
	probeMemory     = 12 << 20         // one exec probe's process, in the container's cgroup
	defaultDrain    = 15 * time.Second // SYMCACHE_DRAIN_TIMEOUT's default: the sidecar's graceful stop, at most
	appDrainSeconds = 5                // the least the grace period leaves beyond symcache's drain
	defaultProbeTO  = 2 * time.Second  // `sidecar healthcheck -timeout` default
	placeholderMark = "REPLACE_ME"     // the only secret value that may be committed
	imageName       = "symcache"       // the container (or image) that is symcache
	minCPULimit     = 2.0              // Go's GOMAXPROCS floor under a CPU limit
	defaultTimeout  = 1                // Kubernetes' default probe timeoutSeconds
	healthzPath     = "/healthz"
	readyzPath      = "/readyz"
)

// object is one manifest document, with what the checks read.
type object struct {
	file string

	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       yaml.Node         `yaml:"spec"`
}

func (o *object) String() string { return fmt.Sprintf("%s: %s %s", o.file, o.Kind, o.Metadata.Name) }

type deploymentSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Ports []struct {
		Port       int       `yaml:"port"`
		TargetPort yaml.Node `yaml:"targetPort"`
	} `yaml:"ports"`
}

type podSpec struct {
	InitContainers                []container      `yaml:"initContainers"`
	Containers                    []container      `yaml:"containers"`
	Volumes                       []volume         `yaml:"volumes"`
	SecurityContext               *securityContext `yaml:"securityContext"`
	TerminationGracePeriodSeconds *int             `yaml:"terminationGracePeriodSeconds"`
}

type container struct {
	Name          string   `yaml:"name"`
	Image         string   `yaml:"image"`
	RestartPolicy string   `yaml:"restartPolicy"`
	Env           []envVar `yaml:"env"`
	EnvFrom       []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports          []yaml.Node `yaml:"ports"`
	StartupProbe   *probe      `yaml:"startupProbe"`
	ReadinessProbe *probe      `yaml:"readinessProbe"`
	LivenessProbe  *probe      `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string  `yaml:"name"`
	Value     *string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		ResourceFieldRef *struct {
			ContainerName string `yaml:"containerName"`
			Resource      string `yaml:"resource"`
			Divisor       string `yaml:"divisor"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

// envVar returns the variable name as the container sets it, if it does.
func (c *container) envVar(name string) (envVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return envVar{}, false
}

// env is the literal value of the variable name, and whether it is set.
func (c *container) env(name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.Value != nil {
			return *e.Value, true
		}
	}
	return "", false
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
		Host string    `yaml:"host"`
	} `yaml:"httpGet"`
	TCPSocket      *yaml.Node `yaml:"tcpSocket"`
	GRPC           *yaml.Node `yaml:"grpc"`
	TimeoutSeconds int        `yaml:"timeoutSeconds"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool `yaml:"privileged"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type volume struct {
	Name     string `yaml:"name"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

// load decodes every document of every file.
func load(files []string) ([]*object, error) {
	var objs []*object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			o := &object{file: filepath.Base(f)}
			err := dec.Decode(o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, i+1, err)
			}
			if o.Kind == "" && o.APIVersion == "" {
				continue // an empty document
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// check returns one line per problem found across the objects.
func check(objs []*object) []string {
	var problems []string
	bad := func(o *object, format string, args ...any) {
		problems = append(problems, o.String()+": "+fmt.Sprintf(format, args...))
	}
	secrets := map[string]map[string]bool{} // name → keys
	for _, o := range objs {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			bad(o, "apiVersion, kind and metadata.name are required")
		}
		if o.Kind != "Secret" {
			continue
		}
		keys := map[string]bool{}
		for k, v := range o.StringData {
			keys[k] = true
			if !strings.Contains(v, placeholderMark) {
				bad(o, "stringData.%s holds a value: only the %s placeholder may be committed", k, placeholderMark)
			}
		}
		for k, v := range o.Data {
			keys[k] = true
			if d, err := base64.StdEncoding.DecodeString(v); err != nil || !strings.Contains(string(d), placeholderMark) {
				bad(o, "data.%s holds a value: only the %s placeholder may be committed", k, placeholderMark)
			}
		}
		secrets[o.Metadata.Name] = keys
	}

	var sidecarPorts []string // the ports symcache listens on, for the Service check
	workloads := 0
	for _, o := range objs {
		var spec podSpec
		switch {
		case o.Kind == "Deployment" && o.APIVersion == "apps/v1":
			var d deploymentSpec
			if err := o.Spec.Decode(&d); err != nil {
				bad(o, "spec: %v", err)
				continue
			}
			if len(d.Selector.MatchLabels) == 0 {
				bad(o, "spec.selector.matchLabels is empty")
			}
			for k, v := range d.Selector.MatchLabels {
				if d.Template.Metadata.Labels[k] != v {
					bad(o, "spec.selector.matchLabels %s=%s is not a label of the pod template", k, v)
				}
			}
			spec = d.Template.Spec
		case o.Kind == "Pod" && o.APIVersion == "v1":
			if err := o.Spec.Decode(&spec); err != nil {
				bad(o, "spec: %v", err)
				continue
			}
		default:
			continue
		}
		workloads++
		p := podChecker{o: o, spec: &spec, secrets: secrets, bad: func(format string, args ...any) { bad(o, format, args...) }}
		if port := p.check(); port != "" {
			sidecarPorts = append(sidecarPorts, port)
		}
	}
	if workloads == 0 {
		problems = append(problems, "no Deployment or Pod in the manifests")
	}
	for _, o := range objs {
		if o.Kind != "Service" {
			continue
		}
		var s serviceSpec
		if err := o.Spec.Decode(&s); err != nil {
			bad(o, "spec: %v", err)
			continue
		}
		for _, sp := range s.Ports {
			target := cmp.Or(sp.TargetPort.Value, strconv.Itoa(sp.Port))
			if slices.Contains(sidecarPorts, target) {
				bad(o, "exposes port %s, symcache's: it is for the pod's own app only", target)
			}
		}
	}
	return problems
}

// podChecker checks one pod template.
type podChecker struct {
	o       *object
	spec    *podSpec
	secrets map[string]map[string]bool
	bad     func(format string, args ...any)
}

// check checks the pod and returns the port symcache listens on.
func (p *podChecker) check() string {
	var sidecar *container
	for i := range p.spec.InitContainers {
		if c := &p.spec.InitContainers[i]; isSymcache(c) {
			if sidecar != nil {
				p.bad("more than one symcache container")
			}
			sidecar = c
		}
	}
	for i := range p.spec.Containers {
		if c := &p.spec.Containers[i]; isSymcache(c) {
			p.bad("container %s: run symcache as a native sidecar (an initContainers entry with restartPolicy: Always), so that it starts before the app and stops after it", c.Name)
		}
	}
	if len(p.spec.Containers) == 0 {
		p.bad("no app container beside symcache")
	}
	all := slices.Concat(p.spec.InitContainers, p.spec.Containers)
	for i := range all {
		p.checkSecurity(&all[i])
		p.checkSecretRefs(&all[i])
		p.checkImage(&all[i])
	}
	if sidecar == nil {
		p.bad("no symcache container in initContainers")
		return ""
	}
	p.checkGrace(sidecar)
	return p.checkSidecar(sidecar)
}

// checkGrace checks that the pod's grace period leaves symcache its drain
// (SYMCACHE_DRAIN_TIMEOUT) after the app's: past it, the kubelet kills
// symcache and its exit is not the clean one.
func (p *podChecker) checkGrace(c *container) {
	drain := defaultDrain
	if s, set := c.env("SYMCACHE_DRAIN_TIMEOUT"); set {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			p.bad("initContainers[%s]: SYMCACHE_DRAIN_TIMEOUT %q is not a positive duration such as 15s", c.Name, s)
			return
		}
		drain = d
	}
	grace := 30 // Kubernetes' default
	if g := p.spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if time.Duration(grace)*time.Second < drain+appDrainSeconds*time.Second {
		p.bad("terminationGracePeriodSeconds %d leaves symcache no time for its %s drain after the app's (want at least %d s more than the drain)", grace, drain, appDrainSeconds)
	}
}

func isSymcache(c *container) bool {
	repo := c.Image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return c.Name == imageName || repo == imageName || strings.HasSuffix(repo, "/"+imageName)
}

func (p *podChecker) checkSidecar(c *container) string {
	where := "initContainers[" + c.Name + "]"
	if c.RestartPolicy != "Always" {
		p.bad("%s: restartPolicy is %q, want Always (a native sidecar; otherwise the app waits for it to exit)", where, c.RestartPolicy)
	}
	addr, ok := c.env("SYMCACHE_ADDR")
	if !ok {
		p.bad("%s: SYMCACHE_ADDR is not set: the image listens on 0.0.0.0:8080, reachable on the pod's IP", where)
		addr = "0.0.0.0:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.bad("%s: SYMCACHE_ADDR %q is not host:port", where, addr)
		return ""
	}
	loopback := host == "localhost" || net.ParseIP(host).IsLoopback()
	if !loopback {
		p.bad("%s: SYMCACHE_ADDR %q: listen on 127.0.0.1 so that only the pod's own app can reach symcache", where, addr)
	}
	if len(c.Ports) > 0 {
		p.bad("%s: declares ports, but symcache is for the pod's own app only (it listens on %s)", where, addr)
	}

	// The Redis URL holds a password: it comes from the Secret, never inline;
	// so do the other secrets, when set.
	for _, e := range c.Env {
		if slices.Contains(secretEnv, e.Name) && e.Value != nil {
			p.bad("%s: %s is written inline; take it from a Secret (valueFrom.secretKeyRef)", where, e.Name)
		}
	}
	if !slices.ContainsFunc(c.Env, func(e envVar) bool {
		return e.Name == "REDIS_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
	}) {
		p.bad("%s: REDIS_URL does not come from a Secret (valueFrom.secretKeyRef)", where)
	}
	p.checkTokenFile(where, c)

	// The state folder: writable although the root filesystem is not.
	if dir, ok := c.env("SYMCACHE_STATE_DIR"); !ok || dir == "" {
		p.bad("%s: SYMCACHE_STATE_DIR is not set (the on-disk last good copy, on an emptyDir)", where)
	} else {
		mounted := false
		for _, m := range c.VolumeMounts {
			if filepath.Clean(m.MountPath) != filepath.Clean(dir) {
				continue
			}
			mounted = true
			if m.ReadOnly {
				p.bad("%s: the volume at SYMCACHE_STATE_DIR %s is read-only", where, dir)
			}
			i := slices.IndexFunc(p.spec.Volumes, func(v volume) bool { return v.Name == m.Name })
			switch {
			case i < 0:
				p.bad("%s: volumeMount %s names no volume of the pod", where, m.Name)
			case p.spec.Volumes[i].EmptyDir == nil:
				p.bad("%s: SYMCACHE_STATE_DIR %s is on volume %s, want an emptyDir", where, dir, m.Name)
			case p.spec.Volumes[i].EmptyDir.SizeLimit == "":
				p.bad("%s: emptyDir %s has no sizeLimit", where, m.Name)
			}
		}
		if !mounted {
			p.bad("%s: nothing is mounted at SYMCACHE_STATE_DIR %s (the root filesystem is read-only)", where, dir)
		}
	}

	p.checkProbe(where+".startupProbe", c.StartupProbe, []string{readyzPath, healthzPath}, port, loopback)
	p.checkProbe(where+".readinessProbe", c.ReadinessProbe, []string{readyzPath}, port, loopback)
	p.checkProbe(where+".livenessProbe", c.LivenessProbe, []string{healthzPath}, port, loopback)
	p.checkResources(where, c)
	return port
}

// checkTokenFile checks SYMCACHE_ADMIN_TOKEN_FILE, when set: a literal path
// to a key of a Secret the manifests define, mounted as a volume; and not
// beside SYMCACHE_ADMIN_TOKEN, which the sidecar refuses.
func (p *podChecker) checkTokenFile(where string, c *container) {
	e, set := c.envVar(tokenFileEnv)
	if !set {
		return
	}
	if _, both := c.envVar("SYMCACHE_ADMIN_TOKEN"); both {
		p.bad("%s: SYMCACHE_ADMIN_TOKEN and %s are both set: the sidecar refuses to start", where, tokenFileEnv)
	}
	if e.Value == nil || *e.Value == "" {
		p.bad("%s: %s is not a path written in the manifest", where, tokenFileEnv)
		return
	}
	file := filepath.Clean(*e.Value)
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(filepath.Clean(m.MountPath), file)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		i := slices.IndexFunc(p.spec.Volumes, func(v volume) bool { return v.Name == m.Name })
		if i < 0 {
			p.bad("%s: volumeMount %s names no volume of the pod", where, m.Name)
			return
		}
		sv := p.spec.Volumes[i].Secret
		if sv == nil {
			p.bad("%s: %s %s is on volume %s, want a Secret volume", where, tokenFileEnv, file, m.Name)
			return
		}
		key := rel // without items, each key is a file named after it
		if len(sv.Items) > 0 {
			key = ""
			for _, it := range sv.Items {
				if filepath.Clean(it.Path) == rel {
					key = it.Key
				}
			}
			if key == "" {
				p.bad("%s: %s %s is none of the items of Secret volume %s", where, tokenFileEnv, file, m.Name)
				return
			}
		}
		keys, ok := p.secrets[sv.SecretName]
		switch {
		case !ok:
			p.bad("%s: volume %s reads Secret %q, which the manifests do not define", where, m.Name, sv.SecretName)
		case !keys[key]:
			p.bad("%s: %s %s is key %q of Secret %q, which it does not have", where, tokenFileEnv, file, key, sv.SecretName)
		}
		return
	}
	p.bad("%s: nothing is mounted at %s %s: mount the Secret holding the token as a volume", where, tokenFileEnv, file)
}

// checkProbe checks that a probe reaches symcache on the right path: with a
// loopback address only from inside the container, by exec.
func (p *podChecker) checkProbe(where string, pr *probe, paths []string, port string, loopback bool) {
	if pr == nil {
		p.bad("%s is missing", where)
		return
	}
	timeout := time.Duration(cmp.Or(pr.TimeoutSeconds, defaultTimeout)) * time.Second
	switch {
	case pr.Exec != nil:
		cmd := pr.Exec.Command
		if len(cmd) < 2 || cmd[0] != binary || cmd[1] != "healthcheck" {
			p.bad("%s: exec %q, want [%q, \"healthcheck\", ...]", where, cmd, binary)
			return
		}
		target, hcTimeout := readyzPath, defaultProbeTO
		for i := 2; i < len(cmd); i++ {
			name, val, hasVal := strings.Cut(strings.TrimLeft(cmd[i], "-"), "=")
			if !hasVal && i+1 < len(cmd) {
				i++
				val = cmd[i]
			}
			switch name {
			case "url":
				target = val
			case "timeout":
				d, err := time.ParseDuration(val)
				if err != nil {
					p.bad("%s: -timeout %q is not a duration", where, val)
				}
				hcTimeout = d
			default:
				p.bad("%s: unknown healthcheck flag %q", where, cmd[i])
			}
		}
		path := target
		if !strings.HasPrefix(target, "/") {
			u, err := url.Parse(target)
			if err != nil || u.Port() != port || !(u.Hostname() == "localhost" || net.ParseIP(u.Hostname()).IsLoopback()) {
				p.bad("%s: -url %q is not symcache's own address (port %s on loopback); a path such as /readyz follows SYMCACHE_ADDR", where, target, port)
				return
			}
			path = u.Path
		}
		if !slices.Contains(paths, path) {
			p.bad("%s: probes %s, want %s", where, path, strings.Join(paths, " or "))
		}
		if timeout <= hcTimeout {
			p.bad("%s: timeoutSeconds %s is not longer than the healthcheck's own -timeout %s", where, timeout, hcTimeout)
		}
	case pr.HTTPGet != nil:
		if loopback {
			p.bad("%s: httpGet is sent by the kubelet to the pod's IP, where symcache (on loopback) does not listen; use exec [%q, \"healthcheck\", \"-url\", %q]", where, binary, paths[0])
			return
		}
		if got := pr.HTTPGet.Port.Value; got != port {
			p.bad("%s: httpGet port %s, want %s (SYMCACHE_ADDR)", where, got, port)
		}
		if !slices.Contains(paths, pr.HTTPGet.Path) {
			p.bad("%s: probes %s, want %s", where, pr.HTTPGet.Path, strings.Join(paths, " or "))
		}
	default:
		p.bad("%s: want an exec probe running %s healthcheck", where, binary)
	}
}

func (p *podChecker) checkResources(where string, c *container) {
	for _, kind := range []string{"requests", "limits"} {
		m := c.Resources.Requests
		if kind == "limits" {
			m = c.Resources.Limits
		}
		for _, res := range []string{"cpu", "memory"} {
			if _, ok := m[res]; !ok && !(kind == "limits" && res == "cpu") {
				p.bad("%s: resources.%s.%s is missing", where, kind, res)
			}
		}
	}
	q := func(m map[string]string, res string) (float64, bool) {
		s, ok := m[res]
		if !ok {
			return 0, false
		}
		v, err := parseQuantity(s)
		if err != nil {
			p.bad("%s: resources %s %q: %v", where, res, s, err)
			return 0, false
		}
		return v, true
	}
	for _, res := range []string{"cpu", "memory"} {
		req, okReq := q(c.Resources.Requests, res)
		lim, okLim := q(c.Resources.Limits, res)
		if okReq && okLim && req > lim {
			p.bad("%s: resources.requests.%s is above the limit", where, res)
		}
	}
	memLimit, ok := q(c.Resources.Limits, "memory")
	if ok && memLimit < minMemoryLimit {
		p.bad("%s: resources.limits.memory is %.0f MiB, want at least %d MiB (the worst RSS measured plus an exec probe)", where, memLimit/(1<<20), minMemoryLimit>>20)
	}
	p.checkMemLimit(where, c, memLimit, ok)
	if cpu, ok := q(c.Resources.Limits, "cpu"); ok && cpu < minCPULimit {
		if _, set := c.env("GOMAXPROCS"); !set {
			p.bad("%s: resources.limits.cpu %s is below %g: Go runs at least %g threads, and the CFS quota would throttle them; raise it, drop it, or set GOMAXPROCS", where, c.Resources.Limits["cpu"], minCPULimit, minCPULimit)
		}
	}
}

// checkMemLimit checks GOMEMLIMIT: set, and below the memory limit by one
// exec probe at least. The probes' processes share the container's cgroup,
// so a Go runtime allowed the whole limit is killed when one runs; and
// Kubernetes cannot compute a fraction of the limit, so GOMEMLIMIT from a
// resourceFieldRef on limits.memory is the limit itself. A resourceFieldRef
// with a divisor other than 1 gives a number without a unit, which Go reads
// as bytes: GOMEMLIMIT=128 from 128Mi with divisor 1Mi.
func (p *podChecker) checkMemLimit(where string, c *container, memLimit float64, limitSet bool) {
	e, set := c.envVar("GOMEMLIMIT")
	if !set {
		p.bad("%s: GOMEMLIMIT is not set: set it below the memory limit (by %d MiB, an exec probe, at least), so that the GC works harder before the kernel kills the container", where, probeMemory>>20)
		return
	}
	var v float64
	var shown string
	switch {
	case e.Value != nil:
		var err error
		if v, err = parseGoSize(*e.Value); err != nil {
			p.bad("%s: GOMEMLIMIT %q is not a size such as 96MiB", where, *e.Value)
			return
		}
		shown = *e.Value
	case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
		ref := e.ValueFrom.ResourceFieldRef
		if ref.ContainerName != "" && ref.ContainerName != c.Name {
			p.bad("%s: GOMEMLIMIT comes from container %s's resources, not symcache's", where, ref.ContainerName)
			return
		}
		if d := cmp.Or(ref.Divisor, "1"); d != "1" {
			p.bad("%s: GOMEMLIMIT from resourceFieldRef %s with divisor %s is a number of %s without a unit, which Go reads as bytes; use divisor \"1\"", where, ref.Resource, d, d)
			return
		}
		var m map[string]string
		switch ref.Resource {
		case "limits.memory":
			m = c.Resources.Limits
		case "requests.memory":
			m = c.Resources.Requests
		default:
			p.bad("%s: GOMEMLIMIT from resourceFieldRef %s, want a memory limit or request", where, ref.Resource)
			return
		}
		q, err := parseQuantity(m["memory"])
		if err != nil {
			return // reported with the resources
		}
		v, shown = q, "from "+ref.Resource+" ("+m["memory"]+")"
	default:
		p.bad("%s: GOMEMLIMIT is neither a value nor a resourceFieldRef", where)
		return
	}
	switch {
	case !limitSet:
	case v >= memLimit:
		p.bad("%s: GOMEMLIMIT %s is not below the memory limit; set it below by %d MiB (an exec probe) at least", where, shown, probeMemory>>20)
	case memLimit-v < probeMemory:
		p.bad("%s: GOMEMLIMIT %s leaves less than %d MiB below the memory limit for an exec probe", where, shown, probeMemory>>20)
	}
}

// checkSecurity checks the restricted profile: non-root, no privilege
// escalation, no capabilities, read-only root, a seccomp profile.
func (p *podChecker) checkSecurity(c *container) {
	where := c.Name
	pod := cmp.Or(p.spec.SecurityContext, &securityContext{})
	sc := cmp.Or(c.SecurityContext, &securityContext{})
	pick := func(f func(*securityContext) *bool) *bool { return cmp.Or(f(sc), f(pod)) }
	if v := pick(func(s *securityContext) *bool { return s.RunAsNonRoot }); v == nil || !*v {
		p.bad("%s: runAsNonRoot is not true", where)
	}
	if u := cmp.Or(sc.RunAsUser, pod.RunAsUser); u != nil && *u == 0 {
		p.bad("%s: runAsUser is 0 (root)", where)
	}
	if v := sc.ReadOnlyRootFilesystem; v == nil || !*v {
		p.bad("%s: readOnlyRootFilesystem is not true", where)
	}
	if v := sc.AllowPrivilegeEscalation; v == nil || *v {
		p.bad("%s: allowPrivilegeEscalation is not false", where)
	}
	if v := sc.Privileged; v != nil && *v {
		p.bad("%s: privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		p.bad("%s: capabilities.drop does not hold ALL", where)
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		p.bad("%s: capabilities.add %v: symcache needs none", where, sc.Capabilities.Add)
	}
	prof := cmp.Or(sc.SeccompProfile, pod.SeccompProfile)
	if prof == nil || (prof.Type != "RuntimeDefault" && prof.Type != "Localhost") {
		p.bad("%s: no seccompProfile RuntimeDefault (or Localhost) on the pod or the container", where)
	}
}

// checkSecretRefs checks that every Secret a container reads is in the
// manifests, with that key.
func (p *podChecker) checkSecretRefs(c *container) {
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		keys, ok := p.secrets[ref.Name]
		switch {
		case !ok:
			p.bad("%s: env %s reads Secret %q, which the manifests do not define", c.Name, e.Name, ref.Name)
		case !keys[ref.Key]:
			p.bad("%s: env %s reads key %q of Secret %q, which it does not have", c.Name, e.Name, ref.Key, ref.Name)
		}
	}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			if _, ok := p.secrets[e.SecretRef.Name]; !ok {
				p.bad("%s: envFrom reads Secret %q, which the manifests do not define", c.Name, e.SecretRef.Name)
			}
		}
	}
}

// checkImage wants a pinned image: a tag other than latest, or a digest.
func (p *podChecker) checkImage(c *container) {
	img := c.Image
	if strings.Contains(img, "@sha256:") {
		return
	}
	slash := strings.LastIndex(img, "/")
	colon := strings.LastIndex(img, ":")
	if colon <= slash || img[colon+1:] == "latest" {
		p.bad("%s: image %q has no version tag (or is :latest)", c.Name, img)
	}
}

// parseQuantity reads a Kubernetes quantity such as 50m, 2, 64Mi or 1G.
func parseQuantity(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3},
	}
	mult := 1.0
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a quantity")
	}
	return v * mult, nil
}

// parseGoSize reads a size as GOMEMLIMIT takes it: bytes, or a number with
// B, KiB, MiB, GiB or TiB.
func parseGoSize(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("not a size")
			}
			return v * u.mult, nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return v, nil
}
