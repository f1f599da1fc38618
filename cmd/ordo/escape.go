package main

import (
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Everything the CLI prints that came from Kafka or from its user goes
// through printable or cell: a job's kind or error, a header, a topic name
// can hold bytes a terminal acts on (ESC sequences that retitle the window
// or clear the screen, a CR that overwrites the line, bidi overrides that
// reorder it). They are shown escaped, as Go would quote them, but without
// the quotes: ESC as \x1b, U+202E as \u202e, an invalid byte as \xff.

// nameWidth is where a table cuts a name (topic, group, member, kind): past
// the longest topic name Kafka allows (249), so that real names stay whole
// and a name an attacker made 1 MB long does not widen every row.
const nameWidth = 255

// printable is s with every control character (C0, DEL, C1), bidi override
// or isolate, line or paragraph separator and invalid UTF-8 byte escaped.
func printable(s string) string { return escape(s, -1) }

// cell is printable(s) cut to n runes with "…", for one cell of a table
// row: newlines and tabs are escaped too, so the row stays one aligned line.
func cell(s string, n int) string { return escape(s, n) }

// escape escapes s as printable does and, when n >= 0, cuts it to n runes
// of output.
func escape(s string, n int) string {
	if n < 0 || len(s) <= n {
		safe := true
		for i := 0; i < len(s) && safe; i++ {
			safe = s[i] >= 0x20 && s[i] < 0x7f
		}
		if safe {
			return s
		}
	}
	out := make([]byte, 0, min(len(s), max(n, 0)*4+16))
	runes := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		before := len(out)
		switch {
		case r == utf8.RuneError && size <= 1:
			out = append(out, `\x`...)
			out = append(out, hex[s[i]>>4], hex[s[i]&0xf])
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\u202e'
			out = append(out, q[1:len(q)-1]...)
		default:
			out = append(out, s[i:i+size]...)
		}
		i += size
		runes += utf8.RuneCount(out[before:])
		if n >= 0 && runes >= n && i < len(s) {
			return string(out) + "…"
		}
	}
	return string(out)
}

const hex = "0123456789abcdef"

// unsafeRune tells whether a terminal could act on r rather than show it.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidi embeddings, overrides, isolates and marks
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// terminalWriter is what the CLI's stdout and stderr are wrapped in: it
// passes the output's own newlines and tabs and escapes every other byte
// a terminal would act on, so that text that reaches the terminal by a
// path that forgot printable (the flag package echoing a mistyped flag, an
// error from a broker) is safe too. A UTF-8 sequence cut between two
// writes is kept until the next.
type terminalWriter struct {
	mu      sync.Mutex // ordo web logs from its handlers' goroutines
	w       io.Writer
	pending []byte
}

func (t *terminalWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := append(t.pending, p...)
	t.pending = nil
	// Keep a cut UTF-8 sequence at the end for the next write.
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				t.pending = append([]byte(nil), b[i:]...)
				b = b[:i]
			}
			break
		}
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && b[j] != '\n' && b[j] != '\t' {
			j++
		}
		out = append(out, printable(string(b[i:j]))...)
		if j < len(b) {
			out = append(out, b[j])
			j++
		}
		i = j
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what a cut UTF-8 sequence left pending, escaped.
func (t *terminalWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) > 0 {
		_, _ = io.WriteString(t.w, printable(string(t.pending)))
		t.pending = nil
	}
}
