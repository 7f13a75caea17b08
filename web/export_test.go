package web

// For the tests of package web_test.
const (
	MaxCreations   = maxCreations
	CreationWindow = creationWindow
)
