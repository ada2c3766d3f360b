//go:build race

package server_test

// raceDetector is set under `go test -race`, which runs code several times slower: load tests
// scale their message counts down with it, keeping the same shape.
const raceDetector = true
