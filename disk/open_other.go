//go:build !unix

package disk

import "os"

// openNoFollow opens name for reading. Without O_NOFOLLOW and O_NONBLOCK,
// only the checks around it (Lstat before, Fstat after) keep Load to a
// regular file.
func openNoFollow(name string) (*os.File, error) { return os.Open(name) }
