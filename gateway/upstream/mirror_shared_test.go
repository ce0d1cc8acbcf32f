package upstream

import "testing"

// TestMirrorSharedBoundAcrossMirrors: the gateway-wide bound holds over
// every mirror together, whatever room each mirror's own max_concurrency
// leaves, and a copy refused by it gives its own mirror's slot back.
func TestMirrorSharedBoundAcrossMirrors(t *testing.T) {
	shared := NewMirrorSlots(2)
	a := &Mirror{Slots: NewMirrorSlots(5), Shared: shared}
	b := &Mirror{Slots: NewMirrorSlots(5), Shared: shared}
	if !a.acquire() || !b.acquire() {
		t.Fatal("copies within both bounds refused")
	}
	if a.acquire() {
		t.Fatal("a third copy passed a gateway-wide bound of 2")
	}
	if got := len(a.Slots.c); got != 1 {
		t.Fatalf("mirror a holds %d slots after a refused copy, want 1 (the refused one given back)", got)
	}
	b.free()
	if !a.acquire() {
		t.Fatal("copy refused after another mirror freed its slot")
	}
	a.free()
	a.free()
	if len(shared.c) != 0 || len(a.Slots.c) != 0 || len(b.Slots.c) != 0 {
		t.Fatalf("slots held after every copy ended: shared %d, a %d, b %d", len(shared.c), len(a.Slots.c), len(b.Slots.c))
	}
}
