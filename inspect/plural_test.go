package inspect

import "testing"

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		one  string
		want string
	}{
		{0, "error", "0 errors"},
		{1, "error", "1 error"},
		{2, "warning", "2 warnings"},
		{1, "AUTH packet", "1 AUTH packet"},
		{3, "AUTH packet", "3 AUTH packets"},
		{2, "match", "2 matches"},
		{2, "address", "2 addresses"},
	} {
		if got := Plural(tc.n, tc.one); got != tc.want {
			t.Errorf("Plural(%d, %q) = %q, want %q", tc.n, tc.one, got, tc.want)
		}
	}
}
