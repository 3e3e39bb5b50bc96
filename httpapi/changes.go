package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
)

// The change feed: GET /v1/changes/{market} pages, and
// GET /v1/changes/{market}/stream as Server-Sent Events.

// DefaultHeartbeat is Config.Heartbeat when zero: a comment on an idle
// stream at least this often, so that proxies and clients see it alive.
const DefaultHeartbeat = 15 * time.Second

// sseRetry is the reconnection delay a stream asks of EventSource clients.
const sseRetry = 2 * time.Second

// changesMarket resolves the :market of a change feed path. A name that
// is no market is bad input naming it.
func changesMarket(c echo.Context) (exchangeinfo.Market, error) {
	m, err := exchangeinfo.ParseMarket(c.Param("market"))
	if err != nil {
		return "", badParam("market", "want spot, usdm or coinm, got %.40q", c.Param("market"))
	}
	return m, nil
}

// parseChangeQuery reads the query of a change feed path: since (a cursor;
// without it, the end of the log), symbol and kind (comma-separated lists)
// and, for a page, limit.
func parseChangeQuery(rawQuery string, stream bool) (symcache.ChangeQuery, error) {
	known := []string{"since", "symbol", "kind", "limit"}
	if stream {
		known = known[:3]
	}
	p, err := params(rawQuery, known...)
	if err != nil {
		return symcache.ChangeQuery{}, err
	}
	q := symcache.ChangeQuery{FromEnd: true, Limit: symcache.DefaultChangesLimit}
	if v, ok := p["since"]; ok {
		if q.After, err = changes.ParseCursor(v); err != nil {
			return q, badParam("since", "%v", err)
		}
		q.FromEnd = false
	}
	if v, ok := p["symbol"]; ok {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToUpper(strings.TrimSpace(name)); name != "" && !slices.Contains(q.Symbols, name) {
				q.Symbols = append(q.Symbols, name)
			}
		}
		if len(q.Symbols) == 0 || len(q.Symbols) > 1000 {
			return q, badParam("symbol", "want 1 to 1000 comma-separated symbols such as BTCUSDT,ETHUSDT")
		}
	}
	if v, ok := p["kind"]; ok {
		for name := range strings.SplitSeq(v, ",") {
			k, err := changes.ParseKind(name)
			if err != nil {
				return q, badParam("kind", "%v", err)
			}
			if !slices.Contains(q.Kinds, k) {
				q.Kinds = append(q.Kinds, k)
			}
		}
	}
	if v, ok := p["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > symcache.MaxChangesLimit {
			return q, badParam("limit", "want a whole number from 1 to %d, got %.40q", symcache.MaxChangesLimit, v)
		}
		q.Limit = n
	}
	return q, nil
}

// The inputs a change feed's cursor comes from, as its errors name them.
const (
	fromSince       = "parameter 'since'"
	fromLastEventID = "header 'Last-Event-ID'"
)

// goneError is the answer to a cursor, from input, that the log cannot
// vouch for.
func goneError(input string, after changes.Cursor, err error) *apiError {
	return &apiError{Status: http.StatusGone, Code: -1130, cause: err, Msg: fmt.Sprintf(
		"Data sent for %s is not valid: the changes after %s are no longer retained (the log was trimmed or started again since). "+
			"Reload the full snapshot, then follow from the next of a query without since.", input, after)}
}

// errChangesUnavailable is the answer when the change log cannot be read.
var errChangesUnavailable = &apiError{Status: http.StatusServiceUnavailable, Code: -1007,
	Msg: "The change log cannot be read right now. Please try again later."}

// changesError turns an error of the change log into its answer.
func changesError(c echo.Context, input string, q symcache.ChangeQuery, err error) error {
	switch {
	case errors.Is(err, changes.ErrGone):
		return goneError(input, q.After, err)
	case errors.Is(err, symcache.ErrNoChangeLog):
		return &apiError{Status: http.StatusNotFound, Code: -1000, Msg: "This sidecar keeps no change log.", cause: err}
	case errors.Is(err, symcache.ErrUnknownMarket), errors.Is(err, context.Canceled):
		return err
	}
	c.Response().Header().Set("Retry-After", "1")
	e := *errChangesUnavailable
	e.cause = err
	return &e
}

