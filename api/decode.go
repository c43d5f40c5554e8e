package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/licenseops/licenseops/licensing"
)

// Body size limits. A 100,000-user operation with long IDs is about 14 MB.
const (
	maxSmallBody     = 1 << 20
	maxOperationBody = 16 << 20
	maxImportBody    = 64 << 20
)

// decodeJSON decodes the request body strictly into v: unknown fields, wrong
// types, trailing data and oversized bodies are client errors with a
// sentence that names the problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readJSONBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// decodeOptionalJSON is decodeJSON for an endpoint whose body may be left
// out: an empty body leaves v as it is.
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readJSONBody(w, r, limit)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	return decodeBytes(body, v)
}

// readJSONBody reads a JSON request body of at most limit bytes.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, invalid("the body must be JSON; send Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, licensing.Errorf(licensing.CodeTooLarge, "the body is larger than %d bytes; split the request", limit)
		}
		return nil, invalid("could not read the body: %v", err)
	}
	return body, nil
}

// nullable is a field of a request that tells absent (Set false) from
// null (Set, Value nil) from a value.
type nullable[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON implements json.Unmarshaler; it runs only for a field
// that is present.
func (n *nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set, n.Value = true, nil
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	n.Value = new(T)
	return json.Unmarshal(b, n.Value)
}

// decodeBytes is the strict decoder behind decodeJSON, separate so it can be fuzzed.
func decodeBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("the body is empty; send a JSON object")
	}
	// encoding/json would turn invalid bytes into U+FFFD, so two different
	// IDs could arrive as one; refuse them instead (JSON is UTF-8 anyway).
	if !utf8.Valid(body) {
		return invalid("the body is not valid UTF-8; send JSON encoded as UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return invalid("the body has data after the JSON object; send exactly one object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the body has data after the JSON object; send exactly one object")
	}
	// encoding/json matches field names case-insensitively and lets a
	// repeated key win silently; the contract's names are exact, and a
	// repeated field is ambiguous. The body is valid JSON by now, so a
	// plain byte scan of its keys suffices.
	return checkKeys(body, reflect.TypeOf(v))
}

// checkKeys walks body, a valid JSON value, alongside the Go type it was
// decoded into, and refuses any key that is not exactly the name of a field
// of the struct it fills, and any key repeated in one object. It reads the
// bytes once and allocates nothing for well-formed bodies of strings and
// arrays, so a 100,000-user body costs a few milliseconds.
func checkKeys(body []byte, t reflect.Type) error {
	sc := keyScanner{b: body}
	return sc.value(resolve(t))
}

// keyScanner is a cursor over a JSON text already validated by encoding/json.
type keyScanner struct {
	b    []byte
	i    int
	path []pathStep // where the cursor is, for messages
}

// pathStep is one level of the path to the value being scanned: a field
// name, or an array index.
type pathStep struct {
	field string
	index int
}

func (sc *keyScanner) where() string {
	var b strings.Builder
	for _, p := range sc.path {
		if p.field != "" {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.field)
		} else {
			fmt.Fprintf(&b, "[%d]", p.index)
		}
	}
	return b.String()
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// resolve returns the type whose keys a JSON value filling t must match:
// t without its pointers, or nil for a type that decodes itself
// (json.Unmarshaler), whose keys are its own business.
func resolve(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshaler) {
			return nil
		}
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil
	}
	return t
}

// value scans one value that fills a Go value of type t, as resolved.
func (sc *keyScanner) value(t reflect.Type) error {
	sc.skipSpace()
	if sc.i >= len(sc.b) {
		return nil
	}
	switch sc.b[sc.i] {
	case '{':
		return sc.object(t)
	case '[':
		var elem reflect.Type
		if t != nil {
			switch t.Kind() {
			case reflect.Slice, reflect.Array:
				elem = resolve(t.Elem())
			case reflect.Interface:
				elem = t
			}
		}
		return sc.array(elem)
	case '"':
		sc.skipString()
	default: // number, true, false, null
		start := sc.i
		for sc.i < len(sc.b) && !strings.ContainsRune(",]} \t\r\n", rune(sc.b[sc.i])) {
			sc.i++
		}
		// Always move on, so that no loop can spin should the text not be
		// the valid JSON it is known to be.
		sc.i = max(sc.i, start+1)
	}
	return nil
}

func (sc *keyScanner) array(elem reflect.Type) error {
	sc.i++ // [
	sc.path = append(sc.path, pathStep{})
	defer func() { sc.path = sc.path[:len(sc.path)-1] }()
	for n := 0; ; n++ {
		sc.skipSpace()
		if sc.i >= len(sc.b) || sc.b[sc.i] == ']' {
			sc.i++
			return nil
		}
		sc.path[len(sc.path)-1].index = n
		if err := sc.value(elem); err != nil {
			return err
		}
		sc.skipSpace()
		if sc.i < len(sc.b) && sc.b[sc.i] == ',' {
			sc.i++
		}
	}
}

