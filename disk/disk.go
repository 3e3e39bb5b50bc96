// Package disk keeps the last good exchangeInfo snapshot of each market in a
// folder, so that a process without Redis that restarts while Binance is
// unreachable still has something valid to serve.
//
// Each market is one file, <market>.json: a first line of JSON metadata
// ({"market","fetched_at"}) followed by Binance's body exactly as received.
// Files are replaced atomically (a temporary file in the same folder, synced,
// then renamed over the old one), so a crash leaves the old copy or the new
// one, never a mix; a copy that fails validation when loaded is an error, not
// a snapshot.
package disk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// maxFile bounds what Load reads (Binance's spot answer is a few MB).
const maxFile = 256 << 20

// Store is a folder of snapshots. It is safe for concurrent use by one
// process; Save calls for the same market must not race each other (the
// cache saves each market from one place at a time).
type Store struct {
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

// Save replaces the market's file with snap, atomically.
func (s *Store) Save(snap *exchangeinfo.Snapshot) error {
	h, err := json.Marshal(header{Market: snap.Market(), FetchedAt: snap.FetchedAt().UTC()})
	if err != nil {
		return fmt.Errorf("disk save %s: %w", snap.Market(), err)
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
// missing file is an error matching os.ErrNotExist.
func (s *Store) Load(m exchangeinfo.Market) (*exchangeinfo.Snapshot, error) {
	f, err := os.Open(s.path(m))
	if err != nil {
		return nil, fmt.Errorf("disk load %s: %w", m, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxFile {
		return nil, fmt.Errorf("disk load %s: file of %d bytes is larger than %d", m, fi.Size(), maxFile)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, fmt.Errorf("disk load %s: %w", m, err)
	}
	line, body, ok := bytes.Cut(b, []byte{'\n'})
	var h header
	if !ok || json.Unmarshal(line, &h) != nil || h.Market != m || h.FetchedAt.IsZero() {
		return nil, fmt.Errorf("disk load %s: %s has no valid header line", m, f.Name())
	}
	snap, err := exchangeinfo.Parse(m, body, h.FetchedAt)
	if err != nil {
		return nil, fmt.Errorf("disk load %s: %w", m, err)
	}
	return snap, nil
}
