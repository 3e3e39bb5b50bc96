package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/l2/l2test"
)

// The monitoring files shipped in deploy/: a Grafana dashboard and
// Prometheus alerting rules (docs/operations.md#dashboard-and-alerts).
const (
	dashboardFile = "../../deploy/grafana/symcache.json"
	rulesFile     = "../../deploy/prometheus/symcache-rules.yaml"
)

// targetLabels are the labels Prometheus (or the scrape's relabelling)
// adds to every series of a target: the queries may name them, the sidecar
// does not export them.
var targetLabels = map[string]bool{"job": true, "instance": true, "pod": true, "namespace": true}

// TestMonitoring_NamesExported runs the sidecar with Redis, forwarding and
// every market, brings about the states some metric families need to be
// exported at all (a 429 and a 418 ban, forwarded answers carrying a used
// weight), scrapes /metrics, and checks every metric the dashboard and the
// alerting rules name against the scrape: the family, the label names of
// their selectors, groupings and templates, and the label values they
// match exactly. A name misspelt in either file fails it.
func TestMonitoring_NamesExported(t *testing.T) {
	exprs := monitoringExprs(t)
	fams := parseExposition(t, scrapeEveryFamily(t))

	var problems []string
	named := map[string]bool{}
	for _, e := range exprs {
		for _, p := range checkExpr(fams, e) {
			problems = append(problems, e.where+": "+p)
		}
		for _, n := range metricNames(e.text) {
			if f, _ := resolve(fams, n); f != nil {
				named[f.name] = true
			}
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(named) < 20 {
		t.Errorf("the dashboard and the rules name %d families the sidecar exports, want 20 or more: are their expressions read?", len(named))
	}
	var unshown []string
	for name := range fams {
		if strings.HasPrefix(name, "symcache_") && !named[name] {
			unshown = append(unshown, name)
		}
	}
	slices.Sort(unshown)
	t.Logf("%d families named in %d expressions; exported but named nowhere: %v", len(named), len(exprs), unshown)

	// The check itself: a misspelt name, label or label value in a copy of
	// either file is reported.
	for _, tt := range []struct{ file, from, to, want string }{
		{rulesFile, "symcache_refresh_lock_total{", "symcache_refresh_locks_total{", "symcache_refresh_locks_total"},
		{rulesFile, `result="lost"`, `outcome="lost"`, "label outcome"},
		{rulesFile, `result="lost"`, `result="lose"`, `"lose"`},
		{rulesFile, `code="418"`, `status="418"`, "label status"},
		{rulesFile, "$labels.market }}", "$labels.markets }}", "label markets"},
		{rulesFile, "sum without (operation)", "sum without (op)", "label op"},
		{dashboardFile, "symcache_l1_bytes{", "symcache_l1_byte{", "symcache_l1_byte,"},
		{dashboardFile, `tier=\"l1\"`, `tier=\"L1\"`, `"L1"`},
		{dashboardFile, "sum by (market, tier)", "sum by (market, teir)", "label teir"},
		{dashboardFile, "label_values(symcache_build_info, instance)", "label_values(symcache_buildinfo, instance)", "symcache_buildinfo,"},
	} {
		raw := readFile(t, tt.file)
		if !strings.Contains(raw, tt.from) {
			t.Fatalf("%s no longer holds %q: update this test", tt.file, tt.from)
		}
		mangled := strings.Replace(raw, tt.from, tt.to, 1)
		var es []expr
		if tt.file == rulesFile {
			es = rulesExprs(t, tt.file, mangled)
		} else {
			es = dashboardExprs(t, tt.file, mangled)
		}
		var got []string
		for _, e := range es {
			got = append(got, checkExpr(fams, e)...)
		}
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tt.want) }) {
			t.Errorf("%s with %q for %q: problems %q, want one naming %s", tt.file, tt.to, tt.from, got, tt.want)
		}
	}
}

