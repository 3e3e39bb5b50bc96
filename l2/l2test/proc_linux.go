package l2test

import "syscall"

// sysProcAttr has the kernel kill redis-server when the test binary dies, even
// by a -timeout panic, which runs no cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
