//go:build unix

package disk

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openNoFollow opens name for reading, failing on a symbolic link
// (O_NOFOLLOW) and without waiting for a FIFO's writer (O_NONBLOCK, which
// changes nothing for a regular file).
func openNoFollow(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is not a regular file but a symbolic link: %w", name, err)
	}
	return f, err
}
