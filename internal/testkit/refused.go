package testkit

import (
	"fmt"
	"syscall"
	"testing"
)

// RefusedAddr is a loopback address ("127.0.0.1:PORT") whose connections
// are refused, for as long as the test runs. A socket bound to the port
// but not listening holds it: a port picked and closed again could be
// handed to another test's listener meanwhile, which would then take the
// connections meant to fail.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
