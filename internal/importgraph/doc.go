// Package importgraph holds no code, only a test that keeps the module's
// import graph as the layering says it is:
//
//	cmd/* → httpapi → root → {l1, l2, fetch, disk, rules, version, changes} → exchangeinfo
//
// with exchangeinfo importing the standard library only, l2 importing no
// project package, nothing importing cmd/*, and the test support packages
// (internal/testutil, internal/fixtures, fetch/fetchtest, l2/l2test) imported
// by tests. The table in importgraph_test.go says, for each package, which
// project packages it may import; a new package or a new import across the
// layers is a change to that table.
package importgraph
