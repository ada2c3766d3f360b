package server

// describe parses a message into its IMAP ENVELOPE and BODYSTRUCTURE at delivery. Until the
// IMAP package provides its encoder, messages are stored without them and parsed on demand.
var describe func(msg []byte) (envelope, structure []byte)
