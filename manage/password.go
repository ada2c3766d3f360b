package manage

import (
	"strings"
	"unicode/utf8"
)

// MinPasswordLength is the one password rule of every path (wizard, CLI, API, pages).
const MinPasswordLength = 10

// PasswordRule is the message every path shows for a password the rule refuses.
const PasswordRule = "choose a password of at least 10 characters, not only spaces"

// CheckPassword applies the one password rule: at least MinPasswordLength characters once
// leading and trailing spaces are set aside, so ten spaces are not a password.
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(strings.TrimSpace(pw)) < MinPasswordLength {
		return invalid("password", PasswordRule)
	}
	return nil
}
