package aggregate

import (
	"bytes"
	"testing"
)

// TestReadBodyReservesWhatIsLive: the reservation covers every buffer
// alive at once (old and new while growing), is exact for a declared
// length, and is given back on every error.
func TestReadBodyReservesWhatIsLive(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100<<10)
	tests := []struct {
		name          string
		length, limit int64
		budget        int64
		wantErr       error
		wantHeld      int64
	}{
		{"declared length", int64(len(body)), 1 << 20, 1 << 20, nil, int64(len(body))},
		{"unknown length doubles", -1, 1 << 20, 1 << 20, nil, 128 << 10},
		{"declared over the limit", int64(len(body)), 1 << 10, 1 << 20, errResponseTooLarge, 0},
		{"unknown over the limit", -1, 50 << 10, 1 << 20, errResponseTooLarge, 0},
		{"declared over the budget", int64(len(body)), 1 << 20, 64 << 10, errMemory, 0},
		// Growing from 64 to 128 KiB needs both at once: 192 KiB.
		{"growing over the budget", -1, 1 << 20, 128 << 10, errMemory, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.budget)
			h := b.hold()
			got, held, err := readBody(bytes.NewReader(body), tt.length, tt.limit, h)
			if err != tt.wantErr || held != tt.wantHeld || b.Used() != tt.wantHeld {
				t.Fatalf("err %v held %d used %d; want %v, %d", err, held, b.Used(), tt.wantErr, tt.wantHeld)
			}
			if err == nil && (!bytes.Equal(got, body) || int64(cap(got)) > held) {
				t.Fatalf("read %d bytes into a buffer of %d with %d reserved", len(got), cap(got), held)
			}
			h.close()
			if b.Used() != 0 {
				t.Fatalf("after close: %d used", b.Used())
			}
		})
	}
}