// scrapeEveryFamily runs the sidecar and returns its /metrics once every
// symcache family the monitoring files use has series.
func scrapeEveryFamily(t *testing.T) string {
	t.Helper()
	spotUp := fetchtest.NewUpstream(t) // api.binance.com's part: answers a forwarded order 429
	futUp := fetchtest.NewUpstream(t)  // fapi and dapi's: answers a forwarded order 418
	redisSrv := l2test.Start(t)
	s := startSidecar(t, map[string]string{
		"REDIS_URL":                 redisSrv.URL(),
		"SYMCACHE_L2_TIMEOUT":       "1s", // 3.7 MB of JSON under -race
		"SYMCACHE_MARKETS":          "spot,usdm,coinm",
		"BINANCE_SPOT_URL":          spotUp.URL,
		"BINANCE_USDM_URL":          futUp.URL,
		"BINANCE_COINM_URL":         futUp.URL,
		"SYMCACHE_REFRESH_INTERVAL": "1h",
		"SYMCACHE_TTL":              "2h",
	})
	for _, path := range []string{"/api/v3/exchangeInfo", "/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"} {
		if resp, _ := s.get(t, path); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}

	weight := func(w string) http.Header { return http.Header{"X-Mbx-Used-Weight-1m": {w}} }
	banned := func(w string) http.Header {
		return http.Header{"X-Mbx-Used-Weight-1m": {w}, "Retry-After": {"600"}, "Content-Type": {"application/json"}}
	}
	spotUp.Set("/api/v3/account", fetchtest.Response{Header: weight("42"), Body: []byte(`{}`)})
	futUp.Set("/fapi/v2/account", fetchtest.Response{Header: weight("17"), Body: []byte(`{}`)})
	spotUp.Set("/api/v3/order", fetchtest.Response{Status: http.StatusTooManyRequests, Header: banned("6100"), Body: []byte(`{"code":-1003,"msg":"Too many requests."}`)})
	futUp.Set("/fapi/v1/order", fetchtest.Response{Status: http.StatusTeapot, Header: banned("2500"), Body: []byte(`{"code":-1003,"msg":"Way too many requests; IP banned."}`)})
	send := func(method, path string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+s.addr+path, nil)
		req.Header.Set("X-MBX-APIKEY", "key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	send(http.MethodGet, "/api/v3/account", http.StatusOK)
	send(http.MethodGet, "/fapi/v2/account", http.StatusOK)
	send(http.MethodPost, "/api/v3/order?symbol=BTCUSDT", http.StatusTooManyRequests)
	send(http.MethodPost, "/fapi/v1/order?symbol=BTCUSDT", http.StatusTeapot)
	send(http.MethodPost, "/api/v3/order?symbol=BTCUSDT", http.StatusTooManyRequests) // blocked: answered by the sidecar

	resp, body := s.get(t, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", resp.StatusCode)
	}
	return string(body)
}

// family is one metric family of a scrape.
type family struct {
	name, typ string
	labels    map[string]map[string]bool // label name -> the values seen
}

// parseExposition reads Prometheus' text format: # TYPE lines, and the
// samples with their labels (those of a histogram's _bucket, _sum and
// _count go to its family).
func parseExposition(t *testing.T, text string) map[string]*family {
	t.Helper()
	fams := map[string]*family{}
	get := func(name string) *family {
		if fams[name] == nil {
			fams[name] = &family{name: name, labels: map[string]map[string]bool{}}
		}
		return fams[name]
	}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("bad TYPE line %q", line)
			}
			get(f[2]).typ = f[3]
		case strings.HasPrefix(line, "#"):
		default:
			name, labels, err := parseSample(line)
			if err != nil {
				t.Fatalf("scrape line %q: %v", line, err)
			}
			fam := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && fams[base] != nil && (fams[base].typ == "histogram" || fams[base].typ == "summary") {
					fam = base
				}
			}
			f := get(fam)
			for k, v := range labels {
				if f.labels[k] == nil {
					f.labels[k] = map[string]bool{}
				}
				f.labels[k][v] = true
			}
		}
	}
	if len(fams) == 0 {
		t.Fatal("the scrape holds no metric")
	}
	return fams
}

