package main

import "strconv"

// plural counts n things: "1 error", "2 errors", "0 errors". one is the singular; the plural
// adds an s, or, for words in -s, -x, -ch or -sh, es.
func plural(n int, one string) string {
	s := strconv.Itoa(n) + " " + one
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
