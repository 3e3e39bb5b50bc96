package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A sidecar listens on TCP (SYMCACHE_ADDR=host:port) or on a Unix domain
// socket (SYMCACHE_ADDR=unix:/path/to.sock): the containers of a pod can
// share one through an emptyDir volume and skip TCP altogether.

// unixPrefix marks a Unix socket address.
const unixPrefix = "unix:"

// maxSocketPath is the longest socket path Linux takes (sun_path is 108
// bytes with its final NUL).
const maxSocketPath = 107

// listenAddr is a parsed SYMCACHE_ADDR.
type listenAddr struct {
	network string      // "tcp" or "unix"
	address string      // host:port, or the socket's path
	mode    fs.FileMode // the socket file's mode (unix)
}

func (a listenAddr) String() string {
	if a.network == "unix" {
		return unixPrefix + a.address
	}
	return a.address
}

// parseListenAddr reads SYMCACHE_ADDR. The errors say what is wrong, for
// a settingError.
func parseListenAddr(addr string) (listenAddr, error) {
	path, isUnix := strings.CutPrefix(addr, unixPrefix)
	if !isUnix {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return listenAddr{}, fmt.Errorf("%q is not host:port or unix:/path/to.sock", addr)
		}
		return listenAddr{network: "tcp", address: addr}, nil
	}
	switch {
	case path == "":
		return listenAddr{}, fmt.Errorf("%q names no socket file: want unix:/path/to.sock", addr)
	case len(path) > maxSocketPath:
		return listenAddr{}, fmt.Errorf("the socket path is %d bytes, more than the %d a Unix socket takes", len(path), maxSocketPath)
	case strings.ContainsRune(path, 0):
		return listenAddr{}, fmt.Errorf("the socket path %q holds a NUL byte", path)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return listenAddr{}, fmt.Errorf("the folder of the socket %q does not exist", path)
	}
	return listenAddr{network: "unix", address: path, mode: 0o660}, nil
}

// parseSocketMode reads SYMCACHE_SOCKET_MODE: octal permissions that let
// the owner read and write.
func parseSocketMode(mode string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil || m > 0o777 || m&0o600 != 0o600 {
		return 0, fmt.Errorf("%q is not a file mode in octal that lets the owner read and write, such as 0660", mode)
	}
	return fs.FileMode(m), nil
}

// listen listens on a. For a socket: a file left at the path by a process
// that died (a socket nothing answers on) is replaced; a socket something
// answers on, or any other file, is left alone and is an error. The socket
// is given its mode, and removed when the listener closes.
func listen(a listenAddr) (net.Listener, error) {
	if a.network != "unix" {
		return net.Listen(a.network, a.address)
	}
	if fi, err := os.Lstat(a.address); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: not replaced", a.address)
		}
		c, err := net.DialTimeout("unix", a.address, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process listens on it", a.address)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s exists and cannot be checked: %w", a.address, err)
		}
		if err := os.Remove(a.address); err != nil { // left by a process that died
			return nil, fmt.Errorf("removing the stale socket %s: %w", a.address, err)
		}
	}
	ln, err := net.Listen("unix", a.address) // removed on Close
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(a.address, a.mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
}
