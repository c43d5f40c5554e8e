package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/licenseops/licenseops/client"
)

// Assign a license to users, wait for the operation and go through its
// report, handling the refusals that carry details.
func Example() {
	ctx := context.Background()
	c := client.New("https://licenseops.example.com", os.Getenv("LICENSEOPS_TOKEN"),
		client.WithUserAgent("rollout-script/1.0"))

	acc, err := c.CreateOperation(ctx, "contoso", client.OperationRequest{
		UserIDs: []string{"alice", "bob"},
		Assign:  []string{"E5"},
	}, "contoso-e5-rollout") // repeating the call with this key cannot start a second operation
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == client.CodeCountViolation:
		var d client.CountViolationDetails
		if apiErr.DecodeDetails(&d) == nil {
			for _, s := range d.SKUs {
				fmt.Printf("%s: %d seats needed, %d available; buy more at %s\n", s.SKU, s.Needed, s.Available, s.BuyMoreURL)
			}
		}
		return
	case err != nil:
		log.Fatal(err)
	}

	op, err := c.WaitOperation(ctx, acc.ID, client.WaitOptions{
		Progress: func(op client.Operation) {
			fmt.Printf("%d of %d done, %d failed\n", op.Succeeded+op.Failed, op.Total, op.Failed)
		},
		Stalled: func(op client.Operation, idle time.Duration) {
			fmt.Printf("nothing has moved for %s: is a worker running?\n", idle.Round(time.Second))
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("operation", op.ID, op.Status)

	// The report arrives row by row, whatever its size.
	_, err = c.Report(ctx, op.ID, func(row client.ReportRow) error {
		if row.Error != nil {
			fmt.Printf("%s: %s (%s)\n", row.UserID, row.Error.Message, row.Error.Code)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Tell refusals apart by their stable codes.
func ExampleErrorCode() {
	c := client.New("https://licenseops.example.com", os.Getenv("LICENSEOPS_TOKEN"))
	_, err := c.GetCustomer(context.Background(), "contoso")
	switch client.ErrorCode(err) {
	case "":
		// nil, or no answer of the API (a network failure, a cancelled context)
	case client.CodeNotFound:
		fmt.Println("no customer contoso")
	case client.CodeForbidden:
		fmt.Println("this token's role may not read customers")
	}
}
