// Package bench measures symcache's serving path against a baseline measured
// in the same run. For now it holds Go benchmarks over loopback HTTP: the
// sidecar's handler on an L1 hit against a plain net/http handler writing the
// same bytes from memory. The load harness comparing with nginx and Varnish
// (SPEC "Performance") comes with the performance work.
package bench
