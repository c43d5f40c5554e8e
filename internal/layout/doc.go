// Package layout holds the test that keeps the project's package layout as
// the README's architecture table describes it: which package may import
// which, and what the production binary links. It has no code of its own.
package layout
