package rungroup

import (
	"errors"
	"testing"
)

func TestFirstStopsAll(t *testing.T) {
	var g Group
	boom := errors.New("boom")
	stopped := make(chan struct{}, 2)
	for i := 0; i < 2; i++ {
		quit := make(chan struct{})
		g.Add(func() error { <-quit; stopped <- struct{}{}; return nil }, func(error) { close(quit) })
	}
	g.Add(func() error { return boom }, func(error) {})
	if err := g.Run(); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d actors stopped", len(stopped))
	}
	var empty Group
	if empty.Run() != nil {
		t.Fatal("empty group failed")
	}
}
