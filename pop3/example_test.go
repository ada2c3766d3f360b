package pop3_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"mailstead/pop3"
	"mailstead/pop3/pop3test"
)

// One Server serves the plain port (with STLS) and the implicit-TLS port,
// so the maildrop lock and the login throttle are shared.
func ExampleNewServer() {
	backend := pop3test.NewMemory() // server/ passes its store adapter here
	var tlsConfig *tls.Config       // server/ passes the ACME-backed config here
	srv, err := pop3.NewServer(pop3.Config{
		Backend:   backend,
		TLSConfig: tlsConfig,
		Logger:    slog.Default(),
		Hostname:  func() string { return "mail.example.com" },
	})
	if err != nil {
		panic(err)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0") // 110
	if err != nil {
		panic(err)
	}
	go srv.Serve(plain)
	if tlsConfig != nil {
		implicit, err := net.Listen("tcp", "127.0.0.1:0") // 995
		if err != nil {
			panic(err)
		}
		go srv.ServeTLS(implicit)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	// Output:
}
