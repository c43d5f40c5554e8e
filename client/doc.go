// Package client is the Go client of the licenseops HTTP API: one typed
// method per endpoint, the API's error body as *Error, rate limits waited
// out, confirmation reports streamed row by row, and a poller that waits
// for an operation to finish.
//
// A Client is made once per token and is safe for concurrent use:
//
//	c := client.New("https://licenseops.example.com", os.Getenv("LICENSEOPS_TOKEN"))
//	acc, err := c.CreateOperation(ctx, "contoso", client.OperationRequest{
//		UserIDs: []string{"u1", "u2"},
//		Assign:  []string{"E5"},
//	}, "rollout-2026-11-24")
//	if err != nil {
//		var e *client.Error
//		if errors.As(err, &e) && e.Code == client.CodeCountViolation {
//			var d client.CountViolationDetails
//			_ = e.DecodeDetails(&d) // the SKUs that lack seats, with their buy-more links
//		}
//		return err
//	}
//	op, err := c.WaitOperation(ctx, acc.ID, client.WaitOptions{
//		Progress: func(op client.Operation) { fmt.Printf("%d/%d\n", op.Succeeded+op.Failed, op.Total) },
//	})
//
// # Requests
//
// Every method goes through one request path: the base URL and the escaped
// path segments, "Authorization: Bearer <token>", JSON bodies, the
// Idempotency-Key header when a call takes one, and a bounded number of
// retries of 429 RateLimited answers, each after the wait that Retry-After
// asks for (the API refuses a request over the limit before doing
// anything, so the retry cannot do it twice). A context ends the wait.
// Do is the same path without the retries and the typed decoding, for
// wire-level tests and endpoints this package does not know yet;
// CheckResponse reads its non-2xx answers as the typed methods do.
//
// # Errors
//
// An answer outside 2xx is an *Error with the HTTP status and the code,
// message and details of the API's error body. Branch on the code, which is
// stable (the Code… constants), not on the message:
//
//	if client.ErrorCode(err) == client.CodeNotFound { … }
//
// DecodeDetails decodes the details of the codes that carry them into
// CountViolationDetails, UnknownUsersDetails, UnknownSkusDetails,
// SeatsInUseDetails and RateLimitedDetails. Transport failures and
// cancelled contexts are returned as they are.
//
// # Types
//
// The answers are package licensing's types where the API sends them as
// they are (Operation, Customer, User, Product, …, as aliases here), and
// types of this package where the API adds to them (Subscription with its
// buy-more link, CleanupPolicy with its next run and links, ReportRow with
// its error) or has shapes of its own (pages, accepted operations, the
// license summary). The request bodies are the …Request, …Update and
// UserImport types. Optional fields are pointers: new("US") makes one.
package client
