package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

// The roles table of the API (README "Security"): what the console lets a
// role do beyond reading.

// canOperate reports whether role may create license operations (Save).
func canOperate(role string) bool {
	switch role {
	case licensing.RoleGlobalAdmin, licensing.RoleAdminAgent, licensing.RoleUserManagementAdmin,
		licensing.RoleHelpdeskAgent, licensing.RoleSalesAgent:
		return true
	}
	return false
}

// canSetUsageLocation reports whether role may change usage locations.
func canSetUsageLocation(role string) bool {
	switch role {
	case licensing.RoleGlobalAdmin, licensing.RoleAdminAgent, licensing.RoleUserManagementAdmin:
		return true
	}
	return false
}

// maxForm bounds a posted form: a page of user IDs, or the Manage-licenses
// form with its products.
const maxForm = 1 << 20

// ---- sign in and out

type signInPage struct {
	View
	FormCSRF string
	Error    string
	Notice   string
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s, _ := c.sessions.load(r); s != nil {
		http.Redirect(w, r, "/console/customers", http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "", r.URL.Query().Get("expired") != "")
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, errID string, expired bool, kv ...any) {
	tok, err := c.preSessionCSRF(w, r)
	if err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	v := c.view(r, nil, c.language(r))
	v.Title = v.T("SignInTitle")
	data := signInPage{View: v, FormCSRF: tok}
	if errID != "" {
		data.Error = v.T(errID, kv...)
	}
	if expired {
		data.Notice = v.T("SessionEnded")
	}
	c.render(w, status, "signin", data)
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.renderSignIn(w, r, http.StatusBadRequest, "SignInFormInvalid", false)
		return
	}
	if !validPreSessionCSRF(r) {
		c.renderSignIn(w, r, http.StatusForbidden, "SignInFormExpired", false)
		return
	}
	// Attempts are counted per client address before the token is looked
	// up (ratelimit.SignIn).
	if d := c.limiter.AllowSignIn(r.Context(), c.clientAddr(r)); !d.Allowed {
		w.Header().Set("Retry-After", itoa(d.RetryAfter))
		c.renderSignIn(w, r, http.StatusTooManyRequests, "SignInRateLimited", false, "Count", d.RetryAfter)
		return
	}
	secret := r.PostFormValue("token")
	if secret == "" || len(secret) > 200 {
		c.renderSignIn(w, r, http.StatusUnauthorized, "WrongToken", false)
		return
	}
	p, err := c.store.Authenticate(r.Context(), secret)
	if err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	if p == nil {
		c.renderSignIn(w, r, http.StatusUnauthorized, "WrongToken", false)
		return
	}
	// A new session ID at every sign-in: an ID planted before it is worthless.
	if old, _ := c.sessions.load(r); old != nil {
		_ = c.sessions.delete(r.Context(), old)
	}
	id, err := c.sessions.create(r.Context(), p)
	if err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	c.setSessionCookie(w, r, id)
	// #nosec G124 -- Secure follows the request (c.secure: TLS, or a trusted proxy that says so), since the console also serves plain HTTP on a private address; HttpOnly and SameSite=Strict are always set
	http.SetCookie(w, &http.Cookie{Name: preCSRFCookie, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true,
		Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	c.log.InfoContext(r.Context(), "console sign-in", "partner_id", p.PartnerID, "token_id", p.TokenID, "role", p.Role)
	http.Redirect(w, r, "/console/customers", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.sessions.delete(r.Context(), s); err != nil {
		return err
	}
	c.clearSessionCookie(w, r)
	http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
	return nil
}

// ---- customers

type customersPage struct {
	View
	Customers []licensing.Customer
}

func (c *Console) customers(w http.ResponseWriter, r *http.Request, s *session) error {
	cs, err := c.store.ListCustomers(r.Context(), s.principal.PartnerKey)
	if err != nil {
		return err
	}
	v := c.view(r, s, s.lang)
	v.Title, v.Nav = v.T("CustomersTitle"), "customers"
	c.render(w, http.StatusOK, "customers", customersPage{View: v, Customers: cs})
	return nil
}

// customer resolves {cid} within the session's partner: a foreign customer
// is NotFound, like a missing one.
func (c *Console) customer(r *http.Request, s *session) (licensing.Customer, error) {
	cid := r.PathValue("cid")
	if err := licensing.CheckID("customer id", cid); err != nil {
		return licensing.Customer{}, pageErr(licensing.CodeNotFound, "NotFoundMessage")
	}
	return c.store.GetCustomer(r.Context(), s.principal.PartnerKey, cid)
}

func (c *Console) customerView(r *http.Request, s *session, cust *licensing.Customer, nav, titleID string) View {
	v := c.view(r, s, s.lang)
	v.Customer, v.Nav = cust, nav
	v.Title = v.T(titleID) + " · " + cust.Name
	return v
}

// ---- users and the selection

// PageSize is the number of users on a users page.
const PageSize = 50

type userRow struct {
	licensing.User
	Selected bool
	Licenses []string // product names
}

type pager struct {
	Page, Pages, Total      int
	First, Prev, Next, Last string // links, "" when not applicable
}

func newPager(base string, page, total, size int, extra ...any) pager {
	pages := max(1, (total+size-1)/size)
	p := pager{Page: page, Pages: pages, Total: total}
	link := func(n int) string {
		return base + funcs["query"].(func(...any) string)(append(append([]any{}, extra...), "page", n)...)
	}
	if page > 1 {
		p.First, p.Prev = link(1), link(page-1)
	}
	if page < pages {
		p.Next, p.Last = link(page+1), link(pages)
	}
	return p
}

func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return min(n, 1_000_000)
}

type usersPage struct {
	View
	Query         string
	SelectedView  bool
	Users         []userRow
	AllOnPage     bool
	SelectedCount int
	Matching      int
	Pager         pager
	MaxSelection  int
}

func (c *Console) users(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query().Get("q")
	if len(q) > 200 {
		q = q[:200]
	}
	selectedView := r.URL.Query().Get("view") == "selected"
	page := pageParam(r)
	sel := c.selection(s, cust.ID)
	var up storage.UserPage
	if selectedView {
		ids, err := sel.ids(ctx)
		if err != nil {
			return err
		}
		up, err = c.store.ListUsersIn(ctx, cust.Key, ids, q, PageSize, (page-1)*PageSize)
		if err != nil {
			return err
		}
	} else if up, err = c.store.ListUsers(ctx, cust.Key, q, PageSize, (page-1)*PageSize); err != nil {
		return err
	}
	ids := make([]string, len(up.Users))
	for i, u := range up.Users {
		ids[i] = u.ID
	}
	in, err := sel.contains(ctx, ids)
	if err != nil {
		return err
	}
	count, err := sel.count(ctx)
	if err != nil {
		return err
	}
	names, err := c.productNames(r, s, cust)
	if err != nil {
		return err
	}
	rows := make([]userRow, len(up.Users))
	all := len(rows) > 0
	for i, u := range up.Users {
		rows[i] = userRow{User: u, Selected: in[i]}
		for _, sku := range u.Licenses {
			rows[i].Licenses = append(rows[i].Licenses, names.name(sku))
		}
		all = all && in[i]
	}
	view := ""
	if selectedView {
		view = "selected"
	}
	v := c.customerView(r, s, &cust, "users", "UsersTitle")
	c.render(w, http.StatusOK, "users", usersPage{
		View: v, Query: q, SelectedView: selectedView, Users: rows, AllOnPage: all, SelectedCount: count,
		Matching: up.Total, MaxSelection: c.cfg.MaxSelection,
		Pager: newPager("/console/customers/"+pathEscape(cust.ID)+"/users", page, up.Total, PageSize, "q", q, "view", view),
	})
	return nil
}

type productNames map[string]string

func (n productNames) name(sku string) string {
	if s, ok := n[sku]; ok && s != "" {
		return s
	}
	return sku
}

func (c *Console) productNames(r *http.Request, s *session, cust licensing.Customer) (productNames, error) {
	subs, err := c.store.ListSubscriptions(r.Context(), s.principal.PartnerKey, cust.Key)
	if err != nil {
		return nil, err
	}
	out := make(productNames, len(subs))
	for _, sub := range subs {
		out[sub.SKU] = sub.Name
	}
	return out, nil
}

// changeSelection adds or removes users of a page (the page's script sends
// it as each box changes), selects a whole search result, or clears the
// selection. A script gets the new count as JSON; a form goes back.
func (c *Console) changeSelection(w http.ResponseWriter, r *http.Request, s *session) error {
	cust, err := c.customer(r, s)
	if err != nil {
		return err
	}
	ctx := r.Context()
	sel := c.selection(s, cust.ID)
	users := r.PostForm["user"]
	if len(users) > 1000 {
		return pageErr(licensing.CodeTooLarge, "TooManyInOneChange")
	}
	if err := licensing.CheckIDs("user id", users); err != nil {
		return err
	}
	switch r.PostFormValue("op") {
	case "add":
		known, err := c.store.ExistingUserIDs(ctx, cust.Key, users)
		if err != nil {
			return err
		}
		if err := c.checkRoom(r, sel, len(known)); err != nil {
			return err
		}
		err = sel.add(ctx, known)
		if err != nil {
			return err
		}
	case "remove":
		if err := sel.remove(ctx, users); err != nil {
			return err
		}
	case "all":
		ids, err := c.store.MatchingUserIDs(ctx, cust.Key, r.PostFormValue("q"), c.cfg.MaxSelection+1)
		if err != nil {
			return err
		}
		if err := c.checkRoom(r, sel, len(ids)); err != nil {
			return err
		}
		if err := sel.add(ctx, ids); err != nil {
			return err
		}
	case "clear":
		if err := sel.clear(ctx); err != nil {
			return err
		}
	default:
		return pageErr(licensing.CodeInvalidRequest, "UnknownSelectionChange")
	}
	n, err := sel.count(ctx)
	if err != nil {
		return err
	}
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(map[string]any{"count": n, "text": c.i18n.translate(s.lang, "SelectedUsersLink", "Count", n)})
	}
	http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther) // #nosec G710 -- localPath keeps only a path of the console
	return nil
}

// checkRoom refuses to grow a selection past MaxSelection, counting every
// added user as new (a user already selected is counted twice: the limit
// errs on the safe side).
func (c *Console) checkRoom(r *http.Request, sel selection, adding int) error {
	n, err := sel.count(r.Context())
	if err != nil {
		return err
	}
	if n+adding > c.cfg.MaxSelection {
		return pageErr(licensing.CodeTooLarge, "SelectionFull", "Max", c.cfg.MaxSelection)
	}
	return nil
}

func pathEscape(s string) string { return url.PathEscape(s) }
