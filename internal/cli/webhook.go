package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/licenseops/licenseops/client"
)

const webhookHelp = `A webhook posts the partner's events, signed by the Standard Webhooks
scheme, to an https URL: operation.completed, operation.cancelled,
cleanup.completed, cleanup.blocked. create prints the signing secret, which
is shown this once: store it where the receiver can read it. deliveries shows
what was sent to a webhook, newest first, with attempts and the last error.
`

var webhookCommands = []*Command{
	{
		Name: "webhook create", Args: "--endpoint URL --event EVENT [--event EVENT]... [--description TEXT]", Group: GroupClient,
		Summary: "create a webhook; prints its signing secret, shown once",
		Help:    webhookHelp,
		New:     func() Runner { return &webhookCreateCmd{} },
	},
	{
		Name: "webhook list", Group: GroupClient,
		Summary: "list the partner's webhooks",
		Help:    webhookHelp,
		New:     func() Runner { return &webhookCmd{sub: "list"} },
	},
	{
		Name: "webhook delete", Args: "ID", Group: GroupClient,
		Summary: "delete a webhook and its deliveries",
		Help:    webhookHelp,
		New:     func() Runner { return &webhookCmd{sub: "delete"} },
	},
	{
		Name: "webhook deliveries", Args: "ID [--page N] [--page-size N]", Group: GroupClient,
		Summary: "list a webhook's deliveries, newest first",
		Help:    webhookHelp,
		New:     func() Runner { return &webhookCmd{sub: "deliveries"} },
	},
}

// eventList is a repeatable flag of event types; a comma-separated list
// is split. The API checks the names.
type eventList []string

func (l *eventList) String() string { return strings.Join(*l, ",") }

func (l *eventList) Set(v string) error {
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimSpace(e); e == "" {
			return fmt.Errorf("%q has an empty event type", v)
		}
		if !slices.Contains(*l, e) {
			*l = append(*l, e)
		}
	}
	return nil
}

// webhookCreateCmd is `licenseops webhook create`.
type webhookCreateCmd struct {
	conn        connFlags
	url         string
	events      eventList
	description string
}

func (o *webhookCreateCmd) Flags(fs *flag.FlagSet, env *Env) {
	o.conn.bind(fs, env)
	// --url is the API's own address, as in every client command.
	fs.StringVar(&o.url, "endpoint", "", "the receiver's https `URL` that events are posted to (required)")
	fs.Var(&o.events, "event", "an event type to receive; repeat it or separate with commas (required)")
	fs.StringVar(&o.description, "description", "", "what the webhook is for")
}

func (o *webhookCreateCmd) Validate(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	if o.url == "" {
		return errors.New("--endpoint is required: the receiver's https URL")
	}
	if len(o.events) == 0 {
		return errors.New("--event is required: operation.completed, operation.cancelled, cleanup.completed or cleanup.blocked")
	}
	return o.conn.validate()
}

func (o *webhookCreateCmd) Run(ctx context.Context, env *Env) error {
	h, err := o.conn.client().CreateWebhook(ctx, client.WebhookRequest{URL: o.url, Events: o.events, Description: o.description})
	if err != nil {
		return interrupted(err)
	}
	tw := newTable(env.Stdout)
	fmt.Fprintf(tw, "id:\t%s\nurl:\t%s\nevents:\t%s\nsecret:\t%s\n", h.ID, h.URL, strings.Join(h.Events, ", "), h.Secret)
	_ = tw.Flush()
	fmt.Fprintln(env.Stdout, "The secret is shown this once: store it where the receiver verifies signatures.")
	return nil
}

// webhookCmd is `licenseops webhook list|delete|deliveries`.
type webhookCmd struct {
	sub        string
	conn       connFlags
	id         string
	page, size int
}

func (o *webhookCmd) Flags(fs *flag.FlagSet, env *Env) {
	o.conn.bind(fs, env)
	if o.sub == "deliveries" {
		fs.IntVar(&o.page, "page", 1, "page number")
		fs.IntVar(&o.size, "page-size", 50, "deliveries per page (1–500)")
	}
}

func (o *webhookCmd) Validate(args []string) error {
	switch {
	case o.sub == "list" && len(args) > 0:
		return fmt.Errorf("unexpected argument %q", args[0])
	case o.sub != "list" && len(args) != 1:
		return errors.New("give one webhook ID (see webhook list)")
	case o.sub != "list":
		o.id = args[0]
	}
	return o.conn.validate()
}

func (o *webhookCmd) Run(ctx context.Context, env *Env) error {
	c := o.conn.client()
	switch o.sub {
	case "list":
		hooks, err := c.ListWebhooks(ctx)
		if err != nil {
			return interrupted(err)
		}
		tw := newTable(env.Stdout)
		fmt.Fprintln(tw, "ID\tURL\tEVENTS\tDESCRIPTION\tCREATED BY\tCREATED")
		for _, h := range hooks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.Events, ","), dash(h.Description),
				dash(h.CreatedBy), h.CreatedAt.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
		fmt.Fprintln(env.Stdout, plural(len(hooks), "webhook"))
		return nil
	case "delete":
		if err := c.DeleteWebhook(ctx, o.id); err != nil {
			return interrupted(err)
		}
		fmt.Fprintf(env.Stdout, "Deleted webhook %s.\n", o.id)
		return nil
	default:
		p, err := c.ListWebhookDeliveries(ctx, o.id, client.ListOptions{Page: o.page, PageSize: o.size})
		if err != nil {
			return interrupted(err)
		}
		tw := newTable(env.Stdout)
		fmt.Fprintln(tw, "ID\tEVENT\tSTATUS\tATTEMPTS\tLAST STATUS\tLAST ERROR\tCREATED\tDELIVERED")
		for _, d := range p.Deliveries {
			last := "-"
			if d.LastStatus != nil {
				last = fmt.Sprint(*d.LastStatus)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.EventType, d.Status, d.Attempts, last, dash(deref(d.LastError)),
				d.CreatedAt.UTC().Format(time.RFC3339), fmtTime(d.DeliveredAt))
		}
		_ = tw.Flush()
		printPageFooter(env.Stdout, p.Page, p.TotalPages, plural(p.Total, "delivery", "deliveries"))
		return nil
	}
}
