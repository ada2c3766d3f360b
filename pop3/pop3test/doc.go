// Package pop3test holds test helpers for the POP3 service: an in-memory
// Backend, a throwaway certificate authority for real TLS on loopback, and
// interop checks that drive third-party POP3 clients (Python poplib,
// fetchmail) against any POP3 server address. It is imported by tests only
// and must never be linked into the mailstead binary.
package pop3test
