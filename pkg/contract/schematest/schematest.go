// Package schematest validates records against the published JSON Schema in
// tests.
package schematest

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Compile compiles the record schema, with date-time formats asserted.
func Compile(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(contract.RecordSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("record.v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("record.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Validate checks one record's JSON against the schema.
func Validate(t testing.TB, s *jsonschema.Schema, record []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(record))
	if err != nil {
		t.Fatalf("record is not JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("record does not validate: %v\n%s", err, record)
	}
}

// Valid reports whether record validates, with the error when it does not.
func Valid(s *jsonschema.Schema, record []byte) (bool, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(record))
	if err != nil {
		return false, err
	}
	if err := s.Validate(v); err != nil {
		return false, err
	}
	return true, nil
}
