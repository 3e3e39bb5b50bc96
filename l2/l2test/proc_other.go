//go:build !linux

package l2test

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
