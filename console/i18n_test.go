package console

import (
	"encoding/json"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/licenseops/licenseops/licensing"
)

// TestCatalogs holds every language's catalog to the same messages, and
// every message the templates and the code ask for to a catalog entry, so
// that no page shows a message ID or falls back to English.
func TestCatalogs(t *testing.T) {
	cat, err := newCatalog()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	plural := map[string]bool{} // messages with plural forms, which take a Count
	for _, l := range Languages {
		raw, err := localeFS.ReadFile("locales/" + l + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		for k, v := range m {
			keys[l] = append(keys[l], k)
			if _, ok := v.(map[string]any); ok {
				plural[k] = true
			}
		}
		slices.Sort(keys[l])
	}
	for _, l := range Languages[1:] {
		for _, k := range keys[Languages[0]] {
			if _, ok := slices.BinarySearch(keys[l], k); !ok {
				t.Errorf("%s lacks %s", l, k)
			}
		}
		for _, k := range keys[l] {
			if _, ok := slices.BinarySearch(keys[Languages[0]], k); !ok {
				t.Errorf("%s has %s, which %s lacks", l, k, Languages[0])
			}
		}
	}

	// The IDs that templates and code use.
	used := map[string]bool{}
	literal := regexp.MustCompile(`\bT "(\w+)"`)
	tmpls, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tmpls {
		b, _ := templateFS.ReadFile(n)
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	for _, l := range Languages {
		used["Lang_"+l] = true
	}
	for _, s := range []string{licensing.ItemPending, licensing.ItemApplying, licensing.ItemSucceeded, licensing.ItemFailed, licensing.ItemWouldRevoke} {
		used["Status_"+s] = true
	}
	for _, s := range []string{licensing.StatusQueued, licensing.StatusRunning, licensing.StatusCompleted, licensing.StatusCompletedWithErrors} {
		used["Op_"+s] = true
	}
	inGo := regexp.MustCompile(`(?:\.T\(|translate\([^,]+, |pageErr\([^,]+, |renderSignIn\(w, r, [^,]+, )"(\w+)"`)
	for _, n := range []string{"console.go", "pages.go", "manage.go", "operations.go", "render.go", "session.go", "i18n.go"} {
		b, err := readSource(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inGo.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 50 {
		t.Fatalf("found only %d message IDs in use; the patterns above miss some", len(used))
	}
	data := map[string]any{"K": 1, "N": 2, "Done": 1, "Total": 2, "Days": 90, "Role": "reader", "Max": 10, "Page": 1,
		"Pages": 2, "Name": "E5", "Needed": 2, "Available": 1, "Succeed": 1, "Fail": 1,
		// Messages that are not plural forms use Count too (CancelledCount);
		// plural ones set it to each n below. Without it here, whether they
		// saw a Count depended on the map's random order.
		"Count": 1}
	for id := range used {
		for _, l := range Languages {
			for _, n := range []int{1, 2, 5, 22} {
				lc := &i18n.LocalizeConfig{MessageID: id, TemplateData: data}
				if plural[id] {
					data["Count"], lc.PluralCount = n, n
				}
				got, err := cat.localizers[l].Localize(lc)
				if err != nil || got == "" || strings.Contains(got, "<no value>") {
					t.Errorf("%s: %s (count %d): %q, %v", l, id, n, got, err)
					break
				}
			}
		}
	}
}

func readSource(name string) ([]byte, error) { return os.ReadFile(name) }
