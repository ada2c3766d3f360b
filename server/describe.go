package server

import "mailstead/imap"

// describe parses a message into its IMAP ENVELOPE and BODYSTRUCTURE once, at delivery, so
// that fetching them never reparses the body.
var describe = imap.DescribeAt
