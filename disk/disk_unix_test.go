//go:build unix

package disk_test

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestStore_Load_notRegular checks that Load reads only a regular file:
// anything else in spot.json's place is refused at once, with an error
// saying what it is. Before, a symbolic link to /dev/zero took the process
// to 3.1 GB RSS, and a FIFO blocked Load for good.
func TestStore_Load_notRegular(t *testing.T) {
	good := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	valid := []byte(`{"market":"spot","fetched_at":"2026-11-26T09:00:00Z"}` + "\n" + string(good))
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string // in the error
	}{
		{"symbolic link to /dev/zero", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"symbolic link to a valid copy", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			if err := os.WriteFile(target, valid, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"FIFO", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "FIFO"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "directory"},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			t.Cleanup(func() { l.Close() })
		}, "socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := disk.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.make(t, filepath.Join(dir, "spot.json"))
			type result struct {
				s   *exchangeinfo.Snapshot
				err error
			}
			done := make(chan result, 1)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			go func() {
				s, err := st.Load(exchangeinfo.Spot)
				done <- result{s, err}
			}()
			select {
			case r := <-done:
				runtime.ReadMemStats(&after)
				if r.s != nil || r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
					t.Errorf("Load of a %s = %v, %v; want an error saying %q", tt.name, r.s, r.err, tt.want)
				}
				if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
					t.Errorf("Load of a %s allocated %d bytes, want less than 1 MiB", tt.name, n)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Load of a %s still running after 5s, want an error at once", tt.name)
			}
		})
	}
}

// TestStore_MaxBytes checks that Load refuses a file larger than MaxBytes
// and reads one of exactly MaxBytes, and that Save refuses to write what
// Load would refuse.
func TestStore_MaxBytes(t *testing.T) {
	dir := t.TempDir()
	st, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxBytes != 0 {
		t.Errorf("New(%q).MaxBytes = %d, want 0 (DefaultMaxBytes)", dir, st.MaxBytes)
	}
	snap, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(snap); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "spot.json"))
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()

	st.MaxBytes = size
	if got, err := st.Load(exchangeinfo.Spot); err != nil || got.Len() != snap.Len() {
		t.Errorf("Load of %d bytes, MaxBytes %d = %v, want the snapshot", size, size, err)
	}
	st.MaxBytes = size - 1
	if got, err := st.Load(exchangeinfo.Spot); got != nil || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of %d bytes, MaxBytes %d = %v, %v; want an error saying it is larger", size, size-1, got, err)
	}
	if err := st.Save(snap); err == nil {
		t.Errorf("Save of %d bytes, MaxBytes %d = nil, want an error", size, size-1)
	}
	if got, err := os.Stat(filepath.Join(dir, "spot.json")); err != nil || got.Size() != size {
		t.Errorf("a refused Save changed the file: %v", err)
	}

	// The default: a file far larger is refused without being read.
	st.MaxBytes = 0
	big := filepath.Join(dir, "usdm.json")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, disk.DefaultMaxBytes+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := st.Load(exchangeinfo.USDM)
	runtime.ReadMemStats(&after)
	if got != nil || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of DefaultMaxBytes+1 bytes = %v, %v; want an error saying it is larger", got, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("Load of DefaultMaxBytes+1 bytes allocated %d bytes, want less than 1 MiB", n)
	}
}
