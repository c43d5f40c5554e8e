package console

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// pages are the parsed templates: each page is the layout with its own
// "content", so that every page shares one head, header and footer.
type pages struct {
	byName map[string]*template.Template
}

var funcs = template.FuncMap{
	"join": strings.Join,
	"query": func(kv ...any) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			switch x := kv[i+1].(type) {
			case string:
				if x != "" {
					v.Set(k, x)
				}
			case int:
				v.Set(k, itoa(x))
			case bool:
				if x {
					v.Set(k, "1")
				}
			}
		}
		if len(v) == 0 {
			return ""
		}
		return "?" + v.Encode()
	},
	"pathEscape": url.PathEscape,
	"add":        func(a, b int) int { return a + b },
	"time": func(t time.Time) string {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return nil, err
		}
		p.byName[name] = t
	}
	return p, nil
}

// View is what the layout needs on every page.
type View struct {
	Lang     string
	Title    string
	CSRF     string
	SignedIn bool
	Partner  string
	Role     string
	// Customer is the customer the page is about, for the navigation.
	Customer *licensing.Customer
	// Nav names the current section: customers, users, operations, licenses.
	Nav string
	// Path is the current page's path and query, for the language switch.
	Path string
	cat  *catalog
}

// T translates a message of the catalog (see catalog.translate).
func (v View) T(id string, kv ...any) string { return v.cat.translate(v.Lang, id, kv...) }

// Languages lists the other languages for the switch.
func (v View) Languages() []string {
	var out []string
	for _, l := range Languages {
		if l != v.Lang {
			out = append(out, l)
		}
	}
	return out
}

func (c *Console) view(r *http.Request, s *session, lang string) View {
	v := View{Lang: lang, cat: c.i18n, Path: r.URL.RequestURI()}
	if s != nil && s.principal != nil {
		v.SignedIn, v.CSRF, v.Partner, v.Role = true, s.csrf, s.principal.PartnerID, s.principal.Role
	}
	return v
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render executes the template of page name (or the fragment of that
// name) and writes it with status. A template error is a 500.
func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	c.renderTemplate(w, status, name, "layout.html", data)
}

func (c *Console) renderTemplate(w http.ResponseWriter, status int, page, tmpl string, data any) {
	t := c.pages.byName[page]
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if t == nil {
		c.log.Error("console template missing", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(buf, tmpl, data); err != nil {
		c.log.Error("console template failed", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	View
	Status  int
	Code    string
	Message string
}

type pagerView struct {
	pager
	Label, FirstText, PrevText, NextText, LastText, PosText string
}

// Paging is p with the texts of the paging links.
func (v View) Paging(p pager) pagerView {
	return pagerView{pager: p, Label: v.T("Paging"), FirstText: v.T("First"), PrevText: v.T("Previous"),
		NextText: v.T("Next"), LastText: v.T("Last"), PosText: v.T("PageOf", "Page", p.Page, "Pages", p.Pages)}
}
