package vendordocs

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExamplesDecode(t *testing.T) {
	names := Names()
	if len(names) < 15 {
		t.Fatalf("only %d examples embedded", len(names))
	}
	for _, n := range names {
		b, err := Example(n)
		if err != nil {
			t.Fatal(err)
		}
		valid := json.Valid(b)
		if strings.HasSuffix(n, ".json") != valid {
			t.Errorf("%s: valid JSON = %v", n, valid)
		}
	}
	if _, err := Example("nope.json"); err == nil {
		t.Error("missing example returned no error")
	}
}
