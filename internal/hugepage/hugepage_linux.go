// Package hugepage asks Linux to back mqscope's large anonymous memory with transparent huge
// pages (madvise MADV_HUGEPAGE), where the system leaves that to each program
// (/sys/kernel/mm/transparent_hugepage/enabled set to madvise, the common default).
//
// Each first touch of a 4 KiB page is a page fault, and on a virtual machine with two CPUs a
// costly one (about 17 µs here: the fault flushes the other CPU's TLB through the hypervisor).
// Reading a capture touches tens of megabytes of fresh memory, and gopacket's layers package
// fills 7 MB of tables before main runs: those faults were a fifth of the CPU time of reading
// 400,000 packets of one connection, and 60% of the faults of starting at all. With huge pages a
// fault covers 2 MiB.
//
// Importing the package advises the binary's zeroed data segment (.bss and .noptrbss) before
// gopacket's tables are filled: the package imports nothing but syscall and unsafe, and Go
// initialises, among the packages whose imports are ready, the first by import path, so it runs
// right after syscall, before os and so before anything that needs fmt. Heap advises the Go heap.
// Neither does anything when GODEBUG holds disablethp=1, the Go runtime's own switch for huge
// pages, or when the kernel has no transparent huge pages; nothing fails for want of them.
package hugepage

import (
	"syscall"
	"unsafe"
)

const madvHugepage = 14 // MADV_HUGEPAGE

// bss is a variable of the zeroed data segment: its mapping is the one advised at start.
var bss uintptr

// first is one of the first objects on the heap: the heap's arenas start at or below it.
var first = new([64]byte)

var off = disabled()

func init() {
	if !off {
		advise(func(lo, hi uintptr) bool {
			p := uintptr(unsafe.Pointer(&bss))
			return lo <= p && p < hi
		})
	}
}

// heapSpan bounds how far above the first heap object a mapping is taken for the heap's: Go
// reserves the heap's address space in 64 MiB arenas upward from one base.
const heapSpan = 1 << 40

// Heap advises the Go heap's mappings. The runtime maps heap memory as it grows, and a mapping
// made after the advice does not have it, so Heap first grows the heap by grow bytes (a block
// allocated and dropped at once, never touched: it costs address space, not memory) so that
// the memory the next collections hand out is advised already. The runtime then clears what
// it carves from that block before use (it no longer knows it fresh from the system), where
// fresh memory would not need it: a few percent of the CPU time of a short run, against the
// page faults it saves. Call it again after the heap grows (after a collection) to advise what
// was mapped since.
func Heap(grow int) {
	if off {
		return
	}
	var block []byte
	if grow > 0 {
		block = make([]byte, grow)
	}
	base := uintptr(unsafe.Pointer(first)) &^ (64<<20 - 1)
	advise(func(lo, hi uintptr) bool { return lo >= base && hi <= base+heapSpan })
	keep(block)
}

//go:noinline
func keep([]byte) {}

// Enabled reports whether advice is given: not switched off by GODEBUG=disablethp=1, on a
// kernel with transparent huge pages.
func Enabled() bool { return !off }

// disabled reports whether GODEBUG holds disablethp=1 or the kernel has no transparent huge
// pages.
func disabled() bool {
	if v, ok := syscall.Getenv("GODEBUG"); ok {
		for len(v) > 0 {
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			if v[:i] == "disablethp=1" {
				return true
			}
			if i < len(v) {
				i++
			}
			v = v[i:]
		}
	}
	var st syscall.Stat_t
	return syscall.Stat("/sys/kernel/mm/transparent_hugepage/enabled", &st) != nil
}

// advise gives MADV_HUGEPAGE to each private, writable, anonymous mapping of at least 2 MiB
// (smaller ones cannot hold a huge page) that want accepts, read from /proc/self/maps.
func advise(want func(lo, hi uintptr) bool) {
	var buf [32 << 10]byte
	fd, err := syscall.Open("/proc/self/maps", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	var rest []byte // an unfinished line carried to the next read
	for {
		n := copy(buf[:], rest)
		m, err := syscall.Read(fd, buf[n:])
		if err != nil || m <= 0 {
			return // a last line without its newline cannot be whole: maps ends each one
		}
		data := buf[:n+m]
		for {
			i := indexByte(data, '\n')
			if i < 0 {
				break
			}
			if lo, hi, ok := anonRW(data[:i]); ok && hi-lo >= 2<<20 && want(lo, hi) {
				syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvHugepage)
			}
			data = data[i+1:]
		}
		if len(data) == len(buf) {
			return // a line longer than the buffer: not one of maps
		}
		rest = data // moved to the front of buf at the next read
	}
}

// anonRW parses a line of /proc/self/maps, "lo-hi perms offset dev inode [path]", and returns
// its range when it is a private, writable, anonymous mapping: no path, or a name given by its
// owner ("[anon: Go: heap]" where the kernel keeps names), not [stack] or [heap].
func anonRW(line []byte) (lo, hi uintptr, ok bool) {
	var f [5][]byte
	for k := range f {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		i := indexByte(line, ' ')
		if i < 0 {
			i = len(line)
		}
		f[k], line = line[:i], line[i:]
	}
	for len(line) > 0 && line[0] == ' ' {
		line = line[1:]
	}
	if string(f[1]) != "rw-p" || string(f[4]) != "0" || len(line) > 0 && !hasPrefix(line, "[anon:") {
		return 0, 0, false
	}
	r := f[0]
	i := indexByte(r, '-')
	if i <= 0 {
		return 0, 0, false
	}
	lo, ok1 := hex(r[:i])
	hi, ok2 := hex(r[i+1:])
	return lo, hi, ok1 && ok2 && lo < hi
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func hex(b []byte) (uintptr, bool) {
	var v uintptr
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uintptr(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uintptr(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, len(b) > 0 && len(b) <= 16
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
