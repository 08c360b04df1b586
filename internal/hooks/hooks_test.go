package hooks

import "testing"

func TestAddRemoveKeepsOrder(t *testing.T) {
	var l List[func() string]
	ra := l.Add(func() string { return "a" })
	l.Add(func() string { return "b" })
	rc := l.Add(func() string { return "c" })
	ra()
	ra() // a second remove does nothing
	got := ""
	for _, f := range l.All() {
		got += f()
	}
	if got != "bc" {
		t.Fatalf("after removing a: %q, want bc", got)
	}
	rc()
	l.Add(func() string { return "d" })
	got = ""
	for _, f := range l.All() {
		got += f()
	}
	if got != "bd" {
		t.Fatalf("got %q, want bd", got)
	}
}
