// Package demo holds recorded Binance exchangeInfo answers, built into the
// binary, and a replay of them: an http.RoundTripper that answers Binance's
// exchangeInfo paths from the recordings in the process, with no network.
// It is the upstream of every market of `sidecar -demo`, for a machine that
// cannot reach Binance.
//
// The recordings are gzip copies of testdata/binance/spot_exchangeinfo.json,
// usdm_exchangeinfo.json and coinm_exchangeinfo.json (where and when each
// was recorded: testdata/binance/SOURCES.md), written by `go generate
// ./demo`. A test checks that each decompresses to exactly its file.
package demo

//go:generate go run gen.go

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

//go:embed recordings/*.json.gz
var recordings embed.FS

// BaseURL is the base URL of every market's replay, the only one Transport
// answers. Its host is under .invalid, a name no resolver answers (RFC
// 6761): a request for it that reached a real transport would go nowhere.
const BaseURL = "http://replay.demo.invalid"

// replayHost is BaseURL's host.
const replayHost = "replay.demo.invalid"

// Recording is one answer built into the binary.
type Recording struct {
	Market exchangeinfo.Market
	// Name is the recording's file in testdata/binance, such as
	// spot_exchangeinfo.json.
	Name string
	// ServerTime is the answer's serverTime: when Binance sent it, in UTC.
	ServerTime time.Time
	// Size is the answer's length in bytes, as Binance sent it.
	Size int64

	gz []byte // the answer, gzipped
}

// name is the file of market m's recording.
func name(m exchangeinfo.Market) string { return string(m) + "_exchangeinfo.json" }

// Recordings returns the recordings of markets (every market if none is
// given), in that order, with their server time. An error means the
// recordings built in are broken: a test of this package fails first.
func Recordings(markets ...exchangeinfo.Market) ([]Recording, error) {
	if len(markets) == 0 {
		markets = exchangeinfo.Markets()
	}
	out := make([]Recording, 0, len(markets))
	for _, m := range markets {
		r, err := load(m)
		if err != nil {
			return nil, err
		}
		if r.ServerTime, err = serverTime(r.gz); err != nil {
			return nil, fmt.Errorf("demo: %s: %w", r.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// load returns market m's recording, without its server time.
func load(m exchangeinfo.Market) (Recording, error) {
	if !m.Valid() {
		return Recording{}, fmt.Errorf("demo: unknown market %q", string(m))
	}
	n := name(m)
	gz, err := recordings.ReadFile("recordings/" + n + ".gz")
	if err != nil {
		return Recording{}, fmt.Errorf("demo: %w", err)
	}
	if len(gz) < 18 { // a gzip header and trailer
		return Recording{}, fmt.Errorf("demo: %s.gz is not gzip", n)
	}
	// A one-member gzip file ends with its input's length modulo 2^32,
	// which the test checks against the file itself.
	size := int64(binary.LittleEndian.Uint32(gz[len(gz)-4:]))
	return Recording{Market: m, Name: n, Size: size, gz: gz}, nil
}

// Open returns the recorded answer, as Binance sent it.
func (r Recording) Open() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(bytes.NewReader(r.gz))
	if err != nil {
		return nil, fmt.Errorf("demo: %s: %w", r.Name, err)
	}
	return zr, nil
}

// serverTime reads the serverTime member of a gzipped exchangeInfo answer,
// decompressing no further than it (it comes second in Binance's answers).
func serverTime(gz []byte) (time.Time, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return time.Time{}, err
	}
	dec := json.NewDecoder(zr)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return time.Time{}, fmt.Errorf("not a JSON object (%v)", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return time.Time{}, err
		}
		if tok != "serverTime" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return time.Time{}, err
			}
			continue
		}
		var ms int64
		if err := dec.Decode(&ms); err != nil || ms <= 0 {
			return time.Time{}, fmt.Errorf("serverTime is not a positive number of milliseconds (%v)", err)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, errors.New("no serverTime")
}

// Notice is the text that says the data is not live, naming each
// recording by its market and the day Binance sent it, such as
//
//	demo data: Binance answers recorded 2023-09-08 (spot), 2025-12-24 (usdm), not live
func Notice(recs []Recording) string {
	parts := make([]string, len(recs))
	for i, r := range recs {
		parts[i] = r.ServerTime.Format(time.DateOnly) + " (" + string(r.Market) + ")"
	}
	return "demo data: Binance answers recorded " + strings.Join(parts, ", ") + ", not live"
}

// Transport returns the replay: an http.RoundTripper that answers a GET or
// HEAD of BaseURL plus a market's exchangeInfo path with that market's
// recording (200, application/json, not compressed), any other request for
// BaseURL's host with Binance's 404 or 405, and a request for any other
// host with an error. It opens no connection: nothing it is given is ever
// sent anywhere. It is safe for concurrent use.
func Transport() http.RoundTripper { return transport{} }

type transport struct{}

func (transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close() // as a RoundTripper must, even on errors
	}
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host != replayHost {
		where := "a request without a URL"
		if req.URL != nil {
			where = req.URL.Scheme + "://" + req.URL.Host
		}
		return nil, fmt.Errorf("demo: %s is not the replay (%s): nothing was sent", where, BaseURL)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	var rec *Recording
	for _, m := range exchangeinfo.Markets() {
		if req.URL.Path == m.Path() {
			r, err := load(m)
			if err != nil {
				return nil, err
			}
			rec = &r
		}
	}
	switch {
	case rec == nil:
		return answer(req, http.StatusNotFound, `{"code":-1000,"msg":"The demo replay answers `+strings.Join(paths(), ", ")+` only."}`), nil
	case req.Method != http.MethodGet && req.Method != http.MethodHead:
		return answer(req, http.StatusMethodNotAllowed, `{"code":-1000,"msg":"The demo replay answers GET and HEAD only."}`), nil
	}
	resp := answer(req, http.StatusOK, "")
	resp.ContentLength = rec.Size
	resp.Header.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
	if req.Method == http.MethodGet {
		body, err := rec.Open()
		if err != nil {
			return nil, err
		}
		resp.Body = body
	}
	return resp, nil
}

// answer is a response to req with status and body, Binance's JSON type.
func answer(req *http.Request, status int, body string) *http.Response {
	resp := &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json;charset=UTF-8"}},
		Body:          http.NoBody,
		ContentLength: int64(len(body)),
		Request:       req,
	}
	if body != "" && req.Method != http.MethodHead {
		resp.Body = io.NopCloser(strings.NewReader(body))
	}
	return resp
}

// paths are the exchangeInfo paths the replay answers.
func paths() []string {
	var out []string
	for _, m := range exchangeinfo.Markets() {
		out = append(out, m.Path())
	}
	return out
}
