package store_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/floe-streams/floe/store"
)

func ExampleStore() {
	// An in-memory filesystem for the example; a broker passes its data
	// directory and leaves FS unset.
	s, err := store.Open("data", store.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	st := store.Stream{Topic: "product-stock", Token: -9223372036854775808, RangeIndex: 0, Version: 1}
	ctx := context.Background()
	first, err := s.Append(ctx, st, [][]byte{
		[]byte(`{"productId":123,"units":-1}`),
		[]byte(`{"productId":123,"units":20}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first offset:", first)
	if _, err := s.Append(ctx, st, [][]byte{[]byte(`{"productId":456,"units":3}`)}); err != nil {
		log.Fatal(err)
	}

	b, err := s.Read(st, 1, 64<<10, 100)
	if err != nil {
		log.Fatal(err)
	}
	for i, e := range b.Events {
		fmt.Printf("offset %d: %s\n", b.Start+int64(i), e)
	}
	fmt.Println("high watermark:", s.HighWatermark(st))

	if err := s.CommitGroupOffset("billing", st, b.Start+int64(len(b.Events))); err != nil {
		log.Fatal(err)
	}
	pos, ok, _ := s.GroupOffset("billing", st)
	fmt.Println("billing at:", pos, ok)
	// Output:
	// first offset: 0
	// offset 1: {"productId":123,"units":20}
	// offset 2: {"productId":456,"units":3}
	// high watermark: 3
	// billing at: 3 true
}
