package flexjson

import (
	"encoding/json"
	"testing"
)

func TestFloat(t *testing.T) {
	cases := []struct {
		in      string
		want    Float
		wantErr bool
	}{
		{`1.5`, F(1.5), false},
		{`"68.918"`, F(68.918), false},
		{`" 7 "`, F(7), false},
		{`""`, Float{}, false},
		{`null`, Float{}, false},
		{`"abc"`, Float{}, true},
		{`{}`, Float{}, true},
		{`[1]`, Float{}, true},
	}
	for _, c := range cases {
		var got Float
		err := json.Unmarshal([]byte(c.in), &got)
		if (err != nil) != c.wantErr {
			t.Fatalf("%s: err=%v wantErr=%v", c.in, err, c.wantErr)
		}
		if err == nil && got != c.want {
			t.Errorf("%s: got %+v want %+v", c.in, got, c.want)
		}
	}
}

func TestInt(t *testing.T) {
	cases := []struct {
		in      string
		want    Int
		wantErr bool
	}{
		{`3`, I(3), false},
		{`"3"`, I(3), false},
		{`3.0`, I(3), false},
		{`3.5`, Int{}, true},
		{`""`, Int{}, false},
		{`null`, Int{}, false},
		{`"x"`, Int{}, true},
	}
	for _, c := range cases {
		var got Int
		err := json.Unmarshal([]byte(c.in), &got)
		if (err != nil) != c.wantErr {
			t.Fatalf("%s: err=%v wantErr=%v", c.in, err, c.wantErr)
		}
		if err == nil && got != c.want {
			t.Errorf("%s: got %+v want %+v", c.in, got, c.want)
		}
	}
}

func TestBoolAndString(t *testing.T) {
	for in, want := range map[string]Bool{`true`: B(true), `"false"`: B(false), `1`: B(true), `"0"`: B(false), `null`: {}} {
		var got Bool
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: got %+v err %v", in, got, err)
		}
	}
	var b Bool
	if err := json.Unmarshal([]byte(`"maybe"`), &b); err == nil {
		t.Error("maybe accepted as bool")
	}
	for in, want := range map[string]String{`"a"`: "a", `12`: "12", `true`: "true", `null`: ""} {
		var got String
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: got %q err %v", in, got, err)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	type T struct {
		A Float
		B Int
		C Bool
	}
	out, err := json.Marshal(T{F(2.5), Int{}, B(true)})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"A":2.5,"B":null,"C":true}` {
		t.Fatalf("got %s", out)
	}
}
