package server

// Service names and their standard ports (DESIGN.md). --port-offset N adds N to each.
const (
	PortSMTP        = 25
	PortSubmission  = 587
	PortSubmissions = 465
	PortIMAP        = 143
	PortIMAPS       = 993
	PortPOP3        = 110
	PortPOP3S       = 995
	PortHTTP        = 80
	PortHTTPS       = 443
)

// DevPortOffset is the offset --dev uses, so a developer needs no root and no free port 25.
const DevPortOffset = 10000
