package mailauth

import (
	"errors"
	"fmt"
	"strings"
)

// dkimSignature holds the tags of a DKIM-Signature field that we report in
// Authentication-Results and use for DMARC alignment. The cryptographic
// check itself is go-msgauth's.
type dkimSignature struct {
	Domain     string // d=, lower case
	Selector   string // s=
	Algorithm  string // a=, for example "rsa-sha256"
	Identifier string // i=, may be empty
	B          string // b= without white space
}

// parseTagList parses an RFC 6376 section 3.2 tag=value list:
//
//	tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//	tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//	tag-name  =  ALPHA *ALNUMPUNC        ; ALNUMPUNC = ALPHA / DIGIT / "_"
//
// Values keep inner white space; surrounding white space is removed. A
// duplicate tag makes the whole list invalid (section 3.2: "Tags with
// duplicate names MUST NOT occur").
func parseTagList(s string) (map[string]string, error) {
	tags := map[string]string{}
	for spec := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("tag without '=': %q", strings.TrimSpace(spec))
		}
		name = strings.Trim(name, " \t\r\n")
		if !validTagName(name) {
			return nil, fmt.Errorf("bad tag name %q", name)
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("duplicate tag %q", name)
		}
		tags[name] = strings.Trim(value, " \t\r\n")
	}
	return tags, nil
}

func validTagName(n string) bool {
	if n == "" || !isAlpha(n[0]) {
		return false
	}
	for i := 1; i < len(n); i++ {
		c := n[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// parseDKIMSignature parses the value of a DKIM-Signature field (RFC 6376
// section 3.5) far enough for reporting: v, a, d, s are required.
func parseDKIMSignature(value string) (dkimSignature, error) {
	tags, err := parseTagList(value)
	if err != nil {
		return dkimSignature{}, err
	}
	if tags["v"] != "1" {
		return dkimSignature{}, errors.New("missing or unknown v= tag")
	}
	sig := dkimSignature{
		Domain:     strings.ToLower(strings.TrimRight(stripFWS(tags["d"]), ".")),
		Selector:   stripFWS(tags["s"]),
		Algorithm:  strings.ToLower(stripFWS(tags["a"])),
		Identifier: stripFWS(tags["i"]),
		B:          stripFWS(tags["b"]),
	}
	if sig.Domain == "" || sig.Selector == "" || sig.Algorithm == "" {
		return sig, errors.New("missing d=, s= or a= tag")
	}
	return sig, nil
}

// stripFWS removes all folding white space, as for base64 tag values.
func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}
