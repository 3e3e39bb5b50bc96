package l2test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSServer is a Server that also serves TLS (rediss://) on a port of its
// own, with a certificate for 127.0.0.1 signed by a throwaway CA.
type TLSServer struct {
	*Server
	tlsPort int
	// CAPool holds the CA that signed the server's certificate: a client
	// trusts the server with it as RootCAs.
	CAPool *x509.CertPool
}

// StartTLS starts a redis-server serving plain TCP (Addr, for the test's own
// checks) and TLS (TLSAddr), stopped in t.Cleanup. Clients need no
// certificate of their own.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	requireRedis(t)
	dir := t.TempDir()
	pool, certFile, keyFile, caFile, err := writeCerts(dir)
	if err != nil {
		t.Fatalf("l2test: TLS certificates: %v", err)
	}
	tlsPort, err := freePort()
	if err != nil {
		t.Fatalf("l2test: find a free port: %v", err)
	}
	s := &TLSServer{Server: &Server{dir: dir}, tlsPort: tlsPort, CAPool: pool}
	s.args = func(port int) []string {
		return append(s.plainArgs(port),
			"--tls-port", strconv.Itoa(tlsPort),
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
			"--tls-auth-clients", "no")
	}
	t.Cleanup(s.Stop)
	if err := s.startFree(freePort); err != nil {
		t.Fatalf("l2test: start redis-server with TLS: %v", err)
	}
	return s
}

// TLSAddr returns the TLS address, "127.0.0.1:PORT".
func (s *TLSServer) TLSAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort)) }

// TLSURL returns "rediss://127.0.0.1:PORT/0".
func (s *TLSServer) TLSURL() string { return "rediss://" + s.TLSAddr() + "/0" }

// writeCerts writes a CA and a server certificate for 127.0.0.1 (ECDSA
// P-256, valid for a day) into dir.
func writeCerts(dir string) (pool *x509.CertPool, certFile, keyFile, caFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "l2test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, "", "", "", err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, "", "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, "", "", "", err
	}
	certFile, keyFile, caFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", keyDER}, {caFile, "CERTIFICATE", caDER}} {
		if err := os.WriteFile(f.name, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return nil, "", "", "", err
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile, caFile, nil
}
