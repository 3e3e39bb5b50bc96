package fetchtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Stream checks that a proxy streams a body both ways rather than holding
// it whole: its handler, as the upstream, answers the upload's first chunk
// only once it has read it and sends the rest of its download only once the
// client has read the first chunk; Upload sends the rest of the upload only
// once the upstream has its first chunk. A proxy that buffers either way
// stalls until the 10 s wait gives up, and the test fails. Each Stream
// serves one request.
type Stream struct {
	Size  int    // of the upload and the download, a multiple of len(chunk)
	chunk []byte // 64 KiB

	firstIn, firstOut chan struct{}
	mu                sync.Mutex
	upN               int64
	upSum             [32]byte
	upErr             error
}

// NewStream returns a Stream of size bytes each way (rounded down to 64 KiB).
func NewStream(size int) *Stream {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	return &Stream{Size: size / len(chunk) * len(chunk), chunk: chunk, firstIn: make(chan struct{}), firstOut: make(chan struct{})}
}

// ServeHTTP is the upstream: it reads the upload, then streams the download.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	buf := make([]byte, len(s.chunk))
	_, err := io.ReadFull(r.Body, buf)
	if err == nil {
		h.Write(buf)
		close(s.firstIn)
		var n int64
		n, err = io.Copy(h, r.Body)
		s.mu.Lock()
		s.upN = n + int64(len(buf))
		copy(s.upSum[:], h.Sum(nil))
		s.mu.Unlock()
	}
	if err != nil {
		s.mu.Lock()
		s.upErr = err
		s.mu.Unlock()
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(s.chunk)
	http.NewResponseController(w).Flush()
	select {
	case <-s.firstOut:
	case <-time.After(10 * time.Second):
		return // the client did not see the first chunk: Check reports a short download
	}
	for sent := len(s.chunk); sent < s.Size; sent += len(s.chunk) {
		w.Write(s.chunk)
	}
}

// Upload is the request body to send through the proxy, with no length.
func (s *Stream) Upload() io.Reader {
	pr, pw := io.Pipe()
	go func() {
		pw.Write(s.chunk)
		select {
		case <-s.firstIn:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the upstream did not see the first chunk before the rest was sent"))
			return
		}
		for sent := len(s.chunk); sent < s.Size; sent += len(s.chunk) {
			pw.Write(s.chunk)
		}
		pw.Close()
	}()
	return pr
}

// Check reads the proxy's answer and fails t unless the download came whole
// and streamed (no Content-Length), and the upload reached the upstream
// whole.
func (s *Stream) Check(t testing.TB, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Errorf("download Content-Length = %d, want none (streamed)", resp.ContentLength)
	}
	buf := make([]byte, len(s.chunk))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("read the first chunk: %v", err)
	}
	close(s.firstOut)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+int64(len(buf)) != int64(s.Size) {
		t.Errorf("download = %d bytes, %v; want %d", n+int64(len(buf)), err, s.Size)
	}
	want := sha256.Sum256(bytes.Repeat(s.chunk, s.Size/len(s.chunk)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upErr != nil || s.upN != int64(s.Size) || s.upSum != want {
		t.Errorf("upload reached the upstream as %d bytes (sha256 equal %v, error %v), want %d", s.upN, s.upSum == want, s.upErr, s.Size)
	}
}
