package hugepage

import (
	"bufio"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// advised reports whether the mapping holding p has the huge page advice ("hg" among the
// VmFlags of /proc/self/smaps).
func advised(t *testing.T, p uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := rangeOf(line); ok {
			in = lo <= p && p < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			for _, fl := range strings.Fields(line)[1:] {
				if fl == "hg" {
					return true
				}
			}
			return false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping holds %#x", p)
	return false
}

// rangeOf parses the range of an smaps header line ("lo-hi perms ...").
func rangeOf(line string) (lo, hi uintptr, ok bool) {
	r, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	lo, ok1 := hex([]byte(a))
	hi, ok2 := hex([]byte(b))
	return lo, hi, ok1 && ok2
}

func needTHP(t *testing.T) {
	t.Helper()
	if !Enabled() {
		t.Skip("no transparent huge pages here (or GODEBUG=disablethp=1)")
	}
}

// The data segment is advised by the time any test runs (by init).
func TestDataSegmentAdvised(t *testing.T) {
	needTHP(t)
	if !advised(t, uintptr(unsafe.Pointer(&bss))) {
		t.Fatal("the mapping of the zeroed data segment has no huge page advice")
	}
}

// Memory the heap hands out after Heap(grow) lies in advised mappings: the grown block, once
// collected, is where the next large allocation goes.
func TestHeapAdvised(t *testing.T) {
	needTHP(t)
	Heap(16 << 20)
	runtime.GC()
	b := make([]byte, 8<<20)
	if !advised(t, uintptr(unsafe.Pointer(unsafe.SliceData(b)))) {
		t.Fatal("an 8 MiB block allocated after Heap(16 MiB) is in a mapping without huge page advice")
	}
	if !advised(t, uintptr(unsafe.Pointer(first))) {
		t.Fatal("the heap's first mapping has no huge page advice")
	}
	runtime.KeepAlive(b)
}

func TestAnonRW(t *testing.T) {
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"c000000000-c000400000 rw-p 00000000 00:00 0 ", 0xc000000000, 0xc000400000, true},
		{"2e6877400000-2e6878800000 rw-p 00000000 00:00 0", 0x2e6877400000, 0x2e6878800000, true},
		{"7f0000000000-7f0000400000 rw-p 00000000 00:00 0                          [anon: Go: heap]", 0x7f0000000000, 0x7f0000400000, true},
		{"7ffc20de9000-7ffc20e0a000 rw-p 00000000 00:00 0                          [stack]", 0, 0, false},
		{"55da557ea000-55da5584a000 rw-p 00000000 00:00 0                          [heap]", 0, 0, false},
		{"7f49e05bd000-7f49e05bf000 rw-p 001d3000 fe:00 326269                     /usr/lib/libc.so.6", 0, 0, false},
		{"2e6874000000-2e6877400000 ---p 00000000 00:00 0", 0, 0, false},
		{"7f49e0600000-7f49e0607000 rw-s 00000000 00:01 5 /dev/zero", 0, 0, false},
		{"zz-10 rw-p 00000000 00:00 0", 0, 0, false},
		{"", 0, 0, false},
	} {
		lo, hi, ok := anonRW([]byte(c.line))
		if ok != c.ok || ok && (lo != c.lo || hi != c.hi) {
			t.Errorf("anonRW(%q) = %#x, %#x, %v; want %#x, %#x, %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}