func (sc *keyScanner) object(t reflect.Type) error {
	sc.i++ // {
	var fields *structFields
	var elem reflect.Type
	checkNames := false
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields, checkNames = fieldsOf(t), true
		case reflect.Map:
			elem = resolve(t.Elem())
		case reflect.Interface:
			elem = t
		}
	}
	var seenFields uint64        // fields of a struct object, by index below 64
	var seenKeys map[string]bool // any other key, made when first needed
	sc.path = append(sc.path, pathStep{})
	defer func() { sc.path = sc.path[:len(sc.path)-1] }()
	for {
		sc.skipSpace()
		if sc.i >= len(sc.b) || sc.b[sc.i] != '"' {
			sc.i++ // }
			return nil
		}
		start := sc.i
		sc.skipString()
		raw := sc.b[start+1 : max(start+1, sc.i-1)]
		escaped, unescaped := bytes.IndexByte(raw, '\\') >= 0, ""
		if escaped {
			if err := json.Unmarshal(sc.b[start:sc.i], &unescaped); err != nil {
				return invalid("the body is not valid JSON: %v", err)
			}
		}
		name := func() string {
			if escaped {
				return unescaped
			}
			return string(raw)
		}
		dup, field := false, ""
		if checkNames {
			var f structField
			var ok bool
			if escaped {
				f, ok = fields.byName[unescaped]
			} else {
				f, ok = fields.byName[string(raw)] // no allocation
			}
			if !ok {
				return sc.unknownField(name(), fields)
			}
			elem, field = f.typ, f.name
			if f.index < 64 {
				dup = seenFields&(1<<f.index) != 0
				seenFields |= 1 << f.index
			} else {
				dup = seenKeys[f.name]
				if seenKeys == nil {
					seenKeys = map[string]bool{}
				}
				seenKeys[f.name] = true
			}
		} else if t != nil {
			field = name()
			dup = seenKeys[field]
			if seenKeys == nil {
				seenKeys = map[string]bool{}
			}
			seenKeys[field] = true
		}
		if dup {
			return invalid("field %q%s appears more than once; send each field once", name(), sc.in())
		}
		sc.path[len(sc.path)-1].field = field
		sc.skipSpace()
		if sc.i < len(sc.b) && sc.b[sc.i] == ':' {
			sc.i++
		}
		if err := sc.value(elem); err != nil {
			return err
		}
		sc.skipSpace()
		if sc.i < len(sc.b) && sc.b[sc.i] == ',' {
			sc.i++
		}
	}
}

// in names the object the cursor is in, for messages: "" at the top level.
func (sc *keyScanner) in() string {
	outer := sc.path[:len(sc.path)-1]
	if len(outer) == 0 {
		return ""
	}
	saved := sc.path
	sc.path = outer
	defer func() { sc.path = saved }()
	return " in " + sc.where()
}

func (sc *keyScanner) unknownField(key string, fields *structFields) error {
	for _, f := range fields.names {
		if strings.EqualFold(f, key) {
			return invalid("unknown field %q%s; field names are case-sensitive: use %q", key, sc.in(), f)
		}
	}
	return invalid("unknown field %q%s; check the field names against the API reference (docs/api.md)", key, sc.in())
}

func (sc *keyScanner) skipSpace() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\r', '\n':
			sc.i++
		default:
			return
		}
	}
}

// skipString moves the cursor past the string that starts at it. The
// closing quote is the first one not escaped by an odd run of backslashes;
// IndexByte finds candidates fast on long arrays of IDs.
func (sc *keyScanner) skipString() {
	i := sc.i + 1
	for {
		j := bytes.IndexByte(sc.b[i:], '"')
		if j < 0 {
			sc.i = len(sc.b)
			return
		}
		q := i + j
		n := 0
		for k := q - 1; k >= i && sc.b[k] == '\\'; k-- {
			n++
		}
		i = q + 1
		if n%2 == 0 {
			sc.i = i
			return
		}
	}
}

// structFields are the JSON field names of a struct type, as encoding/json
// sees them: the tag's name or the Go name, promoted through embedded
// structs, "-" left out.
type structFields struct {
	byName map[string]structField
	names  []string
}

type structField struct {
	name  string
	index int          // sequence number, for the repeated-key check
	typ   reflect.Type // resolved
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	fs := &structFields{byName: map[string]structField{}}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		var embedded []reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					embedded = append(embedded, ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, taken := fs.byName[name]; !taken { // a shallower field wins
				fs.byName[name] = structField{name: name, index: len(fs.names), typ: resolve(f.Type)}
				fs.names = append(fs.names, name)
			}
		}
		for _, e := range embedded {
			walk(e)
		}
	}
	walk(t)
	f, _ := fieldCache.LoadOrStore(t, fs)
	return f.(*structFields)
}

func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return invalid("the body is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return invalid("the body must be a JSON object, not %s", typ.Value)
		}
		return invalid("field %q must be %s, not %s", field, jsonKind(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid("the body ends before the JSON object is complete")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalid("unknown field %s; check the field names against the API reference (docs/api.md)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return invalid("the body could not be decoded: %v", err)
	}
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string", goType == "*string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time"
	default:
		return fmt.Sprintf("of type %s", goType)
	}
}