// parseSample splits `name{a="x",b="y"} value` into its name and labels.
func parseSample(line string) (string, map[string]string, error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, fmt.Errorf("no name")
	}
	name, rest := line[:i], line[i:]
	labels := map[string]string{}
	if rest[0] != '{' {
		return name, labels, nil
	}
	rest = rest[1:]
	for {
		rest = strings.TrimLeft(rest, " ,")
		if strings.HasPrefix(rest, "}") {
			return name, labels, nil
		}
		k, after, ok := strings.Cut(rest, `="`)
		if !ok {
			return "", nil, fmt.Errorf("no label value")
		}
		var v strings.Builder
		j := 0
		for ; j < len(after) && after[j] != '"'; j++ {
			if after[j] == '\\' && j+1 < len(after) {
				j++
				if after[j] == 'n' {
					v.WriteByte('\n')
				} else {
					v.WriteByte(after[j]) // \\ and \"
				}
				continue
			}
			v.WriteByte(after[j])
		}
		if j == len(after) {
			return "", nil, fmt.Errorf("unterminated label value")
		}
		labels[strings.TrimSpace(k)] = v.String()
		rest = after[j+1:]
	}
}

// expr is one PromQL expression of a monitoring file, with the templates
// that render its series (an alert's annotations), if any.
type expr struct {
	where     string // file and panel, variable or alert
	text      string
	templates string
}

// monitoringExprs returns every expression of the dashboard (panel
// queries and variable queries) and of the rules.
func monitoringExprs(t *testing.T) []expr {
	t.Helper()
	out := dashboardExprs(t, dashboardFile, readFile(t, dashboardFile))
	if len(out) < 20 {
		t.Fatalf("%s: %d queries found, want 20 or more", dashboardFile, len(out))
	}
	rules := rulesExprs(t, rulesFile, readFile(t, rulesFile))
	if len(rules) < 6 {
		t.Fatalf("%s: %d alerts found, want 6 or more", rulesFile, len(rules))
	}
	return append(out, rules...)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dashboardExprs reads a Grafana dashboard's queries, and checks what the
// dashboard needs to be imported anywhere: the ${datasource} variable on
// every panel and query, unique panel ids.
func dashboardExprs(t *testing.T, file, raw string) []expr {
	t.Helper()
	type ds struct{ Type, UID string }
	type panel struct {
		ID         int
		Type       string
		Title      string
		Datasource *ds
		Targets    []struct {
			Datasource *ds
			Expr       string
		}
		Panels []json.RawMessage
	}
	var d struct {
		SchemaVersion int
		Panels        []panel
		Templating    struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("%s: schemaVersion %d, want 36 or later", file, d.SchemaVersion)
	}
	var out []expr
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("%s: panel id %d twice", file, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			if len(p.Panels) != 0 {
				t.Errorf("%s: row %q is collapsed: its panels would not be checked", file, p.Title)
			}
			continue
		}
		where := fmt.Sprintf("%s: panel %q", filepath.Base(file), p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want uid ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" || strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%s: query %q with datasource %+v, want an expression on ${datasource}", where, q.Expr, q.Datasource)
			}
			out = append(out, expr{where: where, text: q.Expr})
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		if v.Type == "query" {
			out = append(out, expr{where: fmt.Sprintf("%s: variable %s", filepath.Base(file), v.Name), text: q})
		}
		if v.Name == "market" && q != "label_values(symcache_snapshot_age_seconds, market)" {
			t.Errorf("%s: variable market has query %q", file, q)
		}
	}
	for _, name := range []string{"datasource", "market", "instance"} {
		if !vars[name] {
			t.Errorf("%s: no variable %s", file, name)
		}
	}
	return out
}

// rulesExprs reads the alerting rules of a Prometheus rule file: each
// alert's expr (inline, or a block scalar), with the rest of its rule (the
// labels and annotations) as its templates.
func rulesExprs(t *testing.T, file, raw string) []expr {
	t.Helper()
	alertRe := regexp.MustCompile(`^\s*- alert:\s*(\S+)`)
	exprRe := regexp.MustCompile(`^(\s*)expr:\s*(.*)$`)
	var out []expr
	lines := strings.Split(raw, "\n")
	for i := 0; i < len(lines); i++ {
		m := alertRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		e := expr{where: fmt.Sprintf("%s: alert %s", filepath.Base(file), m[1])}
		var rest []string
		for i++; i < len(lines) && !alertRe.MatchString(lines[i]); i++ {
			em := exprRe.FindStringSubmatch(lines[i])
			if em == nil {
				rest = append(rest, lines[i])
				continue
			}
			if !strings.HasPrefix(em[2], "|") && !strings.HasPrefix(em[2], ">") {
				e.text = em[2]
				continue
			}
			var body []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indent(lines[i+1]) > len(em[1])) {
				i++
				body = append(body, lines[i])
			}
			e.text = strings.Join(body, "\n")
		}
		i--
		e.templates = strings.Join(rest, "\n")
		if strings.TrimSpace(e.text) == "" {
			t.Errorf("%s: no expr", e.where)
		}
		out = append(out, e)
	}
	return out
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

