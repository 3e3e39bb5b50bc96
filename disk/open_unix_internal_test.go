//go:build unix

package disk

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenNoFollow checks the second line of defence, for a file replaced
// after Load looked at it: opening refuses a symbolic link, and returns at
// once for a FIFO without a writer, whose Fstat then tells it apart.
func TestOpenNoFollow(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	if f, err := openNoFollow(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		f.Close()
		t.Errorf("openNoFollow(symbolic link) = %v, want an error saying it is a symbolic link", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openNoFollow(fifo)
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				err = checkFile(fifo, fi, 1<<20)
			}
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Errorf("openNoFollow(FIFO), then checkFile = %v, want an error saying it is a FIFO", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("openNoFollow(FIFO) still blocked after 5s")
	}
}
