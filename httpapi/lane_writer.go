package httpapi

import (
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// laneWriter is the http.ResponseWriter of a request the fast lane
// answers. It frames the answer as net/http's server does for the same
// handler calls: the status line, the headers the handler set (sorted,
// values trimmed, newlines made spaces, invalid names dropped), then Date,
// an automatic Content-Length, a sniffed Content-Type, Connection: close
// and chunking where net/http would add them, and the same errors from
// Write. What it does not do: a Transfer-Encoding or Trailer the handler
// sets is not sent (the lane's handlers set neither), and an answer
// without a Content-Length is held until the handler returns or it passes
// chunkAfter bytes, then sent with a Content-Length or chunked, as
// net/http does.
type laneWriter struct {
	lc   *laneConn
	hdr  http.Header
	head bool // the request is a HEAD
	// closeAfter: the connection is closed after this answer, and the
	// answer says so (Connection: close), as net/http's closeAfterReply.
	closeAfter bool

	wroteHeader bool
	status      int
	cl          int64 // the handler's Content-Length; -1: none
	written     int64 // body bytes the handler wrote
	// The header block so far (status line and the handler's headers),
	// and what is still to add when the first body bytes are known.
	out        []byte
	sent       bool   // the header block went out
	chunking   bool   // the body is sent chunked
	held       []byte // body bytes held while no Content-Length is known
	hasDate    bool   // the handler set Date
	sayClose   bool   // the header block ends with Connection: close
	sniff      bool   // a Content-Type is to be sniffed from the body
	keys       []string
	err        error // the first write error: nothing more is sent
	dateBuf    [len(http.TimeFormat)]byte
	contentLen [20]byte
}

// chunkAfter is how much of a body without a Content-Length is held
// before it is sent chunked: net/http's buffer before chunking.
const chunkAfter = 2048

func (w *laneWriter) reset(head, closeAfter bool) {
	clear(w.hdr)
	w.head, w.closeAfter = head, closeAfter
	w.wroteHeader, w.status, w.cl, w.written = false, 0, -1, 0
	w.out, w.sent, w.chunking, w.held = w.out[:0], false, false, w.held[:0]
	w.hasDate, w.sniff, w.sayClose, w.err = false, false, false, nil
}

// Header returns the answer's header map.
func (w *laneWriter) Header() http.Header { return w.hdr }

// WriteHeader sends code (an informational one at once, the final one with
// the first body bytes), as net/http's ResponseWriter.
func (w *laneWriter) WriteHeader(code int) {
	if w.wroteHeader {
		w.lc.lane.logf("http: superfluous response.WriteHeader call (fast lane)")
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.out = appendStatusLine(w.out, code)
		w.out = w.appendHeaders(w.out, excludedNoBody)
		w.out = append(w.out, "\r\n"...)
		w.flush()
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := w.hdr.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.cl = v
		} else {
			w.lc.lane.logf("http: invalid Content-Length of %q", cl)
			w.hdr.Del("Content-Length")
		}
	}
	if w.hdr.Get("Connection") == "close" {
		w.closeAfter = true
	}
	_, w.hasDate = w.hdr["Date"]
	_, haveType := w.hdr["Content-Type"]
	w.sniff = bodyAllowed(code) && !haveType && w.hdr.Get("Content-Encoding") == ""
	exclude := excludedNone
	switch {
	case code == http.StatusNotModified:
		exclude = excluded304
	case !bodyAllowed(code):
		exclude = excludedNoBody
	}
	// The handler's own Connection goes when the lane closes the
	// connection and it does not say so: then the lane says it.
	w.sayClose = w.closeAfter && !hasToken(w.hdr.Get("Connection"), "close")
	if w.sayClose {
		exclude |= excludeConnection
	}
	w.out = appendStatusLine(w.out, code)
	w.out = w.appendHeaders(w.out, exclude)
}

