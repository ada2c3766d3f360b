package server

import (
	"mailstead/acme"
	"mailstead/manage"
)

// settingsValidator checks a setting before the operations layer stores it.
type settingsValidator struct{}

func (settingsValidator) Validate(key, value string) error {
	if key == "hostname" {
		_, err := manage.CheckHostname(value)
		return err
	}
	if err := acme.ValidateSetting(key, value); err != nil {
		return &manage.InvalidError{Field: key, Reason: err.Error()}
	}
	return nil
}
