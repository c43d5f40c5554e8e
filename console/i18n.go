package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// Languages are the console's languages, the first the default. Each has a
// catalog locales/<tag>.json holding every string the pages show.
var Languages = []string{"en", "pl"}

type catalog struct {
	bundle     *i18n.Bundle
	matcher    language.Matcher
	localizers map[string]*i18n.Localizer
}

// defaultCatalog is the catalogs embedded in the binary, parsed once.
var defaultCatalog, catalogErr = newCatalog()

func newCatalog() (*catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	tags := make([]language.Tag, len(Languages))
	loc := map[string]*i18n.Localizer{}
	for i, l := range Languages {
		p := "locales/" + l + ".json"
		buf, err := localeFS.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if _, err := b.ParseMessageFileBytes(buf, p); err != nil {
			return nil, err
		}
		tags[i] = language.MustParse(l)
		loc[l] = i18n.NewLocalizer(b, l)
	}
	return &catalog{bundle: b, matcher: language.NewMatcher(tags), localizers: loc}, nil
}

// language is the request's language: the one chosen with the switch
// (a cookie), else the best match of Accept-Language.
func (c *Console) language(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil {
		if _, ok := c.i18n.localizers[ck.Value]; ok {
			return ck.Value
		}
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return Languages[0]
	}
	_, idx, conf := c.i18n.matcher.Match(tags...)
	if conf == language.No {
		return Languages[0]
	}
	return Languages[idx]
}

// translate localizes message id with the template data of kv (pairs of
// name and value); a "Count" value also chooses the plural form. A missing
// message shows its ID (the catalog test keeps that from happening).
func (cat *catalog) translate(lang, id string, kv ...any) string {
	lc := &i18n.LocalizeConfig{MessageID: id}
	if len(kv) > 0 {
		data := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			data[k] = kv[i+1]
			if k == "Count" {
				lc.PluralCount = kv[i+1]
			}
		}
		lc.TemplateData = data
	}
	s, err := cat.localizers[lang].Localize(lc)
	if err != nil {
		return id
	}
	return s
}

// switchLanguage sets the language cookie and goes back to the page the
// switch was on (a console path only: no open redirect).
func (c *Console) switchLanguage(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if _, ok := c.i18n.localizers[lang]; ok {
		// #nosec G124 -- Secure follows the request (c.secure: TLS, or a trusted proxy that says so), since the console also serves plain HTTP on a private address; HttpOnly and SameSite=Strict are always set
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", HttpOnly: true, Secure: c.secure(r),
			SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
	}
	http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther) // #nosec G710 -- localPath keeps only a path of the console
}

// localPath returns p when it is a path of the console, else the console's
// start page.
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix) ||
		path.Clean(u.Path) != strings.TrimSuffix(u.Path, "/") || strings.Contains(p, "\\") {
		return Prefix
	}
	return u.RequestURI()
}
