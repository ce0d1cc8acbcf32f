package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStatusAggregatesWatches(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	errA, errB := errors.New("dial a: refused"), errors.New("dial b: refused")
	type report struct {
		id  uint64
		at  time.Time
		err error
	}
	tests := []struct {
		name        string
		reports     []report
		forget      []uint64
		wantErr     string // "" means nil
		wantSuccess time.Time
	}{
		{name: "no calls yet is healthy but never succeeded"},
		{
			name:        "all succeeded",
			reports:     []report{{1, t0, nil}, {2, t0.Add(time.Second), nil}},
			wantSuccess: t0.Add(time.Second),
		},
		{
			name:        "one watch failing degrades",
			reports:     []report{{1, t0, nil}, {2, t0, errA}},
			wantErr:     "consul unreachable: dial a: refused",
			wantSuccess: t0,
		},
		{
			name:        "several failing name the most recent",
			reports:     []report{{1, t0, errA}, {2, t0, errB}},
			wantErr:     "consul unreachable (2 watches failing): dial b: refused",
			wantSuccess: time.Time{},
		},
		{
			name:        "a success clears that watch only",
			reports:     []report{{1, t0, errA}, {2, t0, errB}, {2, t0, nil}},
			wantErr:     "consul unreachable: dial a: refused",
			wantSuccess: t0,
		},
		{
			name:    "a stopped watch no longer counts",
			reports: []report{{1, t0, errA}},
			forget:  []uint64{1},
		},
		{
			name:        "success time never goes back",
			reports:     []report{{1, t0.Add(time.Second), nil}, {2, t0, nil}},
			wantSuccess: t0.Add(time.Second),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Status
			for _, r := range tt.reports {
				s.report(r.id, r.at, r.err)
			}
			for _, id := range tt.forget {
				s.forget(id)
			}
			err := s.Err()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Err() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("Err() = %v, want %q", err, tt.wantErr)
			case err != nil && !errors.Is(err, ErrUnreachable):
				t.Errorf("Err() = %v does not wrap ErrUnreachable", err)
			}
			if got := s.LastSuccess(); !got.Equal(tt.wantSuccess) {
				t.Errorf("LastSuccess() = %v, want %v", got, tt.wantSuccess)
			}
		})
	}
}

func TestNilStatusIsHealthyAndIgnoresReports(t *testing.T) {
	var s *Status
	s.report(1, time.Now(), errors.New("boom"))
	s.forget(1)
	if err := s.Err(); err != nil {
		t.Errorf("nil Status Err() = %v", err)
	}
	if !s.LastSuccess().IsZero() {
		t.Errorf("nil Status LastSuccess() = %v", s.LastSuccess())
	}
}

func TestStatusErrWrapsCause(t *testing.T) {
	var s Status
	s.report(1, time.Now(), ErrCallTimeout)
	if err := s.Err(); !errors.Is(err, ErrCallTimeout) || !strings.HasPrefix(err.Error(), "consul unreachable: ") {
		t.Errorf("Err() = %v, want it to wrap the cause", err)
	}
}