// Write sends p as part of the body, with net/http's errors: nothing for
// an answer that has none (http.ErrBodyNotAllowed), nothing past its
// Content-Length (http.ErrContentLength).
func (w *laneWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl != -1 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.sent {
		if w.cl == -1 && len(w.held)+len(p) <= chunkAfter {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		first := p
		if len(w.held) > 0 {
			w.held = append(w.held, p...)
			first, p = w.held, nil
		}
		w.finishHeader(first, false)
		if p == nil {
			p = first
		}
	}
	if w.head {
		return len(p), nil
	}
	if w.chunking {
		w.out = strconv.AppendInt(w.out, int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
		w.send(p)
		w.out = append(w.out, "\r\n"...)
	} else {
		w.send(p)
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// SetWriteDeadline sets the connection's write deadline (for
// http.ResponseController).
func (w *laneWriter) SetWriteDeadline(t time.Time) error { return w.lc.conn.SetWriteDeadline(t) }

// finish ends the answer once the handler has returned, and reports
// whether the connection may serve another request.
func (w *laneWriter) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.finishHeader(w.held, true)
		if !w.head && len(w.held) > 0 {
			w.send(w.held)
		}
	}
	if w.chunking && !w.head {
		w.out = append(w.out, "0\r\n\r\n"...)
	}
	w.flush()
	if !w.head && w.cl != -1 && bodyAllowed(w.status) && w.cl != w.written {
		return false // a body shorter than said: the client would be out of step
	}
	return !w.closeAfter && w.err == nil
}

// finishHeader completes the header block, given the first body bytes (p)
// and whether the handler is done: the headers net/http adds.
func (w *laneWriter) finishHeader(p []byte, done bool) {
	w.sent = true
	var contentLength []byte
	if w.cl == -1 && bodyAllowed(w.status) {
		if done && (!w.head || len(p) > 0) {
			contentLength = strconv.AppendInt(w.contentLen[:0], int64(len(p)), 10)
		} else if !w.head {
			w.chunking = true
		}
	}
	if !w.hasDate {
		w.out = append(w.out, "Date: "...)
		w.out = append(w.out, time.Now().UTC().AppendFormat(w.dateBuf[:0], http.TimeFormat)...)
		w.out = append(w.out, "\r\n"...)
	}
	if contentLength != nil {
		w.out = append(w.out, "Content-Length: "...)
		w.out = append(w.out, contentLength...)
		w.out = append(w.out, "\r\n"...)
	}
	if w.sniff && len(p) > 0 {
		w.out = append(w.out, "Content-Type: "...)
		w.out = append(w.out, http.DetectContentType(p)...)
		w.out = append(w.out, "\r\n"...)
	}
	if w.sayClose {
		w.out = append(w.out, "Connection: close\r\n"...)
	}
	if w.chunking {
		w.out = append(w.out, "Transfer-Encoding: chunked\r\n"...)
	}
	w.out = append(w.out, "\r\n"...)
}

// laneSmallBody is the most body bytes copied behind the headers into one
// write; a larger body goes out from where it is, in the same system call
// as what is before it (writev).
const laneSmallBody = 16 << 10

// send writes p after what w.out holds.
func (w *laneWriter) send(p []byte) {
	if w.err != nil {
		return
	}
	if len(p) <= laneSmallBody {
		if w.out = append(w.out, p...); len(w.out) > 4*laneSmallBody {
			w.flush() // many small writes: do not hold the whole answer
		}
		return
	}
	_, w.err = w.lc.conn.writeBuffers(w.out, p)
	w.out = w.out[:0]
}

// flush writes what w.out holds.
func (w *laneWriter) flush() {
	if len(w.out) == 0 || w.err != nil {
		w.out = w.out[:0]
		return
	}
	_, w.err = w.lc.conn.Write(w.out)
	w.out = w.out[:0]
}

// Which of the handler's headers are not sent, by status and connection.
const (
	excludedNone      = 0
	excludeLength     = 1 << iota // Content-Length
	excludeType                   // Content-Type
	excludeConnection             // Connection
	excludedNoBody    = excludeLength
	excluded304       = excludeLength | excludeType
)

// appendHeaders appends the handler's headers as net/http writes them:
// sorted by name, each value on a line, trimmed, newlines made spaces,
// invalid names dropped. Transfer-Encoding and Trailer are never sent.
func (w *laneWriter) appendHeaders(out []byte, exclude int) []byte {
	w.keys = w.keys[:0]
	for k := range w.hdr {
		switch {
		case k == "Transfer-Encoding" || k == "Trailer" || strings.HasPrefix(k, http.TrailerPrefix),
			k == "Content-Length" && exclude&excludeLength != 0,
			k == "Content-Type" && exclude&excludeType != 0,
			k == "Connection" && exclude&excludeConnection != 0:
			continue
		}
		w.keys = append(w.keys, k)
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range w.hdr[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendHeaderValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	return out
}

// appendHeaderValue appends v trimmed of spaces and tabs, with \r and \n
// as spaces (net/http's headerNewlineToSpace and textproto.TrimString).
func appendHeaderValue(out []byte, v string) []byte {
	v = textproto.TrimString(v)
	if !strings.ContainsAny(v, "\r\n") {
		return append(out, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func appendStatusLine(out []byte, code int) []byte {
	out = append(out, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		out = strconv.AppendInt(out, int64(code), 10)
		out = append(out, ' ')
		out = append(out, text...)
	} else {
		out = fmt.Appendf(out, "%03d status code %d", code, code)
	}
	return append(out, "\r\n"...)
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// hasToken reports whether the comma-separated list v holds token
// (case-insensitive), as net/http's hasToken for Connection.
func hasToken(v, token string) bool {
	for f := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(textproto.TrimString(f), token) {
			return true
		}
	}
	return false
}
