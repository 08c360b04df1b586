// Package xmlguard screens untrusted XML before it is decoded.
//
// encoding/xml expands no entities but nests without limit, so every
// parser of a body a peer sent (PIDF, conference-info, conference control)
// screens it first: a DTD is refused, and so is nesting deeper than the
// format needs, which would otherwise cost the decoder without bound.
package xmlguard

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Screen walks body's tokens: it returns an error for a document type
// declaration, for elements nested deeper than maxDepth, and for a
// document that is not well formed.
func Screen(body []byte, maxDepth int) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	depth := 0
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			if depth != 0 {
				return errors.New("unexpected end of document")
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.Directive:
			return errors.New("document type declarations are not allowed")
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
}
