package inspect

import "strconv"

// Plural counts n things for summaries and end lines: "1 error", "2 errors", "0 errors". one
// is the singular; the plural adds an s, or, for words in -s, -x, -ch or -sh, es.
func Plural[N ~int | ~int32 | ~int64 | ~uint32 | ~uint64](n N, one string) string {
	s := strconv.FormatInt(int64(n), 10) + " " + one
	if n == 1 {
		return s
	}
	switch {
	case len(one) > 0 && (one[len(one)-1] == 's' || one[len(one)-1] == 'x'),
		len(one) > 1 && (one[len(one)-2:] == "ch" || one[len(one)-2:] == "sh"):
		return s + "es"
	}
	return s + "s"
}
