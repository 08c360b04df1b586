package xmlguard

import (
	"strings"
	"testing"
)

func TestScreen(t *testing.T) {
	for name, tc := range map[string]struct {
		doc   string
		depth int
		ok    bool
	}{
		"flat":         {`<a><b/><c>x</c></a>`, 2, true},
		"at the limit": {`<a><b><c/></b></a>`, 3, true},
		"too deep":     {`<a><b><c/></b></a>`, 2, false},
		"dtd":          {`<!DOCTYPE a [<!ENTITY x "y">]><a/>`, 4, false},
		"external ref": {`<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>`, 4, false},
		"unclosed":     {`<a><b>`, 4, false},
		// Mismatched end tags are the decoder's to refuse; Screen only
		// counts depth.
		"mismatched":     {`<a></b>`, 4, true},
		"deep attack":    {strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000), 16, false},
		"comment and pi": {`<?xml version="1.0"?><!-- c --><a/>`, 1, true},
	} {
		if err := Screen([]byte(tc.doc), tc.depth); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", name, err, tc.ok)
		}
	}
}

// FuzzScreen: no input panics Screen, and its depth limit is monotonic.
func FuzzScreen(f *testing.F) {
	f.Add([]byte(`<a><b/></a>`))
	f.Add([]byte(`<!DOCTYPE a><a/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		// What passes at one depth passes at any greater depth.
		if Screen(doc, 2) == nil && Screen(doc, 3) != nil {
			t.Fatalf("%q passes at depth 2, not 3", doc)
		}
	})
}
