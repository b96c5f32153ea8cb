package reqbuf

import (
	"context"
	"testing"
)

func TestLenderLendsAndTakesBack(t *testing.T) {
	if From(context.Background()) != nil {
		t.Fatal("a context without a Lender has one")
	}
	l := New()
	ctx := With(context.Background(), l)
	if From(ctx) != l {
		t.Fatal("From does not find the Lender of With")
	}
	a := l.Get(100)
	if len(a) != 0 || cap(a) < 100 {
		t.Fatalf("Get(100): len %d cap %d", len(a), cap(a))
	}
	b := l.Get(70_000)
	if cap(b) != 1<<17 {
		t.Fatalf("Get(70000): cap %d, want its size class, 128 KiB", cap(b))
	}
	a = append(a, "abc"...)
	if &a[0] == &b[:1][0] {
		t.Fatal("two buffers lent at once share memory")
	}
	big := l.Get(MaxPooled + 1)
	if cap(big) != MaxPooled+1 {
		t.Fatalf("a buffer over MaxPooled is allocated at its size: cap %d", cap(big))
	}

	SetPoison(true)
	defer SetPoison(false)
	l.Release()
	if len(l.lent) != 0 {
		t.Fatal("Release left buffers recorded as lent")
	}
	if string(a[:3]) != "###" {
		t.Fatalf("poisoned release left %q in the buffer", a[:3])
	}
}
