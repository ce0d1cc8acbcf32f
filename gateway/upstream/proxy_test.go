package upstream

import "testing"

func TestStripPrefix(t *testing.T) {
	for _, tc := range []struct{ path, prefix, want string }{
		{"/api/users/1", "/api", "/users/1"},
		{"/api", "/api", "/"},
		{"/apix", "/api", "/x"},
		{"/other", "/api", "/other"},
	} {
		if got := stripPrefix(tc.path, tc.prefix); got != tc.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", tc.path, tc.prefix, got, tc.want)
		}
	}
}
