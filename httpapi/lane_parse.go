package httpapi

import (
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// laneRequest is a request head the fast lane may answer: the parts of it
// that make its http.Request. Its slices point into the connection's
// read buffer, valid until the request is consumed.
type laneRequest struct {
	head    bool   // HEAD, else GET
	target  []byte // as sent: path and query
	host    []byte
	close   bool        // Connection: close
	headers [][2][]byte // name, value (trimmed), Host left out
}

// parseLaneRequest reads the request head at the start of buf. It returns
// the head's length when it is one the fast lane answers exactly as
// net/http would read it: GET or HEAD of an origin-form target of plain
// characters (no escapes), HTTP/1.1, CRLF line ends, one valid Host, no
// body, no Expect or Upgrade, a Connection of keep-alive or close alone.
// It returns 0 and more=true when buf ends before the head does and
// nothing so far rules it out; 0 and more=false for any other request,
// which net/http reads instead (its answer, an error included, is its
// own). Nothing in buf is trusted: every byte is checked, and nothing is
// read past buf.
func parseLaneRequest(buf []byte, req *laneRequest) (n int, more bool) {
	*req = laneRequest{headers: req.headers[:0]}
	line, rest, ok := cutLine(buf)
	if !ok {
		return 0, couldBeLaneRequest(buf)
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, req.head = line[5:], true
	default:
		return 0, false
	}
	target, proto, ok := bytes.Cut(line, []byte(" "))
	if !ok || string(proto) != "HTTP/1.1" || !laneTarget(target) {
		return 0, false
	}
	req.target = target
	if _, query, ok := bytes.Cut(target, []byte("?")); ok && len(query) == 0 {
		return 0, false // "path?": url.URL's ForceQuery
	}
	hosts := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			// Lines so far were fine: more may come, unless a bare LF
			// (which net/http reads as a line end) is in what is left.
			return 0, bytes.IndexByte(rest, '\n') < 0
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !laneToken(name) {
			return 0, false // no name, a space before the colon, obs-fold
		}
		value = bytes.Trim(value, " \t")
		if !laneValue(value) {
			return 0, false
		}
		switch {
		case asciiEqualFold(name, "Host"):
			if hosts++; hosts > 1 || !httpguts.ValidHostHeader(string(value)) {
				return 0, false
			}
			req.host = value
			continue
		case asciiEqualFold(name, "Connection"):
			for f := range bytes.SplitSeq(value, []byte(",")) {
				switch f = bytes.Trim(f, " \t"); {
				case asciiEqualFold(f, "close"):
					req.close = true
				case !asciiEqualFold(f, "keep-alive"):
					return 0, false
				}
			}
		case asciiEqualFold(name, "Content-Length"), asciiEqualFold(name, "Transfer-Encoding"),
			asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return 0, false
		}
		req.headers = append(req.headers, [2][]byte{name, value})
	}
	if hosts != 1 {
		return 0, false // net/http answers 400 without a Host
	}
	return len(buf) - len(rest), false
}

// cutLine cuts buf at its first CRLF. A bare LF before it is no line end
// here: ok is false.
func cutLine(buf []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(buf, '\n')
	if i < 1 || buf[i-1] != '\r' {
		return nil, buf, false
	}
	line = buf[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, buf, false
	}
	return line, buf[i+1:], true
}

// couldBeLaneRequest reports whether buf, holding no whole request line,
// may still become a request the lane answers.
func couldBeLaneRequest(buf []byte) bool {
	if bytes.IndexByte(buf, '\n') >= 0 {
		return false
	}
	for _, m := range []string{"GET ", "HEAD "} {
		n := min(len(buf), len(m))
		if string(buf[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// laneTarget reports whether target is an origin-form request target that
// url.ParseRequestURI reads as it is: a path of unreserved characters and
// '/', and a query of visible ASCII but '#'.
func laneTarget(target []byte) bool {
	if len(target) == 0 || target[0] != '/' {
		return false
	}
	inQuery := false
	for _, c := range target {
		switch {
		case inQuery:
			if c <= ' ' || c >= 0x7f || c == '#' {
				return false
			}
		case c == '?':
			inQuery = true
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~', c == '/':
		default:
			return false
		}
	}
	return true
}

// laneToken reports whether b is a header name: a non-empty token.
func laneToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// laneValue reports whether b is a header value of visible ASCII, spaces
// and tabs (net/http takes more; the lane leaves the rest to it).
func laneValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether b equals s, ignoring ASCII case.
func asciiEqualFold[T []byte | string](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
