//go:build !faultinject

package intake

// failpoint marks a place where the fault tests crash the api on purpose
// (see failpoint_faultinject.go). Ordinary builds compile it to nothing.
func failpoint(string) {}
