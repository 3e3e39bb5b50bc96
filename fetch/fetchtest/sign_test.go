package fetchtest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/symcache/symcache/fetch/fetchtest"
)

// TestHandler_Signature checks signatures as Binance does, over the query
// and the body without the signature parameter, and records each request as
// received.
func TestHandler_Signature(t *testing.T) {
	const secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
	h := fetchtest.NewHandler()
	h.SetSecret(secret)
	h.Set("/api/v3/order", fetchtest.Response{Body: []byte(`{}`), Signed: true})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	// Binance's documented example: the signature of this query with this
	// secret.
	const example = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
	if got, want := fetchtest.Sign(secret, example, ""), example+"&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		name, query, body string
		status            int
		code              string
	}{
		{"in the query", fetchtest.Sign(secret, example, ""), "", http.StatusOK, ""},
		{"in the body", "", fetchtest.Sign(secret, example, ""), http.StatusOK, ""}, // HMAC of "" + body
		{"query and body", "symbol=LTCBTC&side=BUY", "type=LIMIT&" + strings.TrimPrefix(fetchtest.Sign(secret, "symbol=LTCBTC&side=BUY", "type=LIMIT"), "symbol=LTCBTC&side=BUY&"), http.StatusOK, ""},
		{"wrong", example + "&signature=00", "", http.StatusBadRequest, "-1022"},
		{"re-encoded", strings.Replace(fetchtest.Sign(secret, "a=%2C", ""), "%2C", ",", 1), "", http.StatusBadRequest, "-1022"},
		{"missing", example, "", http.StatusBadRequest, "-1102"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := srv.URL + "/api/v3/order"
			if tt.query != "" {
				target += "?" + tt.query
			}
			resp, err := http.Post(target, "application/x-www-form-urlencoded", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.code) {
				t.Errorf("POST = %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
			got := h.Received()
			last := got[len(got)-1]
			if last.Method != http.MethodPost || last.RawQuery != tt.query || string(last.Body) != tt.body || last.BodySize != int64(len(tt.body)) {
				t.Errorf("Received() last = %+v, want POST ?%s body %q", last, tt.query, tt.body)
			}
		})
	}
}
