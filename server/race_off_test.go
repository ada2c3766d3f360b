//go:build !race

package server_test

// raceDetector is set under `go test -race` (see race_on_test.go).
const raceDetector = false