var (
	nameRe     = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:$.])(symcache_[a-zA-Z0-9_:]*)`)
	selectorRe = regexp.MustCompile(`(symcache_[a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	groupRe    = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelsRe   = regexp.MustCompile(`label_values\(\s*(symcache_[a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
	replaceRe  = regexp.MustCompile(`label_replace\([^"]*"([a-zA-Z_][a-zA-Z0-9_]*)"`)
	templRe    = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// metricNames are the symcache metric names an expression names.
func metricNames(s string) []string {
	var out []string
	for _, m := range nameRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// resolve finds the family of a series name: itself, or the histogram or
// summary whose _bucket, _sum or _count it is (suffix is then that).
func resolve(fams map[string]*family, name string) (f *family, suffix string) {
	if f := fams[name]; f != nil {
		return f, ""
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && fams[base] != nil && (fams[base].typ == "histogram" || fams[base].typ == "summary" && s != "_bucket") {
			return fams[base], s
		}
	}
	return nil, ""
}

// checkExpr returns what in e the scrape does not bear out: a metric it
// does not export, a label its family does not have, or a value an exact
// matcher wants that no series has.
func checkExpr(fams map[string]*family, e expr) []string {
	var problems []string
	have := map[string]bool{} // the labels of the families named, and the target's
	for k := range targetLabels {
		have[k] = true
	}
	for _, m := range replaceRe.FindAllStringSubmatch(e.text, -1) {
		have[m[1]] = true
	}
	names := metricNames(e.text)
	if len(names) == 0 {
		problems = append(problems, fmt.Sprintf("%q names no symcache metric", e.text))
	}
	for _, n := range append(names, metricNames(e.templates)...) {
		f, suffix := resolve(fams, n)
		if f == nil {
			problems = append(problems, fmt.Sprintf("names %s, which the sidecar does not export", n))
			continue
		}
		if !strings.Contains(e.text, n) {
			continue // named in the annotations only: its labels are not the alert's
		}
		for k := range f.labels {
			have[k] = true
		}
		if suffix == "_bucket" {
			have["le"] = true
		}
	}
	for _, m := range selectorRe.FindAllStringSubmatch(e.text, -1) {
		f, suffix := resolve(fams, m[1])
		if f == nil {
			continue
		}
		for _, mm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
			label, op, value := mm[1], mm[2], mm[3]
			switch {
			case targetLabels[label] || label == "le" && suffix == "_bucket":
			case f.labels[label] == nil:
				problems = append(problems, fmt.Sprintf("selects %s by label %s, which it does not have (it has %v)", m[1], label, sortedKeys(f.labels)))
			case op == "=" && !f.labels[label][value]:
				problems = append(problems, fmt.Sprintf("selects %s{%s=%q}, a value no series of it has (it has %v)", m[1], label, value, sortedKeys(f.labels[label])))
			}
		}
	}
	for _, m := range labelsRe.FindAllStringSubmatch(e.text, -1) {
		if f := fams[m[1]]; f != nil && !targetLabels[m[2]] && f.labels[m[2]] == nil {
			problems = append(problems, fmt.Sprintf("takes label %s of %s, which it does not have", m[2], m[1]))
		}
	}
	var grouped []string
	for _, m := range groupRe.FindAllStringSubmatch(e.text, -1) {
		grouped = append(grouped, strings.Split(m[1], ",")...)
	}
	for _, m := range templRe.FindAllStringSubmatch(e.templates, -1) {
		grouped = append(grouped, m[1])
	}
	for _, l := range grouped {
		if l = strings.TrimSpace(l); l != "" && !have[l] {
			problems = append(problems, fmt.Sprintf("uses label %s, which no metric it names has", l))
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