// marshalNoEscape is json.Marshal without escaping <, > and &: Binance's
// bytes in a change stay as they are.
func marshalNoEscape(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.Encode(v) // a ChangePage or a Change: nothing that fails to encode
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// listChanges is GET /v1/changes/{market}.
func (h *handler) listChanges(c echo.Context) error {
	m, err := changesMarket(c)
	if err != nil {
		return err
	}
	q, err := parseChangeQuery(c.Request().URL.RawQuery, false)
	if err != nil {
		return err
	}
	p, err := h.cache.Changes(c.Request().Context(), m, q)
	if err != nil {
		return changesError(c, fromSince, q, err)
	}
	body := marshalNoEscape(p)
	h.deadline.extend(c.Response(), len(body))
	hd := c.Response().Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err = c.Response().Write(body)
	return err
}

// streamChanges is GET /v1/changes/{market}/stream: the changes as
// Server-Sent Events, one per change with its id, from since, the
// Last-Event-ID header (which wins: it is where a reconnecting client
// stopped) or the end of the log. The cursor is checked before the stream
// starts (410 when the log cannot vouch for it); a stream that falls
// behind what the log keeps sends an event "gone" and ends.
func (h *handler) streamChanges(c echo.Context) error {
	m, err := changesMarket(c)
	if err != nil {
		return err
	}
	q, err := parseChangeQuery(c.Request().URL.RawQuery, true)
	if err != nil {
		return err
	}
	input := fromSince
	if id := c.Request().Header.Get("Last-Event-ID"); id != "" {
		if q.After, err = changes.ParseCursor(id); err != nil {
			return &apiError{Code: -1130, Msg: fmt.Sprintf("Data sent for %s is not valid: %v", fromLastEventID, err)}
		}
		q.FromEnd, input = false, fromLastEventID
	}
	ctx := c.Request().Context()
	// Check the cursor, and fix the end of the log as the stream's start.
	first, err := h.cache.Changes(ctx, m, symcache.ChangeQuery{After: q.After, FromEnd: q.FromEnd, Limit: 1})
	if err != nil {
		return changesError(c, input, q, err)
	}
	if q.FromEnd {
		q.After, q.FromEnd = first.Next, false
	}
	q.Limit = 100

	w := c.Response()
	ev := eventWriter{w: w, rc: http.NewResponseController(w), deadline: h.deadline}
	ev.rc.SetReadDeadline(time.Time{}) // the server's ReadTimeout would end the stream's context
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: pass each event on
	w.WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	// The cursor in force, without an event: a client that reconnects
	// before the first change resumes from here (EventSource keeps the id).
	if err := ev.send(fmt.Appendf(nil, "retry: %d\nid: %s\n\n", sseRetry.Milliseconds(), q.After)); err != nil {
		return nil
	}
	h.sendChanges(ctx, ev, m, q, input)
	return nil
}

// eventWriter writes the blocks of an event stream, each flushed at once
// with a write deadline of its own.
type eventWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	deadline writeDeadline
}

func (e eventWriter) send(b []byte) error {
	e.deadline.set(e.w, len(b))
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// followed is what a subscription yielded: a change or an error.
type followed struct {
	ch  changes.Change
	err error
}

// follow runs a subscription of m after q until ctx ends, handing what it
// yields to the channel it returns, which it closes at the end. A panic
// in it ends the stream, not the process.
func (h *handler) follow(ctx context.Context, m exchangeinfo.Market, q symcache.ChangeQuery) <-chan followed {
	out := make(chan followed)
	go func() {
		defer close(out)
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("change stream: panic", "market", m, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}()
		for ch, err := range h.cache.Subscribe(ctx, m, q) {
			select {
			case out <- followed{ch, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// sendChanges sends m's changes after q as events, with a heartbeat when
// nothing else was sent for h.heartbeat, until the client goes away, the
// server stops (h.stop), or the stream falls behind what the log keeps:
// then an event "gone" naming the last change sent, from input.
func (h *handler) sendChanges(ctx context.Context, ev eventWriter, m exchangeinfo.Market, q symcache.ChangeQuery, input string) {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	items := h.follow(sctx, m, q)
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	var buf []byte
	sent := q.After // where the client is
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-h.stop:
			return // the server is shutting down: the client reconnects
		case <-beat.C:
			err = ev.send([]byte(": heartbeat\n\n"))
		case it, ok := <-items:
			switch {
			case !ok:
				return
			case errors.Is(it.err, changes.ErrGone):
				body := marshalNoEscape(goneError(input, sent, it.err))
				ev.send(fmt.Appendf(nil, "event: gone\ndata: %s\n\n", body))
				return
			case it.err != nil:
				h.log.Warn("change stream: reading the change log failed; retrying", "market", m, "err", it.err)
				err = ev.send([]byte(": the change log cannot be read right now; retrying\n\n"))
			default:
				buf = append(buf[:0], "id: "...)
				buf = append(buf, it.ch.ID...)
				buf = append(buf, "\ndata: "...)
				buf = append(buf, marshalNoEscape(it.ch)...)
				buf = append(buf, "\n\n"...)
				if err = ev.send(buf); err == nil {
					sent, _ = changes.ParseCursor(it.ch.ID)
				}
				beat.Reset(h.heartbeat)
			}
		}
		if err != nil {
			return // the client went away, or was too slow: nothing more to send
		}
	}
}
