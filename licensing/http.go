package licensing

import "net/http"

// HTTPStatus maps an error code to its HTTP status. It is the only place
// that does, so that a code means the same status in the JSON API and on
// the console's error pages.
func HTTPStatus(code Code) int {
	switch code {
	case CodeInvalidRequest:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeConflict, CodeCountViolation, CodeIdempotencyKeyInUse, CodeSeatsInUse:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeIdempotencyKeyReused, CodeUnknownUsers, CodeUnknownSkus, CodeUnknownServicePlans, CodeUnknownEvents, CodeWebhookTargetRefused:
		return http.StatusUnprocessableEntity
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable, CodeNotMigrated:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
