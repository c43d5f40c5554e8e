package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/licenseops/licenseops/licensing"
)

// paging is a validated page request.
type paging struct {
	Page, PageSize int
}

const maxPageSize = 500

func parsePaging(r *http.Request, defaultSize int) (paging, error) {
	p := paging{Page: 1, PageSize: defaultSize}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, invalid("page must be a whole number from 1, not %q", licensing.Truncate(v, 20))
		}
		p.Page = n
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, invalid("page_size must be a whole number from 1 to %d, not %q", maxPageSize, licensing.Truncate(v, 20))
		}
		p.PageSize = n
	}
	if p.Page > 1_000_000_000/p.PageSize {
		return p, invalid("page %d is beyond any list; start from page 1", p.Page)
	}
	return p, nil
}

func (p paging) offset() int { return (p.Page - 1) * p.PageSize }

// pageLinks are the first/prev/next/last links of a paged list.
type pageLinks struct {
	First string  `json:"first"`
	Prev  *string `json:"prev"`
	Next  *string `json:"next"`
	Last  string  `json:"last"`
}

func totalPages(total, size int) int {
	if total == 0 {
		return 1
	}
	return (total + size - 1) / size
}

// writePage answers 200 with one page of a list: the items under name,
// with the page, its size, the totals and the page links.
func (p paging) writePage(w http.ResponseWriter, r *http.Request, name string, items any, total int) {
	links, pages := p.links(r, total)
	writeJSON(w, http.StatusOK, map[string]any{
		name: items, "page": p.Page, "page_size": p.PageSize, "total": total, "total_pages": pages, "links": links,
	})
}

// links builds page links that keep the request's other query parameters.
func (p paging) links(r *http.Request, total int) (pageLinks, int) {
	pages := totalPages(total, p.PageSize)
	at := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("page_size", strconv.Itoa(p.PageSize))
		return (&url.URL{Path: r.URL.Path, RawQuery: q.Encode()}).String()
	}
	l := pageLinks{First: at(1), Last: at(pages)}
	if p.Page > 1 {
		prev := at(min(p.Page-1, pages))
		l.Prev = &prev
	}
	if p.Page < pages {
		next := at(p.Page + 1)
		l.Next = &next
	}
	return l, pages
}

func (s *Server) buyMoreURL(customerID, sku string) string {
	return strings.NewReplacer("{customer_id}", url.PathEscape(customerID), "{sku_id}", url.PathEscape(sku)).Replace(s.cfg.BuyMoreURL)
}

// nonNilStrings returns s, or an empty slice for nil, so JSON shows [] rather than null.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
