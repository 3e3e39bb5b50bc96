// Package disk keeps the last good exchangeInfo snapshot of each market in a
// folder, so that a process without Redis that restarts while Binance is
// unreachable still has something valid to serve.
//
// Each market is one file, <market>.json: a first line of JSON metadata
// ({"market","fetched_at"}) followed by Binance's body exactly as received.
// Files are replaced atomically (a temporary file in the same folder, synced,
// then renamed over the old one), so a crash leaves the old copy or the new
// one, never a mix; a copy that fails validation when loaded is an error, not
// a snapshot. Load reads only a regular file of at most [Store.MaxBytes]
// bytes: never through a symbolic link, from a device or a FIFO.
package disk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/bounded"
)

// DefaultMaxBytes is [Store.MaxBytes] when zero: 33 MiB, the largest body
// the fetcher accepts (32 MiB) with room for the header line; the same
// default as l2's MaxValueBytes. Binance's spot answer is 3.7 MB.
const DefaultMaxBytes = 33 << 20

// Store is a folder of snapshots. It is safe for concurrent use by one
// process; Save calls for the same market must not race each other (the
// cache saves each market from one place at a time).
type Store struct {
	// MaxBytes bounds a file: Load refuses a larger one, or one that grows
	// past it while read, and Save refuses to write one. If zero,
	// DefaultMaxBytes (33 MiB). Set it before the Store is used.
	MaxBytes int64

	dir string
}

// header is the first line of a file.
type header struct {
	Market    exchangeinfo.Market `json:"market"`
	FetchedAt time.Time           `json:"fetched_at"`
}

// New returns a Store over dir, creating it if needed, and checks that a file
// can be written there.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("disk: empty folder name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("disk: folder not writable: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return &Store{dir: dir}, nil
}

func (s *Store) path(m exchangeinfo.Market) string { return filepath.Join(s.dir, string(m)+".json") }

func (s *Store) maxBytes() int64 {
	if s.MaxBytes > 0 {
		return min(s.MaxBytes, math.MaxInt-1) // room for limit+1 in a slice
	}
	return DefaultMaxBytes
}

// Save replaces the market's file with snap, atomically. A file larger than
// MaxBytes, which Load would refuse, is an error.
func (s *Store) Save(snap *exchangeinfo.Snapshot) error {
	h, err := json.Marshal(header{Market: snap.Market(), FetchedAt: snap.FetchedAt().UTC()})
	if err != nil {
		return fmt.Errorf("disk save %s: %w", snap.Market(), err)
	}
	if n := int64(len(h) + 1 + len(snap.Body())); n > s.maxBytes() {
		return fmt.Errorf("disk save %s: file of %d bytes would be larger than %d", snap.Market(), n, s.maxBytes())
	}
	f, err := os.CreateTemp(s.dir, "."+string(snap.Market())+"-*.tmp")
	if err != nil {
		return fmt.Errorf("disk save %s: %w", snap.Market(), err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	_, err = f.Write(append(h, '\n'))
	if err == nil {
		_, err = f.Write(snap.Body())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(snap.Market()))
	}
	if err != nil {
		return fmt.Errorf("disk save %s: %w", snap.Market(), err)
	}
	if d, err := os.Open(s.dir); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}

// Load reads the market's file and validates it with exchangeinfo.Parse. A
// missing file is an error matching os.ErrNotExist. Only a regular file is
// read: a symbolic link (even to a regular file), a directory, a device, a
// FIFO or a socket is an error that says what it is, and so is a file larger
// than MaxBytes, or one that grows past it while read. Load never blocks on
// the file itself (a FIFO is opened without waiting for a writer, then
// refused).
func (s *Store) Load(m exchangeinfo.Market) (*exchangeinfo.Snapshot, error) {
	name := s.path(m)
	b, err := readRegular(name, s.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("disk load %s: %w", m, err)
	}
	line, body, ok := bytes.Cut(b, []byte{'\n'})
	var h header
	if !ok || json.Unmarshal(line, &h) != nil || h.Market != m || h.FetchedAt.IsZero() {
		return nil, fmt.Errorf("disk load %s: %s has no valid header line", m, name)
	}
	snap, err := exchangeinfo.Parse(m, body, h.FetchedAt)
	if err != nil {
		return nil, fmt.Errorf("disk load %s: %w", m, err)
	}
	return snap, nil
}

// readRegular returns the content of the regular file name, of at most
// limit bytes. It looks before it opens (Lstat), opens without following a
// symbolic link and without blocking (openNoFollow), and looks again at
// what it opened (Fstat), since the file may have been replaced between.
// It reads at most limit+1 bytes, whatever the size said.
func readRegular(name string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if err := checkFile(name, fi, limit); err != nil {
		return nil, err
	}
	f, err := openNoFollow(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := checkFile(name, fi, limit); err != nil {
		return nil, err
	}
	b, _, err := bounded.ReadAll(f, fi.Size()+1, limit+1) // +1: EOF without growing
	if errors.Is(err, bounded.ErrTooLarge) {
		return nil, fmt.Errorf("%s grew past %d bytes while read", name, limit)
	}
	return b, err
}

// checkFile refuses anything but a regular file of at most limit bytes.
func checkFile(name string, fi fs.FileInfo, limit int64) error {
	if t := fi.Mode().Type(); t != 0 {
		return fmt.Errorf("%s is not a regular file but a %s", name, typeName(t))
	}
	if fi.Size() > limit {
		return fmt.Errorf("%s is %d bytes, larger than %d", name, fi.Size(), limit)
	}
	return nil
}

// typeName names a file type.
func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "file of type " + t.String()
}
